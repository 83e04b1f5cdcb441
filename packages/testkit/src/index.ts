export * from './netns.js';
export * from './kafka.js';
export * from './lab.js';
