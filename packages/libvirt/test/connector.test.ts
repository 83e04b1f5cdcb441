import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createContext, Metrics, silentLogger } from '@cordon/runtime';
import {
  ERR_LIBVIRT_CONFIG,
  ERR_LIBVIRT_CURSOR,
  ERR_LIBVIRT_SIDECAR_MISSING,
  fromUrl,
  LibvirtConnector,
  redactUri,
} from '../src/index.js';
import { fakeSidecar, Recorder, runCount, tempDir, until } from './helpers.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const dom = (state: number, name = 'a', uuid = A) => ({
  uuid,
  name,
  id: state === 5 ? -1 : 1,
  state,
  reason: 1,
  persistent: true,
  nics: [{ mac: '52:54:00:00:00:01', type: 'user', ips: [] }],
});
const host = { t: 'host', v: 1, hostname: 'kvm1', libvirtVersion: 9000000 };
const ctx = () => createContext({ log: silentLogger, metrics: new Metrics() });
const fast = { initialMs: 20, maxMs: 80, factor: 2 };

test('options are parsed once: unknown keys and bad URIs are errors that name them; the source has no credentials', () => {
  assert.throws(
    () => new LibvirtConnector({ uris: ['qemu:///system'], retries: 3 } as never),
    (e: unknown) => ERR_LIBVIRT_CONFIG.is(e) && /unknown option "retries"/.test(e.message),
  );
  assert.throws(
    () => new LibvirtConnector({ uris: [] }),
    (e: unknown) => ERR_LIBVIRT_CONFIG.is(e) && /uris/.test(e.message),
  );
  assert.throws(
    () => new LibvirtConnector({ uris: ['/var/run/libvirt/libvirt-sock'] }),
    (e: unknown) => ERR_LIBVIRT_CONFIG.is(e) && /not a libvirt URI/.test(e.message),
  );
  assert.throws(
    () => new LibvirtConnector({ uris: ['qemu:///system'], backoff: { initialMs: 0 } }),
    (e: unknown) => ERR_LIBVIRT_CONFIG.is(e) && /backoff\.initialMs/.test(e.message),
  );
  assert.throws(
    () => fromUrl('qemu:///system'),
    (e: unknown) => ERR_LIBVIRT_CONFIG.is(e) && /does not start with "libvirt\+"/.test(e.message),
  );
  const c = fromUrl(['libvirt+qemu:///system', 'libvirt+qemu+tcp://admin:s3cret@kvm2:16509/system?password=x']);
  assert.equal(c.kind, 'libvirt');
  assert.equal(c.source, 'libvirt+qemu:///system,libvirt+qemu+tcp://admin@kvm2:16509/system?password=redacted');
  assert.doesNotMatch(c.source, /s3cret/);
  assert.equal(redactUri('qemu+ssh://root@kvm1/system'), 'qemu+ssh://root@kvm1/system');
});

test('the backoff is exponential, capped, and jittered within [half, full]', () => {
  const lo = new LibvirtConnector({
    uris: ['qemu:///system'],
    backoff: { initialMs: 100, maxMs: 1000, factor: 2 },
    random: () => 0,
  });
  const hi = new LibvirtConnector({
    uris: ['qemu:///system'],
    backoff: { initialMs: 100, maxMs: 1000, factor: 2 },
    random: () => 0.999999,
  });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10, 1000].map((a) => lo.backoffMs(a)),
    [50, 100, 200, 400, 500, 500, 500],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10, 1000].map((a) => hi.backoffMs(a)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
});

test('a missing sidecar is a coded error that says how to build it', async () => {
  const c = new LibvirtConnector({ uris: ['qemu:///system'], sidecarPath: '/nonexistent/cordon-libvirt-sidecar' });
  await assert.rejects(c.snapshot(), (e: unknown) => ERR_LIBVIRT_SIDECAR_MISSING.is(e) && /build\.sh/.test(e.message));
  await assert.rejects(c.run(new Recorder()), (e: unknown) => ERR_LIBVIRT_SIDECAR_MISSING.is(e));
});

test('a bad cursor is refused before anything starts', async (t) => {
  const dir = tempDir(t);
  const c = new LibvirtConnector({ uris: ['qemu:///system'], sidecarPath: fakeSidecar(dir, [[host]]) });
  await assert.rejects(c.run(new Recorder(), { v: 7 }), (e: unknown) => ERR_LIBVIRT_CURSOR.is(e));
  assert.equal(runCount(dir), 0);
});

