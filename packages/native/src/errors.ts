import { defineError } from '@cordon/runtime';

export const ERR_NATIVE_MISSING = defineError(
  'CORDON_ERR_NATIVE_MISSING',
  (path: string, detail: string) => `the DPI engine library ${path} could not be loaded (${detail}); build it with "bash native/build.sh"`,
);
export const ERR_NATIVE_BAD_BATCH = defineError(
  'CORDON_ERR_NATIVE_BAD_BATCH',
  (detail: string) => `a packet batch was rejected by the DPI engine: ${detail}`,
);
export const ERR_NATIVE_BAD_OPTION = defineError(
  'CORDON_ERR_NATIVE_BAD_OPTION',
  (detail: string) => `invalid DPI engine option: ${detail}`,
);
export const ERR_NATIVE_CAPTURE = defineError(
  'CORDON_ERR_NATIVE_CAPTURE',
  (what: string, detail: string) => `${what} failed: ${detail}`,
);
export const ERR_NATIVE_NFT = defineError(
  'CORDON_ERR_NATIVE_NFT',
  (what: string, detail: string) => `${what} failed: ${detail}`,
);
export const ERR_NATIVE_PROC = defineError(
  'CORDON_ERR_NATIVE_PROC',
  (detail: string) =>
    `process events cannot be read: ${detail}; the connector needs root (CAP_NET_ADMIN), /proc polling works without`,
);

export const ERR_NATIVE_YARA_RULE = defineError(
  'CORDON_ERR_NATIVE_YARA_RULE',
  (where: string, detail: string) => `a YARA rule does not compile at ${where}: ${detail}; fix or remove it`,
);
export const ERR_NATIVE_FIM = defineError(
  'CORDON_ERR_NATIVE_FIM',
  (detail: string) => `file integrity probing failed: ${detail}`,
);
export const ERR_NATIVE_RECORD_KEY = defineError(
  'CORDON_ERR_NATIVE_RECORD_KEY',
  (detail: string) => `a producer's signing key is unusable: ${detail}`,
);
export const ERR_NATIVE_LITERALS = defineError(
  'CORDON_ERR_NATIVE_LITERALS',
  (detail: string) => `the native literal search rejected its input: ${detail}`,
);
export const ERR_NATIVE_ACCESS_LINES = defineError(
  'CORDON_ERR_NATIVE_ACCESS_LINES',
  (detail: string) => `the native access-line decoder rejected its input: ${detail}`,
);
