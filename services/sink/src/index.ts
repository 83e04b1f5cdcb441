export * from './rows.js';
export * from './module.js';
export * from './tables.js';
export { sinkStage as stage } from './module.js';
