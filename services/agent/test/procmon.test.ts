/**
 * Process events, read by the native reader (native/capture/src/proc.rs) and turned into
 * records by the agent's ProcessMonitor. The connector needs root (CAP_NET_ADMIN): those tests
 * skip without it; /proc polling runs for anyone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcEvents, type ProcEvent } from '@cordon/native';
import { applyPolicyFile, processPolicySchema } from '@cordon/policy';
import { createEmbeddedBus, readRange, readTable } from '@cordon/bus';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { randomBytes } from 'node:crypto';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type AlertInput, type ProcessEvent } from '@cordon/schemas';
import { agentStage, imageMatcher, makeEnrollToken, parsePasswd, ProcessMonitor } from '../src/index.js';

const NEEDS_ROOT = process.getuid?.() === 0 ? false : 'needs root (the process events connector needs CAP_NET_ADMIN)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run a shell script and wait for it; its pid names its children. */
function runShell(script: string, cwd?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sh = spawn('/bin/sh', ['-c', script], { stdio: 'ignore', ...(cwd ? { cwd } : {}) });
    sh.on('error', reject);
    sh.on('exit', () => resolve(sh.pid!));
  });
}

/** Drain until `done` says enough, or the time is up. */
async function collect(p: ProcEvents, done: (all: ProcEvent[]) => boolean, ms = 10_000): Promise<ProcEvent[]> {
  const all: ProcEvent[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    all.push(...p.drain(0));
    if (done(all)) break;
    await sleep(50);
  }
  return all;
}

test(
  '1,000 short-lived processes are all seen by the connector, with parent and details',
  { skip: NEEDS_ROOT, timeout: 60_000 },
  async () => {
    const p = ProcEvents.open({ mode: 'connector' });
    try {
      assert.equal(p.stats().mode, 'connector');
      const dir = mkdtempSync(join(tmpdir(), 'cordon-proc-'));
      // each /bin/true is forked and executed by the shell: its exec names the shell as parent,
      // even when it is gone before /proc could be read (the fork events remember the parent)
      const pending = runShell('i=0; while [ $i -lt 1000 ]; do /bin/true a "b c"; i=$((i+1)); done', dir);
      const shPid = await pending;
      // the loop's only children are the 1,000 /bin/true (no `seq`: whose exec would count too)
      const all = await collect(p, (evs) => evs.filter((e) => e.kind === 'exec' && e.ppid === shPid).length >= 1000);
      const trues = all.filter((e) => e.kind === 'exec' && e.ppid === shPid);
      const detailed = trues.filter((e) => !e.incomplete);
      console.log(
        `# 1,000 /bin/true: ${trues.length} execs seen, ${detailed.length} with their /proc details, ${trues.length - detailed.length} gone before they could be read`,
      );
      assert.equal(trues.length, 1000, 'every exec is seen');
      const st = p.stats();
      assert.equal(st.droppedQueue, 0);
      assert.equal(st.droppedKernel, 0);
      const one = detailed.find((e) => e.exe.endsWith('/true'));
      assert.ok(one, 'at least one /bin/true was read with its details');
      assert.deepEqual(one.argv, ['/bin/true', 'a', 'b c']);
      assert.equal(one.cwd, dir);
      assert.equal(one.uid, 0);
      assert.match(one.parentExe, /\/(da|ba)?sh$/);
      assert.equal(one.sha256, createHash('sha256').update(readFileSync(one.exe)).digest('hex'));
      assert.ok(
        one.startUs > Date.now() * 1000 - 120e6 && one.startUs <= Date.now() * 1000 + 1e6,
        'start time in µs since the epoch',
      );
      assert.ok(st.hashCacheHits > 0, 'the executable is hashed once, then found by device, inode and mtime');
      assert.ok(
        all.some((e) => e.kind === 'exit' && e.ppid === shPid),
        'exits are seen, with their parent',
      );
      rmSync(dir, { recursive: true, force: true });
    } finally {
      p.close();
    }
  },
);

