import { defineError } from '@cordon/runtime';

/** A connector option or URL that cannot be used; nothing was started. */
export const ERR_LIBVIRT_CONFIG = defineError(
  'CORDON_ERR_LIBVIRT_CONFIG',
  (detail: string) => `libvirt connector configuration: ${detail}`,
);
/** The sidecar binary is not where the connector looks for it. */
export const ERR_LIBVIRT_SIDECAR_MISSING = defineError(
  'CORDON_ERR_LIBVIRT_SIDECAR_MISSING',
  (path: string) =>
    `the libvirt sidecar ${path} does not exist or is not executable; build it with packages/libvirt/build.sh (scripts/setup.sh does) or set sidecarPath`,
);
/** The sidecar wrote something that is not a valid protocol line; it is killed and restarted. */
export const ERR_LIBVIRT_PROTOCOL = defineError(
  'CORDON_ERR_LIBVIRT_PROTOCOL',
  (source: string, detail: string) =>
    `the libvirt sidecar for ${source} broke the protocol (${detail}); it was stopped and will be restarted`,
);
/** The sidecar could not reach libvirt (daemon down, socket missing, auth refused). */
export const ERR_LIBVIRT_CONNECT = defineError(
  'CORDON_ERR_LIBVIRT_CONNECT',
  (source: string, detail: string) =>
    `cannot connect to libvirt at ${source}: ${detail}; check that libvirtd runs and the URI is right (retrying with backoff)`,
);
/** An established libvirt connection ended (daemon restarted or stopped, network cut). */
export const ERR_LIBVIRT_DISCONNECTED = defineError(
  'CORDON_ERR_LIBVIRT_DISCONNECTED',
  (source: string, detail: string) =>
    `lost the libvirt connection to ${source}: ${detail}; reconnecting with backoff, then resyncing`,
);
/** The sidecar exited or could not be started for another reason. */
export const ERR_LIBVIRT_SIDECAR_EXIT = defineError(
  'CORDON_ERR_LIBVIRT_SIDECAR_EXIT',
  (source: string, detail: string) => `the libvirt sidecar for ${source} ended: ${detail}; restarting it with backoff`,
);
/** snapshot() did not get the state of every host in time. */
export const ERR_LIBVIRT_TIMEOUT = defineError(
  'CORDON_ERR_LIBVIRT_TIMEOUT',
  (source: string, ms: number) =>
    `no state from libvirt at ${source} within ${ms} ms; check that libvirtd answers (virsh -c URI list)`,
);
/** A cursor handed to run() that this version cannot read; run() refuses it rather than guessing. */
export const ERR_LIBVIRT_CURSOR = defineError(
  'CORDON_ERR_LIBVIRT_CURSOR',
  (detail: string) =>
    `the libvirt connector cursor is not usable: ${detail}; pass a cursor this connector produced, or none to start from the current state`,
);
