#!/usr/bin/env node
// vSphere connector: time to the first full inventory (connect -> onSync) of a 1,000-VM vCenter,
// beside the simulator's own response time for one RetrievePropertiesEx of the same view with
// the same property set (govmomi's client in infra/vcsim's driver, measured in the same run);
// then the events/s the connector follows while the driver power-cycles every VM, beside the
// rate at which the simulator raises them.
//
//   infra/vcsim/build.sh && npx tsc -b packages/vsphere && node bench/inventory-vsphere.mjs [--vms-per-cluster 500] [--workers 8]
//
// Last line: {"bench":"inventory-vsphere","metric":"first_sync_ms","value":…,"baseline":…,"ratio":…}
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createContext, silentLogger } from '@cordon/runtime';
import { VsphereConnector } from '../packages/vsphere/dist/src/index.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const PER_CLUSTER = arg('vms-per-cluster', 500);
const WORKERS = arg('workers', 8);
const ROUNDS = 3;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const simEnv = { ...process.env, VCSIM_NAME: `bench-${process.pid}` };
const started = await run(
  'bash',
  [
    `${root}infra/vcsim/start.sh`,
    '-dc',
    '1',
    '-cluster',
    '2',
    '-host',
    '10',
    '-standalone-host',
    '0',
    '-vm',
    String(PER_CLUSTER),
  ],
  {
    env: simEnv,
    timeout: 600_000,
  },
);
const vars = Object.fromEntries(
  started.stdout
    .trim()
    .split('\n')
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);
const drvEnv = { ...process.env, ...vars };
const driver = async (...a) =>
  JSON.parse(
    (await run(`${root}infra/vcsim/bin/vcsim-driver`, a, { env: drvEnv, timeout: 600_000, maxBuffer: 256 << 20 }))
      .stdout,
  );
const ctx = createContext({ log: silentLogger });
const connector = () =>
  new VsphereConnector({
    url: vars.VCSIM_URL,
    username: vars.VCSIM_USERNAME,
    password: vars.VCSIM_PASSWORD,
    caFile: vars.VCSIM_CA,
    ctx,
  });

try {
  const vms = await driver('list');
  console.log(`simulator: ${vms.length} VMs on 20 hosts in 2 clusters (govmomi v0.56.0 vcsim, ${vars.VCSIM_URL})`);

  // Baseline and connector alternate, so a noisy neighbour weighs on both alike.
  const retrieve = [];
  const firstSync = [];
  let synced = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const base = await driver('retrieve-view');
    retrieve.push(base.ms);
    const c = connector();
    const t0 = performance.now();
    let t1 = 0;
    const done = c.run({
      onSync: (s) => {
        t1 = performance.now();
        synced = s.vms.length;
        void c.stop();
      },
      onVm: () => {},
      onVmRemoved: () => {},
      onHost: () => {},
      onEvent: () => {},
    });
    await done;
    if (synced !== vms.length) throw new Error(`onSync had ${synced} VMs, the simulator ${vms.length}`);
    firstSync.push(t1 - t0);
    console.log(
      `round ${r + 1}: RetrievePropertiesEx (govmomi, ${base.objects} objects, ${base.calls} call(s)) ${base.ms.toFixed(1)} ms; connector connect -> onSync ${(t1 - t0).toFixed(1)} ms`,
    );
  }

  // How fast the simulator raises power events with nobody following (the driver alone).
  const alone = await driver('power-cycle-all', String(WORKERS));
  const aloneRate = alone.ops / alone.seconds;
  console.log(
    `simulator alone: ${alone.ops} power operations (one VmPoweredOffEvent/VmPoweredOnEvent each) at ${aloneRate.toFixed(0)} events/s`,
  );

  // Events followed while the simulator raises them as fast as the driver can.
  const c = connector();
  let events = 0;
  let lastEventAt = 0;
  let ready;
  const isReady = new Promise((r) => (ready = r));
  const running = c.run({
    onSync: () => ready(),
    onVm: () => {},
    onVmRemoved: () => {},
    onHost: () => {},
    onEvent: () => {
      events++;
      lastEventAt = performance.now();
    },
  });
  await isReady;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const cycle = await driver('power-cycle-all', String(WORKERS));
  const tDriver = performance.now();
  const expected = cycle.ops; // one VmPoweredOffEvent or VmPoweredOnEvent per successful operation
  const deadline = Date.now() + 120_000;
  while (events < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const cpu = process.cpuUsage(cpu0);
  await c.stop();
  await running;
  if (events !== expected)
    throw new Error(`the connector delivered ${events} events, the driver made ${expected} power operations`);
  const followed = events / ((lastEventAt - t0) / 1000);
  const raised = expected / ((tDriver - t0) / 1000);
  console.log(
    `events: ${events} followed at ${followed.toFixed(0)} events/s (last one ${((lastEventAt - tDriver) / 1000).toFixed(2)} s after the driver finished); ` +
      `the simulator raised them at ${raised.toFixed(0)} events/s with the connector attached (${cycle.vms} VMs power-cycled by ${WORKERS} workers, ${cycle.failed} failed); ` +
      `connector CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s over ${((lastEventAt - t0) / 1000).toFixed(1)} s`,
  );
  const value = median(firstSync);
  const baseline = median(retrieve);
  console.log(
    `first sync: ${value.toFixed(1)} ms median of ${ROUNDS}; one RetrievePropertiesEx of the same view: ${baseline.toFixed(1)} ms median; ratio ${(value / baseline).toFixed(2)}`,
  );
  console.log(
    JSON.stringify({
      bench: 'inventory-vsphere',
      metric: 'first_sync_ms',
      value: Math.round(value),
      baseline: Math.round(baseline),
      ratio: Number((value / baseline).toFixed(2)),
      events_per_s: Math.round(followed),
      raised_per_s: Math.round(raised),
      raised_alone_per_s: Math.round(aloneRate),
      vms: vms.length,
    }),
  );
} finally {
  await run('bash', [`${root}infra/vcsim/stop.sh`], { env: simEnv }).catch(() => undefined);
}
