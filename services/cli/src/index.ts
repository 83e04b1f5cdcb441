export { main } from './main.js';
export * from './config.js';
export * from './replay.js';
export * from './services.js';
export * from './demo-capture.js';
