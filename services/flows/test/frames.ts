/** Build Ethernet/IPv4 TCP and UDP frames for flow-table scenarios the corpus does not isolate. */
import type { Packet, PacketBatch } from '@cordon/schemas';

export const F = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export interface Ep {
  ip: string;
  port: number;
}

function ipv4(
  proto: number,
  src: string,
  dst: string,
  l4: Buffer,
  opts: { fragOffset?: number; more?: boolean; id?: number } = {},
): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h.writeUInt16BE(opts.id ?? 1, 4);
  h.writeUInt16BE(((opts.fragOffset ?? 0) / 8) | (opts.more ? 0x2000 : 0), 6);
  h[8] = 64;
  h[9] = proto;
  Buffer.from(src.split('.').map(Number)).copy(h, 12);
  Buffer.from(dst.split('.').map(Number)).copy(h, 16);
  const eth = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
  return Buffer.concat([eth, h, l4]);
}

export function tcp(from: Ep, to: Ep, flags: number, payload = 0): Buffer {
  const t = Buffer.alloc(20 + payload);
  t.writeUInt16BE(from.port, 0);
  t.writeUInt16BE(to.port, 2);
  t[12] = 5 << 4;
  t[13] = flags;
  return ipv4(6, from.ip, to.ip, t);
}

export function udp(from: Ep, to: Ep, payload = 10): Buffer {
  const u = Buffer.alloc(8 + payload);
  u.writeUInt16BE(from.port, 0);
  u.writeUInt16BE(to.port, 2);
  u.writeUInt16BE(8 + payload, 4);
  return ipv4(17, from.ip, to.ip, u);
}

/** A later IPv4 fragment (no UDP header in it). */
export function udpFragment(from: Ep, to: Ep, offset: number, id: number): Buffer {
  return ipv4(17, from.ip, to.ip, Buffer.alloc(100), { fragOffset: offset, id });
}

let seq = 0;
export function pkt(ts_us: number, frame: Buffer, orig_len = frame.length): Packet {
  return { ts_us, seq: seq++, orig_len, frame };
}

export function batch(
  packets: Packet[],
  o: { sensor?: string; end?: boolean; linktype?: number; vm?: string | null } = {},
): PacketBatch {
  return {
    batch_id: `${o.sensor ?? 's1'}:${packets[0]?.seq ?? 'end'}`,
    sensor: o.sensor ?? 's1',
    vm: o.vm ?? null,
    linktype: o.linktype ?? 1,
    end_of_source: o.end ?? false,
    recovery_of: null,
    packets,
  };
}
