export * from './diff.js';
export * from './service.js';