test('hostile or crashing sidecars are killed and restarted with backoff; the state resyncs each time', async (t) => {
  const dir = tempDir(t);
  const runs: unknown[][] = [
    [
      host,
      { t: 'sync', ts: 1, domains: [dom(5)] },
      '{"t":"event","ts":2,"uuid":"not-a-uuid","name":"a","event":2,"detail":0}\n',
    ],
    [host, 'this is not json\n'],
    [host, `{"t":"sync","ts":3,"domains":[${' '.repeat(2000)}`], // a line without end, over the bound
    [host, { exit: 1 }],
    [host, { t: 'sync', ts: 4, domains: [dom(1)] }, '{"t":"event"', { exit: 0 }], // dies mid-line
    [
      host,
      {
        t: 'error',
        code: 'connect',
        message: 'dial unix /var/run/libvirt/libvirt-sock: connect: no such file or directory',
      },
      { exit: 2 },
    ],
    [
      host,
      { t: 'sync', ts: 5, domains: [dom(1)] },
      { t: 'event', ts: 6, uuid: A, name: 'a', event: 5, detail: 1, dom: dom(5) },
      { t: 'disconnected', message: 'libvirt closed the connection' },
      { exit: 3 },
    ],
    [{ t: 'sync', ts: 7, domains: [] }, host], // out of order: state before saying which host
    [host, { t: 'sync', ts: 8, domains: [dom(5)] }],
  ];
  const metrics = new Metrics();
  const c = new LibvirtConnector({
    uris: ['qemu:///system'],
    sidecarPath: fakeSidecar(dir, runs),
    backoff: fast,
    maxLineBytes: 1024,
    ctx: createContext({ log: silentLogger, metrics }),
  });
  const rec = new Recorder();
  const running = c.run(rec);
  await until('the ninth sidecar to sync', () => rec.syncs.length >= 4 && runCount(dir) >= 9, 30_000);
  await c.stop();
  await running;
  const codes = rec.statuses.filter((s) => !s.connected).map((s) => s.error?.code);
  assert.deepEqual(codes, [
    'CORDON_ERR_LIBVIRT_PROTOCOL',
    'CORDON_ERR_LIBVIRT_PROTOCOL',
    'CORDON_ERR_LIBVIRT_PROTOCOL',
    'CORDON_ERR_LIBVIRT_SIDECAR_EXIT',
    'CORDON_ERR_LIBVIRT_PROTOCOL',
    'CORDON_ERR_LIBVIRT_CONNECT',
    'CORDON_ERR_LIBVIRT_DISCONNECTED',
    'CORDON_ERR_LIBVIRT_PROTOCOL',
  ]);
  assert.match(
    rec.statuses.find((s) => s.error?.code === 'CORDON_ERR_LIBVIRT_PROTOCOL')?.error?.message ?? '',
    /uuid: a lower-case UUID/,
  );
  assert.match(
    rec.statuses.find((s) => s.error?.code === 'CORDON_ERR_LIBVIRT_CONNECT')?.error?.message ?? '',
    /no such file or directory/,
  );
  // Every resync reports the power change that happened while away, each transition once.
  assert.deepEqual(
    rec.events.map((e) => e.kind),
    ['powered_on', 'powered_off'],
  );
  assert.equal(new Set(rec.events.map((e) => e.id)).size, rec.events.length);
  assert.deepEqual(rec.hosts.map((h) => h.connection).slice(0, 2), ['connected', 'disconnected']);
  assert.equal(metrics.get('libvirt.restarts'), 8);
  // The URI goes to the sidecar on stdin, never on its command line.
  assert.match(readFileSync(join(dir, 'configs'), 'utf8'), /"uri":"qemu:\/\/\/system","follow":true/);
});

test('handlers run one at a time, in order; a handler that throws stops run() with its error', async (t) => {
  const dir = tempDir(t);
  const evs = [2, 3, 4, 5].map((event, i) => ({
    t: 'event',
    ts: 10 + i,
    uuid: A,
    name: 'a',
    event,
    detail: 0,
    dom: dom(event === 5 ? 5 : event === 3 ? 3 : 1),
  }));
  const c = new LibvirtConnector({
    uris: ['qemu:///system'],
    sidecarPath: fakeSidecar(dir, [[host, { t: 'sync', ts: 1, domains: [dom(5)] }, ...evs]]),
    backoff: fast,
    ctx: ctx(),
  });
  let inside = 0;
  let maxInside = 0;
  const order: string[] = [];
  const rec = new Recorder();
  const slow = {
    ...rec,
    onSync: async () => {
      order.push('sync');
    },
    onHost: () => undefined,
    onVm: async () => {
      inside += 1;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 20));
      inside -= 1;
    },
    onVmRemoved: () => undefined,
    onEvent: async (e: { kind: string }) => {
      inside += 1;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 20));
      order.push(e.kind);
      inside -= 1;
      if (e.kind === 'powered_off') throw new Error('the store is full');
    },
  };
  await assert.rejects(c.run(slow), /the store is full/);
  assert.deepEqual(order, ['sync', 'powered_on', 'suspended', 'powered_on', 'powered_off']);
  assert.equal(maxInside, 1);
  assert.equal(runCount(dir), 1, 'no restart after a handler failure');
});

test('snapshot() returns every host once, without following, and times out on a silent sidecar', async (t) => {
  const dir = tempDir(t);
  const c = new LibvirtConnector({
    uris: ['qemu+ssh://kvm7/system'],
    sidecarPath: fakeSidecar(dir, [
      [host, { t: 'sync', ts: 1, domains: [dom(1), dom(3, 'b', 'bbbbbbbb-0000-4000-8000-000000000002')] }, { exit: 0 }],
      [host, { wait: 60_000 }],
    ]),
    snapshotTimeoutMs: 300,
  });
  const s = await c.snapshot();
  assert.deepEqual(s.hosts, [{ id: 'kvm7', name: 'kvm7', cluster: null, connection: 'connected' }]);
  assert.deepEqual(
    s.vms.map((v) => [v.name, v.host, v.power]),
    [
      ['a', 'kvm7', 'on'],
      ['b', 'kvm7', 'suspended'],
    ],
  );
  assert.match(readFileSync(join(dir, 'configs'), 'utf8'), /"follow":false/);
  await assert.rejects(c.snapshot(), /CORDON_ERR_LIBVIRT_TIMEOUT|no state from libvirt/);
});
