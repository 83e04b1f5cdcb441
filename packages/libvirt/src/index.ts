export * from '@cordon/platform';
export * from './errors.js';
export {
  LibvirtConnector,
  fromUrl,
  parseLibvirtOptions,
  redactUri,
  type LibvirtConnectorOptions,
} from './connector.js';
export { Tracker, EV, MAX_TOMBSTONES, type RawEvent, type ListedDomain, type Derived } from './tracker.js';
export {
  LineSplitter,
  parseMessage,
  ProtocolViolation,
  PROTOCOL_VERSION,
  DEFAULT_MAX_LINE_BYTES,
  type SidecarDomain,
  type SidecarMessage,
} from './protocol.js';
export { toPlatformVm, powerOf, powerOfListed, JOB_PAUSE_REASONS, hostIdFor } from './normalize.js';
export { DEFAULT_SIDECAR_PATH } from './sidecar.js';
