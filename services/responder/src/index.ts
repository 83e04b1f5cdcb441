export * from './errors.js';
export * from './config.js';
export * from './decide.js';
export * from './module.js';
export { responderStage as stage } from './module.js';
