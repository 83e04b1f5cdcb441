import { defineError } from '@cordon/runtime';

/**
 * Every error the vSphere connector raises. Codes are stable (the inventory stage, its status
 * records and runbooks key off them); messages say what to do next. A SOAP fault keeps its vim25
 * fault type in the message and the parsed fault as `cause`. No message ever holds a password.
 */

export const ERR_VSPHERE_BAD_OPTIONS = defineError(
  'CORDON_ERR_VSPHERE_BAD_OPTIONS',
  (detail: string) => `Invalid vSphere connector options: ${detail}. Fix the platform configuration and restart.`,
);

export const ERR_VSPHERE_NO_CREDENTIALS = defineError(
  'CORDON_ERR_VSPHERE_NO_CREDENTIALS',
  (source: string, detail: string) =>
    `No vSphere credentials for ${source}: ${detail}. Set CORDON_VSPHERE_USERNAME and CORDON_VSPHERE_PASSWORD, ` +
    'or point credentialsFile at a file of KEY=VALUE lines with those two keys (never put them in the URL).',
);

export const ERR_VSPHERE_UNREACHABLE = defineError(
  'CORDON_ERR_VSPHERE_UNREACHABLE',
  (source: string, detail: string) =>
    `vSphere at ${source} did not answer (${detail}). Check that vCenter/ESXi is up and the URL and port are right; the connector retries with backoff.`,
);

export const ERR_VSPHERE_TLS = defineError(
  'CORDON_ERR_VSPHERE_TLS',
  (source: string, detail: string) =>
    `The TLS certificate of ${source} was not accepted (${detail}). Set caFile to the PEM of the CA that signed it ` +
    '(insecure: true turns verification off, for labs only).',
);

export const ERR_VSPHERE_LOGIN_FAILED = defineError(
  'CORDON_ERR_VSPHERE_LOGIN_FAILED',
  (source: string, username: string) =>
    `vSphere at ${source} refused the login of user "${username}" (InvalidLogin). Check the user name and password in the credentials.`,
);

export const ERR_VSPHERE_SESSION_EXPIRED = defineError(
  'CORDON_ERR_VSPHERE_SESSION_EXPIRED',
  (source: string) =>
    `The vSphere session with ${source} is no longer valid (NotAuthenticated: it expired or was terminated). The connector logs in again and resyncs.`,
);

export const ERR_VSPHERE_INVALID_PROPERTY = defineError(
  'CORDON_ERR_VSPHERE_INVALID_PROPERTY',
  (source: string, name: string) =>
    `vSphere at ${source} does not know the property "${name}" (InvalidProperty). This API version lacks it; report the vSphere version.`,
);

export const ERR_VSPHERE_OBJECT_GONE = defineError(
  'CORDON_ERR_VSPHERE_OBJECT_GONE',
  (source: string, obj: string) => `The object ${obj} no longer exists on ${source} (ManagedObjectNotFound).`,
);

export const ERR_VSPHERE_NOT_SUPPORTED = defineError(
  'CORDON_ERR_VSPHERE_NOT_SUPPORTED',
  (source: string, method: string, fault: string) => `${source} does not support ${method} (${fault}).`,
);

export const ERR_VSPHERE_FAULT = defineError(
  'CORDON_ERR_VSPHERE_FAULT',
  (source: string, method: string, fault: string, message: string) =>
    `vSphere at ${source} answered ${method} with the fault ${fault}: ${message}. The connector retries with backoff; if it persists, check the vSphere logs.`,
);

export const ERR_VSPHERE_BAD_RESPONSE = defineError(
  'CORDON_ERR_VSPHERE_BAD_RESPONSE',
  (source: string, method: string, detail: string) =>
    `vSphere at ${source} answered ${method} with something that is not a vim25 SOAP response (${detail}). Check that the URL ends in /sdk.`,
);

export const ERR_VSPHERE_STOPPED = defineError(
  'CORDON_ERR_VSPHERE_STOPPED',
  (what: string) => `${what}: the connector was stopped. Create a new connector to run again.`,
);
