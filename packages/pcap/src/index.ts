export * from './errors.js';
export * from './reader.js';
export * from './decode.js';
export * from './flowkey.js';
export * from './partition-key.js';
