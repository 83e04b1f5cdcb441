#!/usr/bin/env node
// Record real vim25 responses from our own simulator (infra/vcsim) into test/fixtures/*.xml, for
// the recorded-response unit tests (test/soap.test.ts, test/inventory.test.ts). Rerun after a
// govmomi upgrade:
//
//   infra/vcsim/build.sh && npx tsc -b packages/vsphere && node packages/vsphere/scripts/record-fixtures.mjs
//
// The simulator's random password and session keys end up in some responses; they are test
// values of a throwaway simulator. Login requests are never recorded, only responses.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SoapTransport, Vim25, moref, viewSpec, VIEW_TYPES, EVENT_TYPE_IDS } from '../dist/src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');
const fixtures = join(here, '../test/fixtures');

function start(name, args) {
  const out = execFileSync('bash', [join(root, 'infra/vcsim/start.sh'), ...args], {
    env: { ...process.env, VCSIM_NAME: name },
    encoding: 'utf8',
  });
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}
function stop(name) {
  execFileSync('bash', [join(root, 'infra/vcsim/stop.sh')], {
    env: { ...process.env, VCSIM_NAME: name },
    stdio: 'ignore',
  });
}
function driver(env, ...args) {
  return JSON.parse(
    execFileSync(join(root, 'infra/vcsim/bin/vcsim-driver'), args, {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    }),
  );
}

/** A session whose next response to `method` is saved as `file`. */
async function session(env, { login = true } = {}) {
  let want = null;
  const t = new SoapTransport({
    url: env.VCSIM_URL,
    ca: readFileSync(env.VCSIM_CA, 'utf8'),
    onResponse: (method, status, body) => {
      if (want && want.method === method) {
        writeFileSync(join(fixtures, want.file), body.endsWith('\n') ? body : `${body}\n`);
        console.log(`recorded ${want.file} (${method}, HTTP ${status}, ${body.length} bytes)`);
        want = null;
      }
    },
  });
  await t.negotiateVersion();
  const vim = new Vim25(t);
  const sc = await vim.retrieveServiceContent();
  if (login) await vim.login(sc.sessionManager, env.VCSIM_USERNAME, env.VCSIM_PASSWORD);
  const rec = async (method, file, fn) => {
    want = { method, file };
    try {
      return await fn();
    } catch (err) {
      return err;
    } finally {
      if (want) throw new Error(`${method} gave no response to record for ${file}`);
    }
  };
  return { t, vim, sc, rec };
}

