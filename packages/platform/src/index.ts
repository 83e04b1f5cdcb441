export type * from './types.js';
export * from './diff.js';
