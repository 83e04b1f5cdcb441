export { main, usage, COMMANDS } from './main.js';
export { commandPaths, parseDuration, nearest, type CommandSpec, type FlagSpec } from './args.js';
export { CONTROL_SOCKET, controlSocketPath, MAX_REQUEST_BYTES, OP_NAMES } from './control/protocol.js';
export { startControlServer, type ControlServer } from './control/server.js';
export { checkReadOnlySql } from './ops.js';
export * from './config.js';
export * from './replay.js';
export * from './services.js';
export * from './demo-capture.js';
