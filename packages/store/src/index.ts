export { createStore } from './store.js';
export type { Store, StoreOptions, InsertOptions, InsertResult, MigrateResult } from './store.js';
export { microsToDateTime64 } from './rows.js';
export { embeddedLockHolder } from './engine.js';
export { loadMigrations } from './migrations.js';
export type { Migration } from './migrations.js';
export { splitStatements } from './sql-split.js';
export * from './errors.js';
