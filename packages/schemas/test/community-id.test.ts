import { test } from 'node:test';
import assert from 'node:assert/strict';
import { communityId, ipBytes, protoNumber } from '../src/index.js';

/**
 * The Community ID spec's baseline (corelight/community-id-spec, baseline/baseline_deflt.json
 * for seed 0 and baseline_seed1.json for seed 1): [proto, src, dst, sport, dport, seed 0, seed 1].
 * For ICMP and ICMPv6 the ports are the message type and code.
 */
const VECTORS: Array<[number, string, string, number | null, number | null, string, string]> = [
  [
    58,
    'fe80::200:86ff:fe05:80da',
    'fe80::260:97ff:fe07:69ea',
    135,
    136,
    '1:dGHyGvjMfljg6Bppwm3bg0LO8TY=',
    '1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=',
  ],
  [
    58,
    'fe80::260:97ff:fe07:69ea',
    'fe80::200:86ff:fe05:80da',
    136,
    135,
    '1:dGHyGvjMfljg6Bppwm3bg0LO8TY=',
    '1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=',
  ],
  [
    58,
    'fe80::260:97ff:fe07:69ea',
    'fe80::200:86ff:fe05:80da',
    135,
    136,
    '1:zavyT/cezQr1fmImYCwYnMXbgck=',
    '1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=',
  ],
  [
    58,
    'fe80::200:86ff:fe05:80da',
    'fe80::260:97ff:fe07:69ea',
    136,
    135,
    '1:zavyT/cezQr1fmImYCwYnMXbgck=',
    '1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=',
  ],
  [
    58,
    '3ffe:501:1800:2345::2',
    '3ffe:507:0:1:200:86ff:fe05:80da',
    3,
    0,
    '1:2ObVBgIn28oZvibYZhZMBgh7WdQ=',
    '1:lVEtCZpYu84Xqaa++3lXFyuu2n4=',
  ],
  [
    58,
    '3ffe:501:410:0:2c0:dfff:fe47:33e',
    '3ffe:507:0:1:200:86ff:fe05:80da',
    1,
    4,
    '1:hLZd0XGWojozrvxqE0dWB1iM6R0=',
    '1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=',
  ],
  [
    58,
    '3ffe:507:0:1:200:86ff:fe05:80da',
    '3ffe:501:0:1001::2',
    128,
    129,
    '1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=',
    '1:GfZxjAkDk2MkegpBYHV6tadtFXQ=',
  ],
  [
    58,
    '3ffe:501:0:1001::2',
    '3ffe:507:0:1:200:86ff:fe05:80da',
    129,
    128,
    '1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=',
    '1:GfZxjAkDk2MkegpBYHV6tadtFXQ=',
  ],
  [
    58,
    'fe80::200:86ff:fe05:80da',
    'ff02::2',
    133,
    134,
    '1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=',
    '1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=',
  ],
  [
    58,
    'fe80::260:97ff:fe07:69ea',
    'ff02::1',
    134,
    133,
    '1:pkvHqCL88/tg1k4cPigmZXUtL00=',
    '1:K/ee5UCqAMAQXDorP5nSa2CGLjc=',
  ],
  [1, '192.168.0.89', '192.168.0.1', 8, 0, '1:X0snYXpgwiv9TZtqg64sgzUn6Dk=', '1:03g6IloqVBdcZlPyX8r0hgoE7kA='],
  [1, '192.168.0.1', '192.168.0.89', 0, 8, '1:X0snYXpgwiv9TZtqg64sgzUn6Dk=', '1:03g6IloqVBdcZlPyX8r0hgoE7kA='],
  [1, '10.0.0.1', '10.0.0.2', 11, 0, '1:YHxtAirCG//0OzkcVAukqKQN9xM=', '1:XjUibYHaafLQ3pxQeiMI8g25q20='],
  [
    6,
    '2001:470:e5bf:dead:4957:2174:e82c:4887',
    '2607:f8b0:400c:c03::1a',
    63943,
    25,
    '1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=',
    '1:eJYTW6AOzFLlSUoESovMjnu7rMw=',
  ],
  [
    6,
    '2607:f8b0:400c:c03::1a',
    '2001:470:e5bf:dead:4957:2174:e82c:4887',
    25,
    63943,
    '1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=',
    '1:eJYTW6AOzFLlSUoESovMjnu7rMw=',
  ],
  [132, '192.168.170.8', '192.168.170.56', 7, 7, '1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=', '1:5w3ZRjeKBzqT3zsaEECDGjUbYeg='],
  [132, '192.168.170.56', '192.168.170.8', 7, 7, '1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=', '1:5w3ZRjeKBzqT3zsaEECDGjUbYeg='],
  [
    6,
    '128.232.110.120',
    '66.35.250.204',
    34855,
    80,
    '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    '1:3V71V58M3Ksw/yuFALMcW0LAHvc=',
  ],
  [
    6,
    '66.35.250.204',
    '128.232.110.120',
    80,
    34855,
    '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    '1:3V71V58M3Ksw/yuFALMcW0LAHvc=',
  ],
  [17, '192.168.1.52', '8.8.8.8', 54585, 53, '1:d/FP5EW3wiY1vCndhwleRRKHowQ=', '1:Q9We8WO3piVF8yEQBNJF4uiSVrI='],
  [17, '8.8.8.8', '192.168.1.52', 53, 54585, '1:d/FP5EW3wiY1vCndhwleRRKHowQ=', '1:Q9We8WO3piVF8yEQBNJF4uiSVrI='],
  [46, '10.1.12.1', '10.1.12.2', null, null, '1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=', '1:rYir8gphR31noO9iDRQmF/BteEI='],
  [46, '10.1.12.2', '10.1.12.1', null, null, '1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=', '1:rYir8gphR31noO9iDRQmF/BteEI='],
];

