/**
 * An Ethernet + IPv4 + UDP frame for tests that feed the dpi or a sensor (IP checksum set, UDP
 * checksum 0: the engines inspect with checksum "off" or "auto"). Defaults: 203.0.113.9:40000 →
 * 10.0.0.10:5353, destination MAC 02:00:00:00:00:01, source MAC 02:00:00:00:00:02.
 */
export function udpFrame(
  payload: string | Buffer,
  o: { src?: string; dst?: string; sport?: number; dport?: number; dstMac?: string; srcMac?: string } = {},
): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const mac = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
  const eth = Buffer.alloc(14);
  mac(o.dstMac ?? '02:00:00:00:00:01').copy(eth, 0);
  mac(o.srcMac ?? '02:00:00:00:00:02').copy(eth, 6);
  eth.writeUInt16BE(0x0800, 12);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from((o.src ?? '203.0.113.9').split('.').map(Number)).copy(ip, 12);
  Buffer.from((o.dst ?? '10.0.0.10').split('.').map(Number)).copy(ip, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(o.sport ?? 40000, 0);
  udp.writeUInt16BE(o.dport ?? 5353, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  return Buffer.concat([eth, ip, udp, data]);
}
