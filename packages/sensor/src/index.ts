export * from './windows.js';
export * from './publisher.js';
export * from './capture.js';
