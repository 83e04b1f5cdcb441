export * from './diff.js';
export * from './module.js';
export { netconfStage as stage } from './module.js';
