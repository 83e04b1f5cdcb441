export * from './errors.js';
export * from './follow-blocks.js';
