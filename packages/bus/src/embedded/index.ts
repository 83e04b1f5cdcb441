export { EmbeddedBus, createEmbeddedBus, type EmbeddedBusOptions } from './bus.js';
