/**
 * Against a real libvirtd (infra/libvirt/start.sh, QEMU driver in TCG mode) with tiny domains
 * (infra/libvirt/domain.sh). Needs root; skips with the reason otherwise. Every wait polls with
 * a deadline; domain names are unique per run; the domains and a daemon this file started are
 * removed at the end.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { createContext, Metrics, silentLogger } from '@cordon/runtime';
import { DEFAULT_SIDECAR_PATH, LibvirtConnector, type ConnectorCursor, type PlatformEvent } from '../src/index.js';
import { Recorder, sidecarBuilt, until } from './helpers.js';

const INFRA = fileURLToPath(new URL('../../../../infra/libvirt/', import.meta.url));
const URI = 'qemu:///system';
const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
const defined = new Set<string>();

function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-q', '-c', URI, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}
function answers(): boolean {
  return spawnSync('virsh', ['-q', '-c', URI, 'version'], { timeout: 10_000, stdio: 'ignore' }).status === 0;
}
function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

let skip: string | false = false;
let startedDaemon = false;
if (process.getuid?.() !== 0) skip = 'not root: libvirtd for qemu:///system needs root';
else if (!has('libvirtd') || !has('virsh') || !has('qemu-system-x86_64'))
  skip = 'libvirt/QEMU are not installed (infra/libvirt/deps.sh)';
else if (!sidecarBuilt) skip = `the sidecar is not built (${DEFAULT_SIDECAR_PATH}); run packages/libvirt/build.sh`;
else if (!answers()) {
  const r = spawnSync('bash', [`${INFRA}start.sh`], { encoding: 'utf8', timeout: 120_000 });
  if (r.status === 0) startedDaemon = true;
  else
    skip = `libvirtd did not start: ${(r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' | ')}`;
}
if (skip) console.log(`# libvirtd tests skipped: ${skip}`);

after(() => {
  if (skip) return;
  for (const name of defined)
    spawnSync('bash', [`${INFRA}domain.sh`, 'remove', name], { stdio: 'ignore', timeout: 120_000 });
  if (startedDaemon) spawnSync('bash', [`${INFRA}stop.sh`], { stdio: 'ignore', timeout: 120_000 });
});

interface Dom {
  name: string;
  uuid: string;
  mac: string;
}
function define(suffix: string, extra: string[] = []): Dom {
  const name = `cordon-t-${tag}-${suffix}`;
  const b = randomBytes(3);
  const mac = `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
  defined.add(name);
  const uuid = execFileSync('bash', [`${INFRA}domain.sh`, 'define', name, mac, ...extra], {
    encoding: 'utf8',
    timeout: 120_000,
  }).trim();
  return { name, uuid, mac };
}
function remove(d: Dom): void {
  execFileSync('bash', [`${INFRA}domain.sh`, 'remove', d.name], { timeout: 120_000 });
  defined.delete(d.name);
}
function connector(): LibvirtConnector {
  return new LibvirtConnector({
    uris: [URI],
    backoff: { initialMs: 200, maxMs: 2000 },
    ctx: createContext({ log: silentLogger, metrics: new Metrics() }),
  });
}
const kindsOf = (events: PlatformEvent[], d: Dom) => events.filter((e) => e.vm === d.uuid).map((e) => e.kind);
function waitKinds(rec: Recorder | (() => PlatformEvent[]), d: Dom, want: string[], timeoutMs = 90_000): Promise<void> {
  const events = () => (typeof rec === 'function' ? rec() : rec.events);
  return until(
    `${d.name}: ${want.join(',')} (have ${kindsOf(events(), d).join(',')})`,
    () => kindsOf(events(), d).length >= want.length,
    timeoutMs,
  );
}
function assertUniqueIds(events: PlatformEvent[]): void {
  const ids = events.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, `an id was delivered twice: ${ids.join(' ')}`);
}

test(
  'two domains: define, start, suspend, resume, stop, undefine give exactly the expected events and inventory',
  { skip },
  async () => {
    const rec = new Recorder();
    const c = connector();
    const running = c.run(rec);
    try {
      await until('the first sync', () => rec.syncs.length === 1);
      const a = define('a', ['--os', 'http://debian.org/debian/12']);
      const b = define('b');
      virsh('start', a.name);
      virsh('start', b.name);
      await until(
        'both domains on in the inventory',
        () => rec.vms.get(a.uuid)?.power === 'on' && rec.vms.get(b.uuid)?.power === 'on',
      );
      for (const d of [a, b]) {
        const vm = rec.vms.get(d.uuid);
        assert.equal(vm?.name, d.name);
        assert.equal(vm?.id, virsh('domuuid', d.name));
        assert.deepEqual(vm?.nics, [{ mac: d.mac, network: null, ips: [] }]);
        assert.equal(vm?.host, rec.hosts[0]?.id);
        assert.equal(vm?.template, false);
      }
      assert.equal(rec.vms.get(a.uuid)?.guestOs, 'http://debian.org/debian/12');
      assert.equal(rec.vms.get(b.uuid)?.guestOs, null);
      const snap = await c.snapshot();
      assert.deepEqual(
        snap.vms
          .filter((v) => v.id === a.uuid || v.id === b.uuid)
          .map((v) => [v.name, v.power, v.nics[0]?.mac])
          .sort(),
        [
          [a.name, 'on', a.mac],
          [b.name, 'on', b.mac],
        ],
      );
      virsh('suspend', a.name);
      await until('a suspended', () => rec.vms.get(a.uuid)?.power === 'suspended');
      virsh('resume', a.name);
      virsh('destroy', a.name);
      virsh('destroy', b.name);
      remove(a);
      remove(b);
      await waitKinds(rec, a, ['created', 'powered_on', 'suspended', 'powered_on', 'powered_off', 'deleted']);
      await waitKinds(rec, b, ['created', 'powered_on', 'powered_off', 'deleted']);
      await until('both removed from the inventory', () => !rec.vms.has(a.uuid) && !rec.vms.has(b.uuid));
      // Nothing more arrives for them.
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(kindsOf(rec.events, a), [
        'created',
        'powered_on',
        'suspended',
        'powered_on',
        'powered_off',
        'deleted',
      ]);
      assert.deepEqual(kindsOf(rec.events, b), ['created', 'powered_on', 'powered_off', 'deleted']);
      assertUniqueIds(rec.events);
      assert.ok(
        rec.events.every(
          (e) =>
            e.host === rec.hosts[0]?.id &&
            (e.vmName === a.name || e.vmName === b.name || ![a.uuid, b.uuid].includes(e.vm)),
        ),
      );
    } finally {
      await c.stop();
      await running;
    }
  },
);

test('a connector restarted from its cursor mid-sequence loses no transition and doubles none', { skip }, async () => {
  const a = define('ra');
  const b = define('rb');
  const all: PlatformEvent[] = [];
  const first = new Recorder();
  const c1 = connector();
  const run1 = c1.run(first);
  let cursor: ConnectorCursor;
  try {
    await until('the first sync', () => first.syncs.length === 1);
    virsh('start', a.name);
    await waitKinds(first, a, ['powered_on']);
    cursor = first.cursors.at(-1) as ConnectorCursor;
  } finally {
    await c1.stop();
    await run1;
  }
  all.push(...first.events);
  // While no connector runs: b starts, a stops.
  virsh('start', b.name);
  virsh('destroy', a.name);
  const second = new Recorder();
  const c2 = connector();
  const run2 = c2.run(second, JSON.parse(JSON.stringify(cursor)) as ConnectorCursor);
  try {
    await until('the resync', () => second.syncs.length === 1);
    virsh('suspend', b.name);
    virsh('destroy', b.name);
    remove(a);
    remove(b);
    const events = () => [...all, ...second.events];
    await waitKinds(events, a, ['powered_on', 'powered_off', 'deleted']);
    await waitKinds(events, b, ['powered_on', 'suspended', 'powered_off', 'deleted']);
    await new Promise((r) => setTimeout(r, 500));
    all.push(...second.events);
  } finally {
    await c2.stop();
    await run2;
  }
  // The domains were defined before the first connector started: its first sync is the baseline.
  assert.deepEqual(kindsOf(all, a), ['powered_on', 'powered_off', 'deleted']);
  assert.deepEqual(kindsOf(all, b), ['powered_on', 'suspended', 'powered_off', 'deleted']);
  assertUniqueIds(all);
  // What happened while away came from the resync, right after its onSync.
  assert.deepEqual(second.calls.slice(second.calls.indexOf('sync') + 1, second.calls.indexOf('sync') + 3).sort(), [
    `event:powered_off:${a.name}`,
    `event:powered_on:${b.name}`,
  ]);
});

test(
  'a libvirtd restart: the connector reconnects, resyncs, and reports what changed once',
  {
    skip:
      skip ||
      (!startedDaemon && 'libvirtd was not started by this test; it does not restart a daemon it did not start'),
  },
  async () => {
    const a = define('la');
    const rec = new Recorder();
    const c = connector();
    const running = c.run(rec);
    try {
      await until('the first sync', () => rec.syncs.length === 1);
      virsh('start', a.name);
      await waitKinds(rec, a, ['powered_on']);
      const pid = Number(readFileSync(`${INFRA}run/libvirtd.pid`, 'utf8'));
      process.kill(pid, 'SIGTERM');
      await until('the connector to notice', () => rec.statuses.some((s) => !s.connected), 60_000);
      const down = rec.statuses.find((s) => !s.connected);
      assert.equal(down?.error?.code, 'CORDON_ERR_LIBVIRT_DISCONNECTED');
      await until('libvirtd to exit', () => spawnSync('kill', ['-0', String(pid)]).status !== 0, 30_000);
      execFileSync('bash', [`${INFRA}start.sh`], { timeout: 120_000, stdio: 'ignore' });
      // The QEMU process survived the daemon; stop it before the connector is back (or right after).
      virsh('destroy', a.name);
      await until('the resync', () => rec.syncs.length >= 2, 60_000);
      remove(a);
      await waitKinds(rec, a, ['powered_on', 'powered_off', 'deleted']);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(kindsOf(rec.events, a), ['powered_on', 'powered_off', 'deleted']);
      assertUniqueIds(rec.events);
      assert.ok(
        rec.statuses.at(-1)?.connected === true ||
          rec.statuses.some((s, i) => s.connected && i > rec.statuses.indexOf(down!)),
      );
      assert.ok(rec.hosts.some((h) => h.connection === 'disconnected'));
    } finally {
      await c.stop();
      await running;
    }
  },
);

test(
  'a snapshot revert is one reverted event with the snapshot name; the snapshot job pause is no suspend',
  { skip },
  async () => {
    const a = define('sa', ['--disk']);
    const rec = new Recorder();
    const c = connector();
    const running = c.run(rec);
    try {
      await until('the first sync', () => rec.syncs.length === 1);
      virsh('start', a.name);
      await waitKinds(rec, a, ['powered_on']);
      virsh('snapshot-create-as', a.name, 's1');
      await until('the current snapshot in the inventory', () => rec.vms.get(a.uuid)?.snapshot === 's1');
      virsh('destroy', a.name);
      await waitKinds(rec, a, ['powered_on', 'powered_off']);
      virsh('snapshot-revert', a.name, 's1');
      await waitKinds(rec, a, ['powered_on', 'powered_off', 'reverted', 'powered_on'], 120_000);
      const reverted = rec.events.find((e) => e.vm === a.uuid && e.kind === 'reverted');
      assert.equal(reverted?.snapshot, 's1');
      assert.equal(rec.vms.get(a.uuid)?.power, 'on');
      remove(a);
      await waitKinds(rec, a, ['powered_on', 'powered_off', 'reverted', 'powered_on', 'powered_off', 'deleted']);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(kindsOf(rec.events, a), [
        'powered_on',
        'powered_off',
        'reverted',
        'powered_on',
        'powered_off',
        'deleted',
      ]);
      assertUniqueIds(rec.events);
    } finally {
      await c.stop();
      await running;
    }
  },
);
