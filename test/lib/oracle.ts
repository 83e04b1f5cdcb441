/**
 * tshark as the oracle for flow accounting: its conversation tables (conv,tcp / conv,udp /
 * conv,ip / conv,ipv6) and its per-frame dissection of the same capture.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Packets and bytes each way between two endpoints ("addr" or "addr:port"). */
export interface Conv {
  a: string;
  b: string;
  framesAtoB: number;
  bytesAtoB: Bytes;
  framesBtoA: number;
  bytesBtoA: Bytes;
}

/**
 * tshark 4.0 prints byte counts under 10000 exactly ("808 bytes") and larger ones floored
 * to an SI unit ("24 kB" = 24000..24999). `exact` is null when only the floor is known.
 */
export interface Bytes {
  exact: number | null;
  display: string;
}

export interface TsharkView {
  tcp: Conv[];
  udp: Conv[];
  ip: Conv[];
  ipv6: Conv[];
  frames: TsharkFrame[];
}

export interface TsharkFrame {
  number: number;
  len: number;
  /** Every IPv4/IPv6 source in the frame, outer first (more than one: a tunnel or an ICMP error quoting a packet). */
  ipSrc: string[];
  ipDst: string[];
  tcpPorts: number[];
  udpPorts: number[];
}

export async function tsharkAvailable(): Promise<string | null> {
  try {
    const { stdout } = await run('tshark', ['--version']);
    return stdout.split('\n')[0] ?? 'tshark';
  } catch {
    return null;
  }
}

const FIELDS = [
  'frame.number',
  'frame.len',
  'ip.src',
  'ip.dst',
  'ipv6.src',
  'ipv6.dst',
  'tcp.srcport',
  'tcp.dstport',
  'udp.srcport',
  'udp.dstport',
];

export async function tshark(file: string): Promise<TsharkView> {
  // One run gives both the per-frame fields (printed first) and the conversation tables.
  const args = ['-n', '-r', file, '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of FIELDS) args.push('-e', f);
  args.push('-z', 'conv,tcp', '-z', 'conv,udp', '-z', 'conv,ip', '-z', 'conv,ipv6');
  const { stdout } = await run('tshark', args, { maxBuffer: 256 * 1024 * 1024 });
  const view: TsharkView = { tcp: [], udp: [], ip: [], ipv6: [], frames: [] };
  let table: Conv[] | null = null;
  const list = (s: string | undefined) => (s ? s.split(',').filter(Boolean) : []);
  for (const line of stdout.split('\n')) {
    if (line.startsWith('TCP Conversations')) table = view.tcp;
    else if (line.startsWith('UDP Conversations')) table = view.udp;
    else if (line.startsWith('IPv4 Conversations')) table = view.ip;
    else if (line.startsWith('IPv6 Conversations')) table = view.ipv6;
    else if (table) {
      const conv = parseConvLine(line);
      if (conv) table.push(conv);
    } else if (/^\d+\|/.test(line)) {
      const c = line.split('|');
      view.frames.push({
        number: Number(c[0]),
        len: Number(c[1]),
        ipSrc: [...list(c[2]), ...list(c[4])],
        ipDst: [...list(c[3]), ...list(c[5])],
        tcpPorts: [...list(c[6]), ...list(c[7])].map(Number),
        udpPorts: [...list(c[8]), ...list(c[9])].map(Number),
      });
    }
  }
  return view;
}

const BYTES = '(\\d+) (bytes|kB|MB|GB|TB)';
const CONV_LINE = new RegExp(
  `^(\\S+)\\s+<->\\s+(\\S+)\\s+(\\d+)\\s+${BYTES}\\s+(\\d+)\\s+${BYTES}\\s+(\\d+)\\s+${BYTES}`,
);

function parseConvLine(line: string): Conv | null {
  const m = CONV_LINE.exec(line);
  if (!m) return null;
  const bytes = (n: string, unit: string): Bytes => ({
    exact: unit === 'bytes' ? Number(n) : null,
    display: `${n} ${unit}`,
  });
  // Columns: "<-" is B→A, "->" is A→B (checked against the per-frame fields in the test).
  return {
    a: m[1]!,
    b: m[2]!,
    framesBtoA: Number(m[3]),
    bytesBtoA: bytes(m[4]!, m[5]!),
    framesAtoB: Number(m[6]),
    bytesAtoB: bytes(m[7]!, m[8]!),
  };
}

/** How tshark 4.0 shows a byte count (wsutil format_size, SI prefixes, floored, ≥ 10 of a unit). */
export function tsharkBytes(n: number): string {
  const units = ['TB', 'GB', 'MB', 'kB'];
  for (let i = 0; i < units.length; i++) {
    const p = 1000 ** (units.length - i);
    if (Math.floor(n / p) >= 10) return `${Math.floor(n / p)} ${units[i]}`;
  }
  return `${n} bytes`;
}
