export { dpiCommand, rulesCheckCommand, runCapture } from './cli.js';
export * from './errors.js';
