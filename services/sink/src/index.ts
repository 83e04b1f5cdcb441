export * from './stage.js';
export * from './service.js';
export * from './tables.js';