test('a deleted executable still running is seen as deleted', { skip: NEEDS_ROOT, timeout: 30_000 }, async () => {
  const p = ProcEvents.open({ mode: 'connector' });
  const dir = mkdtempSync(join(tmpdir(), 'cordon-proc-del-'));
  try {
    const bin = join(dir, 'dropper');
    copyFileSync('/bin/sleep', bin);
    spawnSync('chmod', ['755', bin]);
    // the copy deletes itself before it runs: `exec` of a file unlinked under it
    const child = spawn('/bin/sh', ['-c', `exec 3<"${bin}"; rm -f "${bin}"; exec /proc/self/fd/3 1`], {
      stdio: 'ignore',
    });
    const all = await collect(p, (evs) => evs.some((e) => e.kind === 'exec' && e.pid === child.pid && e.exeDeleted));
    const ev = all.find((e) => e.kind === 'exec' && e.pid === child.pid && e.exeDeleted);
    assert.ok(
      ev,
      `the exec of the deleted file is marked deleted: ${JSON.stringify(all.filter((e) => e.pid === child.pid))}`,
    );
    assert.equal(ev.exe, bin);
    child.kill();
  } finally {
    p.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'the queue is bounded: what does not fit is counted as dropped, never lost silently',
  { skip: NEEDS_ROOT, timeout: 30_000 },
  async () => {
    const p = ProcEvents.open({ mode: 'connector', maxQueue: 16 });
    try {
      await runShell('for i in $(seq 200); do /bin/true; done');
      await sleep(300);
      const st = p.stats();
      const got = p.drain(0);
      assert.ok(got.length <= 16, `${got.length} events held`);
      assert.ok(st.droppedQueue >= 200, `${st.droppedQueue} dropped`);
      assert.equal(
        st.events,
        got.length + st.droppedQueue,
        'every event read is either handed over or counted as dropped',
      );
    } finally {
      p.close();
    }
  },
);

test(
  'the reader runs at a raised priority while execs are few, and yields to an exec storm',
  { skip: NEEDS_ROOT, timeout: 30_000 },
  async () => {
    const p = ProcEvents.open({ mode: 'connector', boostBelowExecsPerSecond: 500 });
    try {
      assert.equal(p.stats().boosted, true, 'boosted at rest');
      const states = new Set<boolean>();
      let running = true;
      const storm = runShell('i=0; while [ $i -lt 3000 ]; do /bin/true; i=$((i+1)); done').then(
        () => (running = false),
      );
      while (running) {
        p.drain(0);
        states.add(p.stats().boosted);
        await sleep(20);
      }
      await storm;
      assert.ok(states.has(false), 'the boost is dropped during the storm');
    } finally {
      p.close();
    }
  },
);

test(
  'without the connector, /proc polling sees processes that live longer than its interval',
  { timeout: 30_000 },
  async () => {
    const p = ProcEvents.open({ mode: 'poll', pollMs: 100 });
    try {
      assert.equal(p.stats().mode, 'poll');
      await sleep(200);
      const child = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
      const all = await collect(p, (evs) => evs.some((e) => e.kind === 'exec' && e.pid === child.pid));
      const ev = all.find((e) => e.kind === 'exec' && e.pid === child.pid);
      assert.ok(ev, 'the sleep is seen');
      assert.deepEqual(ev.argv, ['/bin/sleep', '30']);
      assert.equal(ev.ppid, process.pid);
      child.kill();
      const exits = await collect(p, (evs) => evs.some((e) => e.kind === 'exit' && e.pid === child.pid));
      assert.ok(
        exits.some((e) => e.kind === 'exit' && e.pid === child.pid),
        'its end is seen',
      );
    } finally {
      p.close();
    }
  },
);

test(
  '/proc polling: a process seen between its fork and its exec is seen again as the exec, with the new image',
  { timeout: 30_000 },
  async () => {
    const p = ProcEvents.open({ mode: 'poll', pollMs: 100 });
    try {
      await sleep(200);
      // the shell runs for 1 s (several looks) before it execs sleep in the same process
      const child = spawn('/bin/sh', ['-c', 'sleep 1; exec /bin/sleep 30'], { stdio: 'ignore' });
      const all = await collect(p, (evs) =>
        evs.some((e) => e.kind === 'exec' && e.pid === child.pid && e.argv[0] === '/bin/sleep'),
      );
      child.kill();
      const mine = all.filter((e) => e.kind === 'exec' && e.pid === child.pid);
      // a look may also have caught the child before it exec'd the shell (still node's image)
      if (mine[0]?.argv[0] !== '/bin/sh') mine.shift();
      assert.deepEqual(
        mine.map((e) => e.argv),
        [
          ['/bin/sh', '-c', 'sleep 1; exec /bin/sleep 30'],
          ['/bin/sleep', '30'],
        ],
        "the shell, then the image it exec'd",
      );
    } finally {
      p.close();
    }
  },
);

test('an unknown mode is refused with a coded error', () => {
  assert.throws(() => ProcEvents.open({ mode: 'ebpf' as 'poll' }), { code: 'CORDON_ERR_NATIVE_PROC' });
});

test('image exclusions: exact paths and * patterns', () => {
  const m = imageMatcher(['/usr/bin/true', '/opt/monitoring/*', '/usr/lib/*/collect?']);
  assert.equal(m('/usr/bin/true'), true);
  assert.equal(m('/usr/bin/truex'), false);
  assert.equal(m('/opt/monitoring/bin/probe'), true);
  assert.equal(m('/usr/lib/x86_64/collect?'), true, '? is a literal, not a wildcard');
  assert.equal(m('/usr/lib/x86_64/collectd'), false);
  // the policy's section is checked at the edge: unknown keys and relative paths are errors
  assert.equal(processPolicySchema.safeParse({ enabled: true, bogus: 1 }).success, false);
  assert.equal(processPolicySchema.safeParse({ excludeImages: ['usr/bin/x'] }).success, false);
  assert.equal(processPolicySchema.safeParse({ maxEventsPerSecond: 0 }).success, false);
  assert.equal(processPolicySchema.parse({}).enabled, false, 'off unless enabled');
  assert.deepEqual(
    [...parsePasswd('root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbad\n')],
    [
      [0, 'root'],
      [33, 'www-data'],
    ],
  );
});

function monitor(
  policy: Record<string, unknown>,
  sent: ProcessEvent[],
  alerts: AlertInput[],
  extra: { recordFile?: string; send?: (e: ProcessEvent[]) => Promise<void> } = {},
): ProcessMonitor {
  return new ProcessMonitor({
    policy: processPolicySchema.parse({ enabled: true, mode: 'connector', suidBaselineDirs: [], ...policy }),
    agent: 'agt-test',
    vm: 'vm-test',
    ctx: createContext({ log: silentLogger }),
    send: extra.send ?? ((e) => Promise.resolve(void sent.push(...e))),
    alert: (a) => Promise.resolve(void alerts.push(a)),
    recordFile: extra.recordFile,
  });
}

test(
  "the agent's records carry the process tree up to the session leader, and are recorded to a file",
  { skip: NEEDS_ROOT, timeout: 30_000 },
  async () => {
    const sent: ProcessEvent[] = [];
    const alerts: AlertInput[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'cordon-procmon-'));
    const record = join(dir, 'events.jsonl');
    const m = monitor({ excludeImages: ['/usr/bin/tail', '/opt/*'] }, sent, alerts, { recordFile: record });
    m.start();
    let deep: ProcessEvent | undefined;
    try {
      // setsid: the outer shell leads a session of its own, so the tree ends there; the
      // processes live a little, so their /proc details are read whatever the machine's load
      await runShell(
        `setsid /bin/sh -c '/bin/sh -c "/bin/sleep 0.3; /usr/bin/timeout 0.3 /usr/bin/tail -f /dev/null"; true'`,
      );
      for (let i = 0; i < 100 && !deep; i++) {
        await sleep(50);
        deep = sent.find((e) => e.kind === 'exec' && e.command_line === '/bin/sleep 0.3');
      }
      assert.ok(deep, 'the sleep is published');
      assert.equal(deep.vm, 'vm-test');
      assert.equal(deep.agent, 'agt-test');
      assert.equal(deep.user, 'root');
      assert.equal(deep.image, '/usr/bin/sleep');
      assert.match(deep.parent_image, /\/(da|ba)?sh$/);
      const tree = deep.ancestors.map((a) => a.command_line);
      // parent first: the inner shell, then the session leader (the outer shell after setsid's exec)
      assert.equal(tree[0], '/bin/sh -c /bin/sleep 0.3; /usr/bin/timeout 0.3 /usr/bin/tail -f /dev/null');
      assert.equal(
        deep.ancestors.at(-1)!.pid,
        deep.sid,
        `the tree ends at the session leader: ${JSON.stringify(tree)}`,
      );
      assert.equal(deep.ancestors.length, 2);
      await sleep(800);
      assert.ok(!sent.some((e) => e.image === '/usr/bin/tail'), 'an excluded image is not published');
      assert.ok(
        sent.some((e) => e.image === '/usr/bin/timeout'),
        'its parent is (exclusions name images, not trees)',
      );
      assert.ok(m.status().excluded >= 1);
      assert.equal(m.status().mode, 'connector');
      const pid = deep.pid;
      assert.ok(
        sent.some((e) => e.kind === 'exit' && e.pid === pid && e.exit_code === 0 && e.image === '/usr/bin/sleep'),
        'its exit is published, with what its exec said',
      );
    } finally {
      await m.stop();
    }
    const lines = readFileSync(record, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ProcessEvent);
    assert.ok(
      lines.some((e) => e.command_line === '/bin/sleep 0.3' && e.ancestors.length === 2),
      'the file holds the records, trees included',
    );
    assert.ok(
      lines.some((e) => e.image === '/usr/bin/tail'),
      'the file holds excluded events too (what was read)',
    );
    rmSync(dir, { recursive: true, force: true });
  },
);

test(
  'an exec storm costs counted, alerted drops: the rate limit holds and the agent stays up',
  { skip: NEEDS_ROOT, timeout: 60_000 },
  async () => {
    const sent: ProcessEvent[] = [];
    const alerts: AlertInput[] = [];
    const m = monitor({ maxEventsPerSecond: 100, maxQueue: 256, exits: false }, sent, alerts);
    m.start();
    try {
      // four shells of 1,500 execs each, and a few thousand forks that never exec
      await Promise.all([
        ...[1, 2, 3, 4].map(() => runShell('for i in $(seq 1500); do /bin/true; done')),
        runShell('for i in $(seq 2000); do ( : ) & done; wait'),
      ]);
      await sleep(500);
      const st = m.status();
      const nat = m.nativeStats()!;
      console.log(
        `# exec storm: ${nat.execs} execs and ${nat.forks} forks read, ${st.published} published, ${st.dropped} dropped (queue ${st.dropped_queue}, kernel ${st.dropped_kernel})`,
      );
      assert.ok(nat.execs + st.dropped_queue >= 6000 || st.dropped_kernel > 0, 'every exec read or counted');
      assert.ok(st.published <= 100 * 30 + 100, `the rate limit holds: ${st.published} published`);
      assert.ok(st.dropped > 0, 'drops are counted');
    } finally {
      await m.stop();
    }
    assert.ok(alerts.length >= 1, 'the drops raised an alert');
    const a = alerts.at(-1)!;
    assert.equal(a.rule_id, 'cordon:process-events-lost');
    assert.equal(a.sensor, 'agent:agt-test');
    assert.equal(JSON.parse(a.evidence).code, 'CORDON_ERR_AGENT_PROCESS_EVENTS_LOST');
    const lost = alerts.reduce((n, x) => n + (JSON.parse(x.evidence) as { lost: number }).lost, 0);
    assert.equal(lost, m.status().dropped, 'the alerts account for every drop');
  },
);

test(
  'an exec loop is published in few sends (each send is a signature), and every exec is in one',
  { skip: NEEDS_ROOT, timeout: 60_000 },
  async () => {
    const sent: ProcessEvent[] = [];
    let sends = 0;
    let firstAt = 0;
    let lastAt = 0;
    const m = monitor({}, sent, [], {
      send: (e) => {
        lastAt = performance.now();
        if (sends++ === 0) firstAt = lastAt;
        sent.push(...e);
        return Promise.resolve();
      },
    });
    m.start();
    let shPid = 0;
    try {
      shPid = await runShell('i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done');
      await waitFor(
        'the loop published',
        () => sent.filter((e) => e.kind === 'exec' && e.ppid === shPid).length >= 500,
      );
    } finally {
      await m.stop();
    }
    const execs = sent.filter((e) => e.kind === 'exec' && e.ppid === shPid).length;
    assert.equal(execs, 500, 'every exec is published');
    // A send starts at least 5 ms after the one before, except that a full batch (512 events
    // drained, forks and exits too) goes on at once, and stop() sends what is left. One send
    // per wake-up, as before, was ~0.75 a exec (~900 for the loop's forks, execs and exits).
    const span = lastAt - firstAt;
    const drained = m.status().events;
    const bound = Math.floor(span / 5) + 1 + Math.floor(drained / 512) + 1;
    assert.ok(
      sends <= bound && sends < execs,
      `${sends} sends (bound ${bound}) for ${sent.length} events (${drained} drained) in ${Math.round(span)} ms`,
    );
    console.log(`# 500 execs: ${sent.length} events in ${sends} sends over ${Math.round(span)} ms`);
  },
);

test('events the bus refuses are counted as dropped and alerted', { skip: NEEDS_ROOT, timeout: 30_000 }, async () => {
  const alerts: AlertInput[] = [];
  const m = monitor({}, [], alerts, { send: () => Promise.reject(new Error('broker down')) });
  m.start();
  try {
    await runShell('for i in $(seq 20); do /bin/true; done');
    await sleep(500);
  } finally {
    await m.stop();
  }
  assert.ok(m.status().dropped >= 20, `${m.status().dropped} dropped`);
  assert.ok(alerts.length >= 1);
});

test(
  'the policy turns process monitoring on for one VM, with its exclusions, and off again; the heartbeat says which mode runs',
  { skip: NEEDS_ROOT, timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-procmon-policy-'));
    const ctx = createContext({ log: silentLogger });
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    await bus.admin.ensureTopics(allTopicSpecs());
    const a = await runStage(agentStage, {
      bus,
      ctx,
      config: {
        token: makeEnrollToken(randomBytes(32), 'vm-web-1', 3_600_000, Date.now()),
        stateDir: join(dir, 'state'),
        enforce: { enabled: false },
        netconf: { enabled: false },
        verdictWaitS: 0,
        heartbeatS: 0.2,
      },
    });
    const heartbeat = async () =>
      [...(await readTable(bus, TOPICS.agents)).values()]
        .map((r) => codecFor(TOPICS.agents).decode(r.value!))
        .find((r) => r.agent === a.agentId)!;
    const published = async () => {
      const out: ProcessEvent[] = [];
      await readRange(bus, TOPICS.processes, (r) => out.push(codecFor(TOPICS.processes).decode(r.value!)));
      return out;
    };
    try {
      assert.equal(a.processes, null, 'off unless enabled');
      await waitFor('a heartbeat saying so', async () => (await heartbeat())?.processes?.mode === 'off');
      const policy = join(dir, 'policy.yaml');
      writeFileSync(
        policy,
        [
          'agents:',
          '  vms:',
          '    vm-web-1:',
          '      processes: { enabled: true, mode: connector, excludeImages: [/usr/bin/tail] }',
          '    vm-other:',
          '      processes: { enabled: false }',
          '',
        ].join('\n'),
      );
      await applyPolicyFile({ bus, ctx }, policy);
      await waitFor('monitoring to start', () => a.processes !== null);
      await waitFor('the heartbeat to say connector', async () => (await heartbeat())?.processes?.mode === 'connector');
      await runShell('/bin/sleep 0.2; /usr/bin/timeout 0.2 /usr/bin/tail -f /dev/null');
      await waitFor('the sleep on the topic', async () =>
        (await published()).some((e) => e.command_line === '/bin/sleep 0.2' && e.vm === 'vm-web-1'),
      );
      assert.ok(!(await published()).some((e) => e.image === '/usr/bin/tail'), 'the excluded image is not published');
      writeFileSync(
        policy,
        ['agents:', '  vms:', '    vm-web-1:', '      processes: { enabled: false }', ''].join('\n'),
      );
      await applyPolicyFile({ bus, ctx }, policy);
      await waitFor('monitoring to stop', () => a.processes === null);
      await waitFor('the heartbeat to say off', async () => (await heartbeat())?.processes?.mode === 'off');
    } finally {
      await a.stop();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a setuid executable outside the baseline is suid_new, one in it is not; a uid change is an event',
  { skip: NEEDS_ROOT, timeout: 30_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-procmon-suid-'));
    const known = join(dir, 'known');
    const fresh = join(dir, 'fresh');
    mkdirSync(known);
    mkdirSync(fresh);
    const old = join(known, 'sleepy');
    const rogue = join(fresh, 'sleepy');
    for (const f of [old, rogue]) {
      copyFileSync('/bin/sleep', f);
      chmodSync(f, 0o4755);
    }
    const sent: ProcessEvent[] = [];
    const m = monitor({ suidBaselineDirs: [known] }, sent, []);
    m.start();
    try {
      await run(old, ['0.2']);
      await run(rogue, ['0.2']);
      // setpriv changes its uids, then runs sleep as nobody
      await run('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/sleep', '0.2']);
      await waitFor('the three to be published', () =>
        sent.some((e) => e.kind === 'exec' && e.uid === 65534 && e.image === '/usr/bin/sleep'),
      );
      const ex = (img: string) => sent.find((e) => e.kind === 'exec' && e.image === img)!;
      assert.equal(ex(old).suid_new, false, 'in the baseline');
      assert.equal(ex(rogue).suid_new, true, 'a setuid file the baseline does not hold');
      assert.equal(ex(rogue).image_mode & 0o4000, 0o4000);
      // the uid event of the process that then ran sleep as nobody (which image it names depends
      // on whether setpriv's own exec was read before it executed sleep: a race of microseconds)
      const nobody = sent.find((e) => e.kind === 'exec' && e.uid === 65534 && e.image === '/usr/bin/sleep')!;
      const change = sent.find((e) => e.kind === 'uid' && e.pid === nobody.pid);
      assert.ok(change, `the uid change is an event: ${JSON.stringify(sent.filter((e) => e.kind === 'uid'))}`);
      assert.equal(change.uid, 65534);
      assert.equal(change.user, 'nobody');
    } finally {
      await m.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', () => resolve());
  });
}
