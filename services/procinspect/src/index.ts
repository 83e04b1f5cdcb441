export * from './errors.js';
export * from './config.js';
export * from './inspector.js';
export * from './alerts.js';
export * from './proctest.js';
export * from './module.js';
export { procinspectStage as stage } from './module.js';
