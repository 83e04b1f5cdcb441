export * from './errors.js';
export * from './config.js';
export * from './records.js';
export * from './connector-file.js';
export * from './connectors.js';
export * from './module.js';
export { inventoryStage as stage } from './module.js';
