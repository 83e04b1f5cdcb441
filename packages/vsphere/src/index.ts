export type {
  ConnectorCursor,
  ConnectorHandlers,
  PlatformConnector,
  PlatformEvent,
  PlatformEventKind,
  PlatformHost,
  PlatformNic,
  PlatformState,
  PlatformVm,
} from '@cordon/platform';
export * from './errors.js';
export { VsphereConnector } from './connector.js';
export {
  optionsFromUrl,
  parseCredentialsFile,
  resolveOptions,
  type FromUrlOptions,
  type VsphereOptions,
} from './options.js';
export {
  escapeXml,
  envelope,
  faultToError,
  parseFault,
  parseXml,
  responseOf,
  SoapFault,
  SoapTransport,
  XmlElement,
  moref,
  type MoRef,
} from './soap.js';
export * from './vim25.js';
export { Inventory, snapshotName, unescapeName, viewSpec, VM_PROPS, HOST_PROPS, VIEW_TYPES } from './collect.js';
export { EVENT_KINDS, EVENT_TYPE_IDS, eventKind, isRevertTask, fromCursor, toCursor } from './events.js';

import { VsphereConnector } from './connector.js';
import { optionsFromUrl, type FromUrlOptions } from './options.js';

/**
 * A connector for `vsphere+https://host/sdk`, credentials from `credentialsFile` (KEY=VALUE lines
 * CORDON_VSPHERE_USERNAME / CORDON_VSPHERE_PASSWORD) or the same variables in `env`.
 */
export function fromUrl(platformUrl: string, options: FromUrlOptions): VsphereConnector {
  return new VsphereConnector(optionsFromUrl(platformUrl, options));
}