test('Community ID v1 matches every test vector of the spec, seed 0 and seed 1', () => {
  for (const [proto, srcIp, dstIp, srcPort, dstPort, seed0, seed1] of VECTORS) {
    assert.equal(
      communityId({ proto, srcIp, dstIp, srcPort, dstPort }),
      seed0,
      `${proto} ${srcIp}:${srcPort} > ${dstIp}:${dstPort}`,
    );
    assert.equal(
      communityId({ proto, srcIp, dstIp, srcPort, dstPort, seed: 1 }),
      seed1,
      `seed 1: ${proto} ${srcIp}:${srcPort} > ${dstIp}:${dstPort}`,
    );
  }
});

test('addresses parse to network-order bytes; what is not an address gives no id', () => {
  assert.deepEqual([...ipBytes('10.0.0.1')!], [10, 0, 0, 1]);
  assert.equal(ipBytes('::ffff:10.0.0.1')!.toString('hex'), '00000000000000000000ffff0a000001');
  assert.equal(ipBytes('2001:db8::1')!.toString('hex'), '20010db8000000000000000000000001');
  assert.equal(ipBytes('::')!.toString('hex'), '0'.repeat(32));
  assert.equal(ipBytes('fe80::1%eth0')!.toString('hex'), 'fe800000000000000000000000000001');
  assert.equal(communityId({ proto: 6, srcIp: 'web-1', dstIp: '10.0.0.1', srcPort: 1, dstPort: 2 }), null);
  assert.equal(
    communityId({ proto: 6, srcIp: '10.0.0.1', dstIp: '::1', srcPort: 1, dstPort: 2 }),
    null,
    'mixed families',
  );
  assert.equal(protoNumber('TCP'), 6);
  assert.equal(protoNumber('IPv6-ICMP'), 58);
  assert.equal(protoNumber('47'), 47);
  assert.equal(protoNumber('bogus'), null);
});
