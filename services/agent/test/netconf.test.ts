import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectNetSnapshot, parseProcAddress, parseProcNet, parseRoutes } from '../src/index.js';

test('/proc/net tables: listening TCP and unconnected UDP sockets, IPv4 and IPv6', () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0500000A:0016 4200000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 100 0 0 10 0`;
  assert.deepEqual(parseProcNet(tcp, 'tcp'), [{ proto: 'tcp', address: '127.0.0.1', port: 3306, process: null }]);
  const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1`;
  assert.deepEqual(parseProcNet(tcp6, 'tcp6'), [{ proto: 'tcp6', address: '::', port: 80, process: null }]);
  assert.deepEqual(parseProcAddress('B80D0120000000000000000001000000:01BB'), ['2001:db8::1', 443]);
});

test('/proc/net/route and ipv6_route', () => {
  const v4 = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100000A	0003	0	0	0	00000000	0	0	0
eth0	0000000A	00000000	0001	0	0	0	00FFFFFF	0	0	0`;
  assert.deepEqual(parseRoutes(v4, ''), [
    { destination: '0.0.0.0/0', gateway: '10.0.0.1', dev: 'eth0' },
    { destination: '10.0.0.0/24', gateway: null, dev: 'eth0' },
  ]);
});

test('a snapshot of this machine has the loopback interface and parses without error', async () => {
  const s = await collectNetSnapshot('a', 'vm', 1);
  assert.ok(s.interfaces.some((i) => i.name === 'lo'));
  for (const l of s.listening) assert.ok(l.port >= 0 && l.port < 65536);
});
