import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter, parseMessage, ProtocolViolation } from '../src/index.js';

const dom = {
  uuid: 'e7b31696-c07a-460c-9de4-77adf44e5480',
  name: 'web-1',
  id: 3,
  state: 1,
  reason: 1,
  persistent: true,
  nics: [{ mac: '52:54:00:00:00:01', type: 'network', network: 'default', ips: ['192.168.122.10'] }],
};

test('the splitter reassembles lines across chunks and skips empty lines', () => {
  const s = new LineSplitter(64);
  assert.deepEqual(s.push(Buffer.from('{"a":')), []);
  assert.deepEqual(s.push(Buffer.from('1}\n\n{"b"')), ['{"a":1}']);
  assert.equal(s.rest, 4);
  assert.deepEqual(s.push(Buffer.from(':2}\n')), ['{"b":2}']);
  assert.equal(s.rest, 0);
  // A multi-byte character split between chunks survives.
  const bytes = Buffer.from('"é"\n');
  assert.deepEqual([...s.push(bytes.subarray(0, 2)), ...s.push(bytes.subarray(2))], ['"é"']);
});

test('a line longer than the bound is a protocol violation, also when it arrives in small pieces', () => {
  const s = new LineSplitter(16);
  assert.deepEqual(s.push(Buffer.from('x'.repeat(10))), []);
  assert.throws(
    () => s.push(Buffer.from('x'.repeat(7))),
    (e: unknown) => e instanceof ProtocolViolation && /longer than 16 bytes/.test(e.message),
  );
  assert.throws(() => new LineSplitter(16).push(Buffer.from(`${'y'.repeat(17)}\n`)), ProtocolViolation);
  // Exactly the bound is fine.
  assert.deepEqual(new LineSplitter(16).push(Buffer.from(`${'z'.repeat(16)}\n`)), ['z'.repeat(16)]);
});

test('every message type the sidecar sends parses', () => {
  assert.deepEqual(parseMessage('{"t":"host","v":1,"hostname":"kvm1","libvirtVersion":9000000}'), {
    t: 'host',
    v: 1,
    hostname: 'kvm1',
    libvirtVersion: 9000000,
  });
  const sync = parseMessage(JSON.stringify({ t: 'sync', ts: 1, domains: [dom] }));
  assert.equal(sync.t, 'sync');
  const ev = parseMessage(
    JSON.stringify({ t: 'event', ts: 2, uuid: dom.uuid, name: 'web-1', event: 2, detail: 0, dom }),
  );
  assert.equal(ev.t, 'event');
  const gone = parseMessage(
    JSON.stringify({ t: 'event', ts: 2, uuid: dom.uuid, name: 'web-1', event: 1, detail: 0, dom: null }),
  );
  assert.ok(gone.t === 'event' && gone.dom === null);
  assert.equal(parseMessage('{"t":"disconnected","message":"eof"}').t, 'disconnected');
  assert.equal(parseMessage('{"t":"error","code":"connect","message":"no socket"}').t, 'error');
});

test('hostile lines are refused with what was wrong', () => {
  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{"t":"host"', /not JSON/],
    ['a JSON array', '[1,2]', /message/],
    ['a JSON string', '"hello"', /message/],
    ['an unknown type', '{"t":"shell","cmd":"rm -rf /"}', /t: Invalid discriminator/],
    ['an unknown field', '{"t":"disconnected","message":"x","extra":1}', /Unrecognized key/],
    ['a prototype-polluting key', '{"t":"disconnected","message":"x","__proto__":{"admin":true}}', /Unrecognized key/],
    ['another protocol version', '{"t":"host","v":2,"hostname":"h","libvirtVersion":1}', /v: Invalid literal/],
    [
      'an upper-case UUID',
      JSON.stringify({ t: 'event', ts: 1, uuid: dom.uuid.toUpperCase(), name: 'a', event: 2, detail: 0 }),
      /uuid: a lower-case UUID/,
    ],
    [
      'an upper-case MAC',
      JSON.stringify({ t: 'sync', ts: 1, domains: [{ ...dom, nics: [{ ...dom.nics[0], mac: '52:54:00:00:00:AA' }] }] }),
      /domains\.0\.nics\.0\.mac/,
    ],
    [
      'a state libvirt does not have',
      JSON.stringify({ t: 'sync', ts: 1, domains: [{ ...dom, state: 99 }] }),
      /domains\.0\.state/,
    ],
    ['a fractional domain id', JSON.stringify({ t: 'sync', ts: 1, domains: [{ ...dom, id: 1.5 }] }), /domains\.0\.id/],
    ['an empty name', JSON.stringify({ t: 'event', ts: 1, uuid: dom.uuid, name: '', event: 2, detail: 0 }), /name/],
    [
      'a huge name',
      JSON.stringify({ t: 'event', ts: 1, uuid: dom.uuid, name: 'n'.repeat(5000), event: 2, detail: 0 }),
      /name/,
    ],
    [
      'too many addresses',
      JSON.stringify({
        t: 'sync',
        ts: 1,
        domains: [{ ...dom, nics: [{ ...dom.nics[0], ips: Array(65).fill('10.0.0.1') }] }],
      }),
      /ips/,
    ],
    ['a negative timestamp', JSON.stringify({ t: 'sync', ts: -1, domains: [] }), /ts/],
    [
      'a string where a number goes',
      '{"t":"event","ts":"now","uuid":"e7b31696-c07a-460c-9de4-77adf44e5480","name":"a","event":2,"detail":0}',
      /ts/,
    ],
  ];
  for (const [what, line, expected] of bad) {
    assert.throws(
      () => parseMessage(line),
      (e: unknown) => {
        assert.ok(e instanceof ProtocolViolation, what);
        assert.match(e.message, expected, what);
        return true;
      },
    );
  }
});
