export * from './errors.js';
export * from './config.js';
export * from './enforce-bridge.js';
export * from './watchdog.js';
export * from './capture.js';
export { watchdogStage as stage } from './watchdog.js';
export * from './gate.js';
export * from './gate-bridge.js';
export * from './gating.js';
