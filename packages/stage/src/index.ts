export * from './module.js';
export * from './errors.js';
export * from './run.js';
export * from './telemetry.js';
export * from './server.js';
export * from './registry.js';
export type { RunningLoop } from './consume.js';
export * from './record-sign.js';
export { ProducerKeys, RecordTrust, SIGNED_TOPICS } from './record-trust.js';
