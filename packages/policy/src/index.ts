export * from './errors.js';
export * from './address.js';
export * from './yaml-file.js';
export * from './policy.js';
export * from './inventory.js';
export * from './views.js';
export * from './follow.js';
export * from './apply.js';
