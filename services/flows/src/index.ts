export * from './errors.js';
export * from './config.js';
export * from './flow-table.js';
export * from './service.js';
