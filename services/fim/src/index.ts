export * from './errors.js';
export * from './config.js';
export * from './fim-alerts.js';
export * from './module.js';
export { fimStage as stage } from './module.js';
