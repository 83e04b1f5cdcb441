export * from './errors.js';
export * from './config.js';
export * from './token.js';
export * from './identity.js';
export * from './logtail.js';
export * from './enforce.js';
export * from './agent.js';
export * from './netconf.js';
export { agentStage as stage } from './agent.js';
