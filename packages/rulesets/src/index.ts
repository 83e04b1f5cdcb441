export * from './errors.js';
export * from './archive-tar.js';
export * from './archive.js';
export * from './fetch.js';
export * from './rule-text.js';
export * from './store.js';
export * from './update.js';
