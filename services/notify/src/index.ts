export * from './config.js';
export * from './errors.js';
export * from './ocsf.js';
export * from './ocsf-validate.js';
export * from './silence.js';
export * from './syslog.js';
export * from './webhook.js';
export * from './module.js';
export { notifyStage as stage } from './module.js';
