export * from './errors.js';
export * from './follow-blocks.js';
export * from './guards.js';
export * from './never-block.js';
