import { defineError } from '@cordon/runtime';

/**
 * Errors of the capture-file reader. Each one names the file, the byte offset where the
 * reader stopped and what it found there, so a bad capture can be inspected with `xxd -s`.
 */
export const ERR_PCAP_IO = defineError(
  'CORDON_ERR_PCAP_IO',
  (file: string, detail: string) => `cannot read capture file ${file}: ${detail}`,
);
export const ERR_PCAP_NOT_A_FILE = defineError(
  'CORDON_ERR_PCAP_NOT_A_FILE',
  (file: string, kind: string) =>
    `${file} is ${kind}, not a capture file; pass a pcap or pcapng file (write a live capture to a file first: tcpdump -w FILE)`,
);
export const ERR_PCAP_BAD_MAGIC = defineError(
  'CORDON_ERR_PCAP_BAD_MAGIC',
  (file: string, offset: number, magic: string) =>
    `${file} at byte ${offset}: magic 0x${magic} is neither pcap nor pcapng; pass a pcap or pcapng capture file`,
);
export const ERR_PCAP_TRUNCATED = defineError(
  'CORDON_ERR_PCAP_TRUNCATED',
  (file: string, offset: number, detail: string) =>
    `${file} at byte ${offset}: file ends inside ${detail}; the frames before it were delivered (the capture was cut short, e.g. by a killed tcpdump)`,
);
export const ERR_PCAP_BAD_LENGTH = defineError(
  'CORDON_ERR_PCAP_BAD_LENGTH',
  (file: string, offset: number, detail: string) =>
    `${file} at byte ${offset}: ${detail}; the file is corrupt from here on`,
);
export const ERR_PCAP_BAD_BLOCK = defineError(
  'CORDON_ERR_PCAP_BAD_BLOCK',
  (file: string, offset: number, detail: string) =>
    `${file} at byte ${offset}: malformed pcapng block (${detail}); the file is corrupt from here on`,
);
export const ERR_PCAP_UNSUPPORTED = defineError(
  'CORDON_ERR_PCAP_UNSUPPORTED',
  (file: string, offset: number, detail: string) => `${file} at byte ${offset}: ${detail}`,
);

/**
 * Errors of the frame decoder. Hostile bytes on the wire are expected, so these are returned
 * as values (never thrown) and end up counted and in the DLQ.
 */
export const ERR_DECODE_TRUNCATED = defineError(
  'CORDON_ERR_PCAP_DECODE_TRUNCATED',
  (layer: string, need: number, have: number) =>
    `frame too short for its ${layer} header (needs ${need} bytes, has ${have}); the frame was cut by the snap length or is malformed`,
);
export const ERR_DECODE_MALFORMED = defineError(
  'CORDON_ERR_PCAP_DECODE_MALFORMED',
  (layer: string, detail: string) => `malformed ${layer} header: ${detail}`,
);
export const ERR_DECODE_LINKTYPE = defineError(
  'CORDON_ERR_PCAP_DECODE_LINKTYPE',
  (linktype: number) =>
    `link type ${linktype} is not decoded (supported: 0, 1, 12, 14, 101, 108, 113, 228, 229, 276); capture with Ethernet, raw IP or Linux cooked headers`,
);
