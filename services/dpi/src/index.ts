export { dpiCommand, rulesCheckCommand, runCapture, type DpiCommandOptions } from './cli.js';
export * from './errors.js';
export * from './alerts.js';
export * from './module.js';
export * from './rules-from-policy.js';
export { dpiStage as stage } from './module.js';
export * from './rules-compile.js';
