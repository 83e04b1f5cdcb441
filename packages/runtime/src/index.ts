export * from './errors.js';
export * from './clock.js';
export * from './metrics.js';
export * from './logger.js';
export * from './context.js';
export * from './config-issues.js';
