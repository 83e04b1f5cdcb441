export { dpiCommand, rulesCheckCommand, runCapture } from './cli.js';
export * from './errors.js';
export * from './service.js';
export * from './rules-from-policy.js';
