export * from './errors.js';
export * from './config.js';
export * from './decide.js';
export * from './service.js';
