export * from './errors.js';
export * from './trust.js';
export * from './decide.js';
export * from './module.js';
export { coordinatorStage as stage } from './module.js';
