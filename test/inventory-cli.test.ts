/**
 * `cordon inventory watch` and `cordon vms` as an administrator runs them: against the vSphere
 * simulator (credentials from a file, the simulator's CA), against a real libvirtd (as root),
 * and `cordon up` with an inventory section publishing what `cordon vms` then reads back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { skipReason, startSim } from '@cordon/testkit';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'services', 'cli', 'bin', 'cordon.js');
const ENV = {
  ...process.env,
  CORDON_KAFKA_BROKERS: '',
  CORDON_CLICKHOUSE_URL: '',
  CORDON_LOG_LEVEL: 'warn',
  CORDON_VSPHERE_USERNAME: '',
  CORDON_VSPHERE_PASSWORD: '',
};
const cordon = async (args: string[]) =>
  (await promisify(execFile)(process.execPath, [CLI, ...args], { env: ENV, maxBuffer: 16 << 20 })).stdout;

const vcsimSkip = skipReason();

test(
  'cordon inventory watch --once and cordon vms against vCenter: one JSON line per VM with its host',
  { skip: vcsimSkip ?? false, timeout: 180_000 },
  async (t) => {
    const sim = await startSim(t, ['-cluster', '1', '-host', '2', '-standalone-host', '1', '-vm', '2']);
    const dir = mkdtempSync(join(tmpdir(), 'cordon-vms-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cred = join(dir, 'vsphere.cred');
    writeFileSync(cred, `CORDON_VSPHERE_USERNAME=${sim.username}\nCORDON_VSPHERE_PASSWORD=${sim.password}\n`, {
      mode: 0o600,
    });
    const src = ['--source', `vsphere+${sim.url}`, '--credentials', cred, '--ca', sim.ca];
    const lines = (await cordon(['inventory', 'watch', ...src, '--once', '--format', 'json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const vms = await sim.list();
    assert.equal(lines.length, vms.length);
    for (const v of vms) {
      const l = lines.find((x) => x.id === v.instanceUuid);
      assert.ok(l, `${v.name} is listed`);
      for (const k of ['id', 'name', 'host', 'power', 'guest_os', 'macs'])
        assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
      assert.equal(l.name, v.name);
      assert.equal(l.host, v.hostName);
      assert.equal(l.power, { poweredOn: 'on', poweredOff: 'off', suspended: 'suspended' }[v.power]);
      assert.ok(Array.isArray(l.macs) && (l.macs as string[]).length === 1);
    }
    const table = await cordon(['vms', ...src]);
    for (const v of vms) assert.match(table, new RegExp(`${v.name}\\s+${v.instanceUuid}\\s+${v.hostName}\\s+`));
    // no password in argv, none in the output
    assert.ok(!table.includes(sim.password));
  },
);

const libvirtSkip = (() => {
  if (process.getuid?.() !== 0) return 'not root: libvirtd for qemu:///system needs root';
  for (const b of ['libvirtd', 'virsh'])
    if (spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0) return `${b} is not installed (infra/libvirt/deps.sh)`;
  return false;
})();
if (libvirtSkip) console.log(`# libvirt CLI test skipped: ${libvirtSkip}`);

test(
  'cordon vms against libvirtd shows the domains defined, with their MACs and power',
  { skip: libvirtSkip, timeout: 180_000 },
  async (t) => {
    const infra = join(ROOT, 'infra', 'libvirt');
    const started = spawnSync('bash', [join(infra, 'start.sh')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(started.status, 0, started.stderr);
    const names = [`cli-a-${process.pid}`, `cli-b-${process.pid}`];
    const macs = ['52:54:00:c1:00:01', '52:54:00:c1:00:02'];
    t.after(() => {
      for (const n of names) spawnSync('bash', [join(infra, 'domain.sh'), 'remove', n], { stdio: 'ignore' });
      if (/started libvirtd/.test(started.stderr)) spawnSync('bash', [join(infra, 'stop.sh')], { stdio: 'ignore' });
    });
    const uuids = names.map((n, i) =>
      execFileSync('bash', [join(infra, 'domain.sh'), 'define', n, macs[i]!], { encoding: 'utf8' }).trim(),
    );
    execFileSync('virsh', ['-q', '-c', 'qemu:///system', 'start', names[0]!]);
    const lines = (await cordon(['vms', '--source', 'libvirt+qemu:///system', '--format', 'json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; name: string; power: string; macs: string[] });
    for (const [i, n] of names.entries()) {
      const l = lines.find((x) => x.name === n);
      assert.ok(l, `${n} listed in ${JSON.stringify(lines)}`);
      assert.equal(l.id, uuids[i]);
      assert.deepEqual(l.macs, [macs[i]]);
      assert.equal(l.power, i === 0 ? 'on' : 'off');
    }
    const table = await cordon(['vms', '--source', 'libvirt+qemu:///system']);
    assert.match(table, new RegExp(`${names[0]}\\s+${uuids[0]}\\s+\\S+\\s+on`));
  },
);

test(
  'cordon up with an inventory section publishes the inventory file; cordon vms reads it from the topic',
  { timeout: 180_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-up-inventory-'));
    try {
      const inv = join(dir, 'inventory.yaml');
      writeFileSync(
        inv,
        [
          'hosts:',
          '  hv9:',
          '    vms:',
          '      app-1:',
          '        nics: [{ mac: "52:54:00:99:00:01", ips: [10.9.0.1] }]',
          '',
        ].join('\n'),
      );
      writeFileSync(
        join(dir, 'cordon.yaml'),
        `inventory:\n  sources:\n    - url: ${JSON.stringify(pathToFileURL(inv).href)}\n`,
      );
      const data = join(dir, 'data');
      await cordon([
        'up',
        '--exit',
        '--no-demo',
        '--services',
        'inventory',
        '--data-dir',
        data,
        '--metrics-addr',
        'off',
        '--config',
        join(dir, 'cordon.yaml'),
      ]);
      const rows = (await cordon(['vms', '--format', 'json', '--data-dir', data]))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { name: string; host: string; ips: string[] });
      assert.deepEqual(
        rows.map((r) => [r.name, r.host, r.ips]),
        [['app-1', 'hv9', ['10.9.0.1']]],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
