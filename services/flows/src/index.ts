export * from './errors.js';
export * from './config.js';
export * from './flow-table.js';
export * from './module.js';
export { flowsStage as stage } from './module.js';
