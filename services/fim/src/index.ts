export * from './errors.js';
export * from './config.js';
export * from './fim-alerts.js';
export * from './service.js';
