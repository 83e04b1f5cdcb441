export * from './types.js';
export * from './errors.js';
export * from './partitioner.js';
export * from './embedded/index.js';
export * from './table.js';
export * from './kafka/index.js';
