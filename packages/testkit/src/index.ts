export * from './netns.js';
export * from './kafka.js';
