export * from './generated.js';
export * from './codec.js';
export * from './errors.js';
export * from './topics.js';
export * from './keys.js';
export * from './dead-letter.js';
export * from './alerts.js';
export * from './community-id.js';