// vCenter model: 1 DC, 1 cluster of 2 hosts, 1 standalone host, 1 VM per pool.
const vpx = start('fixtures-vpx', ['-cluster', '1', '-host', '2', '-standalone-host', '1', '-vm', '1']);
try {
  const anon = await session(vpx, { login: false });
  await anon.rec('RetrieveServiceContent', 'service-content-vpx.xml', () => anon.vim.retrieveServiceContent());
  await anon.rec('Login', 'fault-invalid-login.xml', () =>
    anon.vim.login(anon.sc.sessionManager, vpx.VCSIM_USERNAME, 'wrong-password'),
  );
  await anon.rec('CreateContainerView', 'fault-not-authenticated.xml', () =>
    anon.vim.createContainerView(anon.sc.viewManager, anon.sc.rootFolder, ['VirtualMachine'], true),
  );
  await anon.t.close();

  const s = await session(vpx);
  const { vim, sc, rec } = s;
  const pc = sc.propertyCollector;
  const view = await vim.createContainerView(sc.viewManager, sc.rootFolder, VIEW_TYPES, true);
  await rec('RetrievePropertiesEx', 'retrieve-view-page1.xml', () => vim.retrievePropertiesEx(pc, [viewSpec(view)], 3));
  // The token of page 1 is in the fixture; ask for page 2 the same way.
  const page1 = await vim.retrievePropertiesEx(pc, [viewSpec(view)], 3);
  await rec('ContinueRetrievePropertiesEx', 'retrieve-view-page2.xml', () =>
    vim.continueRetrievePropertiesEx(pc, page1.token),
  );
  const empty = await vim.createContainerView(sc.viewManager, sc.rootFolder, ['VirtualApp'], true);
  await rec('RetrievePropertiesEx', 'retrieve-empty.xml', () => vim.retrievePropertiesEx(pc, [viewSpec(empty)]));
  await rec('RetrievePropertiesEx', 'fault-object-gone.xml', () =>
    vim.retrievePropertiesEx(pc, [
      {
        propSet: [{ type: 'VirtualMachine', pathSet: ['name'] }],
        objectSet: [{ obj: moref('VirtualMachine', 'vm-99999') }],
      },
    ]),
  );
  await rec('RetrievePropertiesEx', 'fault-invalid-property.xml', () =>
    vim.retrievePropertiesEx(pc, [
      {
        propSet: [{ type: 'VirtualMachine', pathSet: ['config.noSuchProperty'] }],
        objectSet: [{ obj: view, skip: true, selectSet: [{ type: 'ContainerView', path: 'view' }] }],
      },
    ]),
  );

  // A VM with an IP, a snapshot tree (s1 -> s2, s1 -> s3; current s3) and one clone of it.
  const vms = driver(vpx, 'list');
  const vm = vms.find((v) => v.name === 'DC0_H0_VM0');
  driver(vpx, 'set-ip', vm.name, '10.0.0.7');
  driver(vpx, 'snapshot', vm.name, 's1');
  driver(vpx, 'snapshot', vm.name, 's2');
  driver(vpx, 'revert', vm.name, 's1');
  driver(vpx, 'snapshot', vm.name, 's3');
  await rec('RetrievePropertiesEx', 'retrieve-vm-snapshots.xml', () =>
    vim.retrievePropertiesEx(pc, [
      {
        propSet: [{ type: 'VirtualMachine', pathSet: viewSpec(view).propSet[0].pathSet }],
        objectSet: [{ obj: moref('VirtualMachine', vm.moref) }],
      },
    ]),
  );

  const ec = await vim.createCollectorForEvents(sc.eventManager, {
    eventTypeId: EVENT_TYPE_IDS,
    beginTime: new Date(await vim.currentTime()),
  });
  const tc = await vim.createCollectorForTasks(sc.taskManager, { beginTime: new Date(await vim.currentTime()) });
  const filter = await vim.createFilter(pc, {
    propSet: [...viewSpec(view).propSet, { type: 'EventHistoryCollector', pathSet: ['latestPage'] }],
    objectSet: [...viewSpec(view).objectSet, { obj: ec }],
  });
  await rec('WaitForUpdatesEx', 'wait-initial-vpx.xml', () => vim.waitForUpdatesEx(pc, '', { maxWaitSeconds: 5 }));
  await rec('ReadNextEvents', 'read-events-empty.xml', () => vim.readNextEvents(ec, 100));
  await rec('WaitForUpdatesEx', 'wait-timeout.xml', () => vim.waitForUpdatesEx(pc, '-', { maxWaitSeconds: 1 }));

  const cluster = vms.find((v) => v.name.startsWith('DC0_C0'));
  const hosts = driver(vpx, 'hosts');
  const dest = hosts.find((h) => h.parentType === 'ClusterComputeResource' && h.moref !== cluster.host);
  driver(vpx, 'power-off', vm.name);
  await rec('WaitForUpdatesEx', 'wait-power-off.xml', () => vim.waitForUpdatesEx(pc, '-', { maxWaitSeconds: 5 }));
  await rec('ReadNextEvents', 'read-events-one.xml', () => vim.readNextEvents(ec, 100));
  driver(vpx, 'power-on', vm.name);
  driver(vpx, 'migrate', cluster.name, dest.name);
  driver(vpx, 'clone', vm.name, 'DC0_H0_VM0_clone');
  driver(vpx, 'revert', vm.name, 's2');
  driver(vpx, 'revert', vm.name);
  driver(vpx, 'suspend', cluster.name);
  driver(vpx, 'destroy', 'DC0_H0_VM0_clone');
  await rec('ReadNextEvents', 'read-events-sequence.xml', () => vim.readNextEvents(ec, 100));
  await rec('ReadNextTasks', 'read-tasks.xml', () => vim.readNextTasks(tc, 100));
  await rec('WaitForUpdatesEx', 'wait-sequence.xml', () => vim.waitForUpdatesEx(pc, '-', { maxWaitSeconds: 5 }));
  await vim.destroyPropertyFilter(filter);
  await vim.logout(sc.sessionManager);
  await s.t.close();
} finally {
  stop('fixtures-vpx');
}

// ESXi model with one VM: every list in the responses holds exactly one element.
const esx = start('fixtures-esx', ['-esx', '-vm', '1']);
try {
  const s = await session(esx);
  const { vim, sc, rec } = s;
  const pc = sc.propertyCollector;
  await rec('RetrieveServiceContent', 'service-content-esx.xml', () => vim.retrieveServiceContent());
  await rec('CreateCollectorForTasks', 'fault-not-supported.xml', () =>
    vim.createCollectorForTasks(sc.taskManager, {}),
  );
  const view = await vim.createContainerView(sc.viewManager, sc.rootFolder, VIEW_TYPES, true);
  await vim.createFilter(pc, {
    propSet: [...viewSpec(view).propSet, { type: 'TaskManager', pathSet: ['recentTask'] }],
    objectSet: [...viewSpec(view).objectSet, { obj: sc.taskManager }],
  });
  await rec('WaitForUpdatesEx', 'wait-initial-esx-one-vm.xml', () =>
    vim.waitForUpdatesEx(pc, '', { maxWaitSeconds: 5 }),
  );
  await vim.logout(sc.sessionManager);
  await s.t.close();
} finally {
  stop('fixtures-esx');
}
