// Detection-to-block latency of the network protection loop, and the watchdog's capture rate,
// in a real lab (network namespaces, a Linux bridge, nftables; needs root).
//
// Latency: `cordon up --no-demo` (the full ET Open set from the policy topic, sid 2029988 in
// prevent mode) runs a watchdog on the lab's bridge — once with the detection path only
// (watchdog, dpi, responder in one process: a hypervisor host's share, the sink running
// elsewhere), once with every service in the process (flows, sink into embedded ClickHouse,
// loginspect, …) — and an attacker sends N attacks, each from its own address (a blocked address
// cannot attack twice). Both ends are observed from outside the product:
//   start = the kernel's receive timestamp of the frame carrying the attack, read by a capture
//           socket of this script on the attacker's bridge port;
//   end   = the moment `nft monitor` in the host namespace reports the attacker's element.
// Printed: p50/p90/p99/max over N attacks, on the embedded bus and on Kafka; then the same split
// per hop (attack seen -> packets record -> alert record -> block decision -> applied -> nft
// element) from the records the loop left on the bus (the product's clocks are whole
// milliseconds), and the slowest attacks hop by hop, with their clock times.
// On Kafka the broker is warmed first (KAFKA_WARMUP_S, 30 s of one-record produce → fetch round
// trips on a scratch topic): `npm run bench` starts a fresh broker, and a JVM minutes old
// measured p99 39 → 26 → 21 ms in three runs in a row with nothing else changed (bench/RESULTS.md);
// what is measured is the loop against a broker in steady state, as a deployment's is.
// (`--services a,b` measures that set only; `--keep` keeps the data dir and names late attacks.)
//
// Capture rate: the watchdog alone (capture, no enforcement) on the embedded bus while two
// tcpreplay senders offer minimum-size UDP frames at a fixed total rate; printed: frames
// offered (tcpreplay's own counts), captured and published by the watchdog, dropped (kernel +
// buffer), the publish rate and the watchdog's CPU time per frame.
//
// Before the measured attacks, --warm-attacks (200) unmeasured ones from a second /24 run the
// whole loop at the same pace: a `cordon up` seconds old is slower for its first few hundred.
//   node bench/protection.mjs [--attacks 1000] [--warm-attacks 200] [--pps 100000] [--seconds 10] [--only latency|capture]
//     [--bus kafka|embedded: that bus's detection path only, with its JSON result] [--all-services]
//   Kafka: KAFKA_BROKERS=127.0.0.1:19092 (scripts/bench.sh starts a broker); without it the Kafka
//   half is skipped with a message.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { LiveCapture } from '@cordon/native';
import { freshCordonTopics, makeLab } from '@cordon/testkit';
import { report } from './lib/result.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const CLI = join(root, 'services', 'cli', 'bin', 'cordon.js');
const ET_DIR = resolve(root, '..', 'shared', 'corpus', 'et-open');
/** ET EXPLOIT Possible IBM Data Risk Manager Authentication Bypass - Session ID Assignment */
const SID = '2029988';
const ATTACK_PATH = '/albatross/saml/idpSelection?id=1&userName=admin';

const { values: args } = parseArgs({
  options: {
    attacks: { type: 'string', default: '1000' },
    pps: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
    only: { type: 'string' },
    gap: { type: 'string', default: '40' },
    'warm-attacks': { type: 'string', default: '200' },
    keep: { type: 'boolean', default: false },
    services: { type: 'string' },
    bus: { type: 'string' },
    'all-services': { type: 'boolean', default: false },
  },
});
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.getuid?.() !== 0) {
  console.log('protection: skipped (needs root: network namespaces, a bridge, nftables)');
  process.exit(0);
}

function cordon(cliArgs, opts = {}) {
  const r = spawnSync(process.execPath, [CLI, ...cliArgs], { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`cordon ${cliArgs.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Frames on the attacker's port carrying the attack: source address → kernel timestamp (µs). */
function attackSeen(capture, seen) {
  const b = capture.drain(0);
  for (let i = 0; i < b.tsUs.length; i++) {
    const f = b.data.subarray(b.offsets[i], b.offsets[i + 1]);
    if (f.length < 54 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 6) continue;
    const ihl = (f[14] & 0x0f) * 4;
    const thl = (f[14 + ihl + 12] >> 4) * 4;
    const payload = f.subarray(14 + ihl + thl);
    if (payload.length === 0 || !payload.includes('GET /albatross')) continue;
    const src = `${f[26]}.${f[27]}.${f[28]}.${f[29]}`;
    if (!seen.has(src)) seen.set(src, b.tsUs[i]);
  }
}

/** The attacker: one HTTP request per address, `gap` ms apart; prints each address when sent. */
const ATTACKER = `
const net = require('net');
const [victim, gap, ...addrs] = process.argv.slice(1);
(async () => {
  for (const a of addrs) {
    const s = net.connect({ host: victim, port: 80, localAddress: a });
    s.on('connect', () => s.write('GET ${ATTACK_PATH} HTTP/1.1\\r\\nHost: ' + victim + '\\r\\nConnection: close\\r\\n\\r\\n'));
    s.on('error', () => {});
    setTimeout(() => s.destroy(), 1000);
    console.log(a);
    await new Promise((r) => setTimeout(r, Number(gap)));
  }
})();
`;

/** One-record produce → fetch round trips on a scratch topic for `seconds`: the broker's JIT warmed. */
async function warmBroker(seconds) {
  const { createKafkaBus } = await import('@cordon/bus');
  const { createContext, silentLogger } = await import('@cordon/runtime');
  const bus = createKafkaBus({
    brokers: [process.env.KAFKA_BROKERS],
    clientId: 'cordon-bench-warmup',
    ctx: createContext({ log: silentLogger }),
  });
  const topic = `cordon-bench-warmup-${process.pid}`;
  await bus.admin.ensureTopics([{ name: topic, partitions: 1, cleanupPolicy: 'delete', retentionMs: 60_000 }]);
  let got = 0;
  const consumer = bus.consumer({ groupId: `${topic}-g`, topics: [topic], fromBeginning: true });
  const consuming = consumer.run(async (b) => {
    got += b.records.length;
  });
  const producer = bus.producer();
  let sent = 0;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    await producer.send(topic, [{ key: Buffer.from('k'), value: Buffer.from(`warm ${sent}`) }]);
    sent++;
  }
  await consumer.close();
  await consuming.catch(() => undefined);
  await producer.close();
  await bus.admin.deleteTopics([topic]).catch(() => undefined);
  await bus.close();
  return { sent, got };
}

/** The source address of an Ethernet IPv4 TCP frame with payload, else null. */
function tcpPayloadSource(f) {
  if (f.length < 54 || f[12] !== 8 || f[13] !== 0 || f[23] !== 6) return null;
  const ihl = (f[14] & 15) * 4;
  const total = (f[16] << 8) | f[17];
  const tcpHeader = (f[14 + ihl + 12] >> 4) * 4;
  return total - ihl - tcpHeader > 0 ? `${f[26]}.${f[27]}.${f[28]}.${f[29]}` : null;
}

/**
 * Where each attack's time went, from the records the loop left on the bus (read after
 * `cordon up` stopped): the times of the packets record carrying the attack's request and of
 * the alert record (their producers' clocks, ms), the block decision's `created_us` (the
 * responder's) and the watchdog's `applied` report's `ts_us` — the same machine's clock as the
 * bench's two ends. Printed per hop as p50/p90/p99 over the measured attacks, then the slowest
 * attacks hop by hop.
 */
async function hops(kind, dataDir, seenAt, blockedAt, measured) {
  const { createEmbeddedBus, createKafkaBus, readAll } = await import('@cordon/bus');
  const { createContext, silentLogger } = await import('@cordon/runtime');
  const { codecFor, TOPICS } = await import('@cordon/schemas');
  const ctx = createContext({ log: silentLogger });
  const bus =
    kind === 'kafka'
      ? createKafkaBus({ brokers: [process.env.KAFKA_BROKERS], clientId: 'cordon-bench-hops', ctx })
      : createEmbeddedBus({ dataDir, ctx });
  try {
    const alertAt = new Map();
    const alerts = codecFor(TOPICS.alerts);
    for (const r of await readAll(bus, TOPICS.alerts)) {
      const a = alerts.decode(r.value);
      if (a.rule_id === `sid:${SID}` && a.src_ip && !alertAt.has(a.src_ip)) alertAt.set(a.src_ip, r.timestamp * 1000);
    }
    // the watchdog's packets record holding the attack's request (its first frame with TCP
    // payload from the attack's address): capture and publish apart from the bus and the DPI
    const publishedAt = new Map();
    const packets = codecFor(TOPICS.packets);
    const wanted = new Set(measured);
    for (const r of await readAll(bus, TOPICS.packets)) {
      for (const p of packets.decode(r.value).packets) {
        const src = tcpPayloadSource(p.frame);
        if (src !== null && wanted.has(src) && !publishedAt.has(src)) publishedAt.set(src, r.timestamp * 1000);
      }
    }
    const decidedAt = new Map();
    const blocks = codecFor(TOPICS.blocks);
    for (const r of await readAll(bus, TOPICS.blocks)) {
      if (r.value === null) continue;
      const d = blocks.decode(r.value);
      const t = d.target.ip ?? d.target.src_ip;
      if (t && !decidedAt.has(t)) decidedAt.set(t, d.created_us);
    }
    const appliedAt = new Map();
    const status = codecFor(TOPICS.blockStatus);
    for (const r of await readAll(bus, TOPICS.blockStatus)) {
      if (r.value === null) continue;
      const s = status.decode(r.value);
      if (s.status === 'applied' && !appliedAt.has(s.target)) appliedAt.set(s.target, s.ts_us);
    }
    const legs = [
      ['attack seen -> packets record', seenAt, publishedAt],
      ['packets record -> alert record', publishedAt, alertAt],
      ['alert record -> block decision', alertAt, decidedAt],
      ['block decision -> applied (watchdog report)', decidedAt, appliedAt],
      ['applied -> nft element seen', appliedAt, blockedAt],
    ];
    const parts = [];
    for (const [name, from, to] of legs) {
      const d = measured
        .filter((a) => from.has(a) && to.has(a))
        .map((a) => (to.get(a) - from.get(a)) / 1000)
        .sort((x, y) => x - y);
      if (d.length === 0) continue;
      const f = (p) => percentile(d, p).toFixed(1);
      parts.push(`${name} p50 ${f(50)} / p90 ${f(90)} / p99 ${f(99)} ms (${d.length})`);
    }
    console.log(`protection ${kind}, per hop (product times in whole ms): ${parts.join('; ')}`);
    // the slowest attacks (those that make the p99 and the max), hop by hop: a tail shows where it sits
    const total = (a) => (blockedAt.get(a) - seenAt.get(a)) / 1000;
    const slow = measured
      .filter((a) => seenAt.has(a) && blockedAt.has(a))
      .sort((x, y) => total(y) - total(x))
      .slice(0, Math.max(3, Math.ceil(measured.length / 100)));
    const t0 = Math.min(...measured.filter((a) => seenAt.has(a)).map((a) => seenAt.get(a)));
    const leg = (from, to, a) => (from.has(a) && to.has(a) ? ((to.get(a) - from.get(a)) / 1000).toFixed(1) : '?');
    console.log(
      `protection ${kind}, slowest attacks (total: ${legs.map(([name]) => name.split(' -> ')[1]).join(' / ')} ms): ` +
        slow
          .map(
            (a) =>
              `${total(a).toFixed(1)} at ${new Date(seenAt.get(a) / 1000).toISOString().slice(11, 23)} (+${((seenAt.get(a) - t0) / 1e6).toFixed(2)} s): ` +
              legs.map(([, from, to]) => leg(from, to, a)).join(' / '),
          )
          .join('; '),
    );
  } finally {
    await bus.close();
  }
}

async function latency(kind, services) {
  const n = Number(args.attacks);
  const dir = mkdtempSync(join(tmpdir(), `cordon-bench-loop-${kind}-`));
  const lab = makeLab({ tag: kind === 'kafka' ? 'bnlk' : 'bnle', subnet: kind === 'kafka' ? 61 : 60 });
  const procs = [];
  try {
    const { web, attacker } = lab.vms;
    const third = Number(web.ip.split('.')[2]);
    // One address per attack (a blocked address cannot attack twice), 200 to a /24 on the same
    // wire, routed to the web VM: the first pipeline checks from the lab's own /24, the warm-up
    // attacks from 10.213.<third + 100>, the measured ones from 10.213.<third + 110> on. A p99
    // is read from the tail of the measured attacks: of 220 it was the 3rd slowest, which moved
    // 12.6–25.4 ms between runs of one build; of 1,000 it is the 10th (bench/RESULTS.md).
    const addresses = (firstThird, count) =>
      Array.from({ length: count }, (_, i) => `10.213.${firstThird + Math.floor(i / 200)}.${20 + (i % 200)}`);
    if (n > 200 * 40) throw new Error('at most 8,000 measured attacks');
    if (Number(args['warm-attacks']) > 200) throw new Error('at most 200 warm-up attacks');
    const probes = addresses(third, 5);
    const warmAddrs = addresses(third + 100, Number(args['warm-attacks']));
    const measured = addresses(third + 110, n);
    const batch = join(dir, 'attacker-addresses');
    writeFileSync(batch, [...probes, ...warmAddrs, ...measured].map((a) => `addr add ${a}/24 dev eth0\n`).join(''));
    lab.exec(attacker.ns, ['ip', '-batch', batch]);
    // through the attacker's own address: one neighbour entry for them all (1,200 on-link
    // addresses overflow the kernel's neighbour table, gc_thresh3 1024, and connections fail)
    for (const net of new Set([...warmAddrs, ...measured].map((a) => a.split('.').slice(0, 3).join('.'))))
      lab.exec(web.ns, ['ip', 'route', 'add', `${net}.0/24`, 'via', attacker.ip, 'dev', 'eth0']);

    const rules = readdirSync(ET_DIR)
      .filter((f) => f.endsWith('.rules'))
      .sort()
      .map((f) => join(ET_DIR, f));
    writeFileSync(
      join(dir, 'policy.yaml'),
      [
        `ruleFiles:`,
        ...rules.map((r) => `  - "${r}"`),
        'mode: detect',
        `rules: { "${SID}": prevent }`,
        'blocks: { ttlS: 300, maxTtlS: 600 }',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'inventory.yaml'),
      [
        'hosts:',
        '  hv-bench:',
        '    vms:',
        ...Object.values(lab.vms).flatMap((v) => [
          `      ${v.name}:`,
          // running: with every service, the coordinator assigns only VMs known to be on
          '        power: on',
          `        nics: [{ mac: "${v.mac}", ips: ["${v.ip}"] }]`,
        ]),
        '',
      ].join('\n'),
    );
    const bus = kind === 'kafka' ? ['bus:', '  kind: kafka', `  brokers: ["${process.env.KAFKA_BROKERS}"]`] : [];
    writeFileSync(
      join(dir, 'cordon.yaml'),
      [
        `dataDir: "${join(dir, 'data')}"`,
        ...bus,
        // veth checksums are left to offload: the bridge sees them unfilled (Suricata: -k none)
        'dpi: { checksum: "off" }',
        'watchdog:',
        '  host: hv-bench',
        `  bridge: ${lab.bridge}`,
        `  capture: { enabled: true, netns: ${lab.host} }`,
        // ~1,200 new attackers in under a minute: more than the enforcer's default rate guard
        // lets in (600 new elements a minute, tested on its own); this bench measures the loop
        `  enforce: { enabled: true, netns: ${lab.host}, maxNewPerMinute: 100000 }`,
        '',
      ].join('\n'),
    );
    const cfg = ['--config', join(dir, 'cordon.yaml')];
    // a clean slate: no blocks or policy of an earlier run on the broker
    if (kind === 'kafka') await freshCordonTopics([process.env.KAFKA_BROKERS]);
    let warmed = '';
    if (kind === 'kafka') {
      const seconds = Number(process.env.KAFKA_WARMUP_S ?? 30);
      if (seconds > 0) {
        const w = await warmBroker(seconds);
        warmed = `; broker warmed by ${w.sent} produce → fetch round trips in ${seconds} s`;
      } else warmed = '; broker not warmed (KAFKA_WARMUP_S=0)';
    }
    cordon(['inventory', 'apply', join(dir, 'inventory.yaml'), ...cfg]);
    cordon(['policy', 'apply', join(dir, 'policy.yaml'), ...cfg]);

    const http = spawn(
      'ip',
      [
        'netns',
        'exec',
        web.ns,
        process.execPath,
        '-e',
        `require('http').createServer((q, s) => s.end('ok')).listen(80, '${web.ip}')`,
      ],
      { stdio: 'ignore' },
    );
    procs.push(http);
    const up = spawn(
      process.execPath,
      [CLI, 'up', '--no-demo', ...cfg, ...(services ? ['--services', services] : [])],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CORDON_LOG_LEVEL: 'warn' } },
    );
    procs.push(up);
    let upLog = '';
    up.stderr.on('data', (d) => (upLog = (upLog + d).slice(-4000)));

    const blockedAt = new Map();
    const monitor = spawn('ip', ['netns', 'exec', lab.host, 'nft', 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
    procs.push(monitor);
    createInterface({ input: monitor.stdout }).on('line', (line) => {
      const t = nowUs();
      const m = /^add element bridge \S+ \S+ \{ ([0-9.]+)/.exec(line);
      if (m && !blockedAt.has(m[1])) blockedAt.set(m[1], t);
    });
    const capture = LiveCapture.open(attacker.port, { netns: lab.host, snaplen: 256 });
    const seenAt = new Map();
    const drainer = setInterval(() => attackSeen(capture, seenAt), 5);

    const attack = (list, gap) =>
      new Promise((res, rej) => {
        const p = spawn(
          'ip',
          ['netns', 'exec', attacker.ns, process.execPath, '-e', ATTACKER, web.ip, String(gap), ...list],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        );
        p.on('exit', (c) => (c === 0 ? res() : rej(new Error(`the attacker exited with ${c}`))));
      });

    // warm-up: rules compiled, captures open, every stage's code hot; not measured
    const warm = probes;
    const until = Date.now() + 180_000;
    for (let i = 0; !warm.every((a) => blockedAt.has(a)); i++) {
      if (Date.now() > until || up.exitCode !== null)
        throw new Error(`the pipeline never blocked the warm-up attacks:\n${upLog}`);
      await attack(
        warm.filter((a) => !blockedAt.has(a)),
        100,
      );
      await sleep(1000);
    }
    // then the whole loop at the measured pace, unmeasured: a process seconds old pays for its
    // first few hundred attacks (V8 compiling the loop's code, the groups' and topics' first
    // rounds) — on Kafka the first tenth of a run measured a median of 10.5–11.3 ms, the last
    // 4.3–4.9 ms (bench/RESULTS.md); what is measured is the loop of a running deployment
    if (warmAddrs.length) {
      await attack(warmAddrs, Number(args.gap));
      const until = Date.now() + 10_000;
      while (Date.now() < until && !warmAddrs.every((a) => blockedAt.has(a))) await sleep(100);
    }
    const started = Date.now();
    await attack(measured, Number(args.gap));
    const end = Date.now() + 10_000;
    while (Date.now() < end && !measured.every((a) => blockedAt.has(a))) await sleep(100);
    clearInterval(drainer);
    attackSeen(capture, seenAt);
    capture.close();

    const lat = [];
    let unseen = 0;
    let unblocked = 0;
    for (const a of measured) {
      const s = seenAt.get(a);
      const b = blockedAt.get(a);
      if (s === undefined) unseen++;
      else if (b === undefined) {
        unblocked++;
        if (args.keep) console.log(`not blocked: ${a}`);
      } else lat.push((b - s) / 1000);
    }
    // the run in tenths, in attack order: a loop still warming shows as a falling median
    const inOrder = measured
      .filter((a) => seenAt.has(a) && blockedAt.has(a))
      .sort((a, b) => seenAt.get(a) - seenAt.get(b))
      .map((a) => (blockedAt.get(a) - seenAt.get(a)) / 1000);
    const tenths = [];
    for (let i = 0, w = Math.ceil(inOrder.length / 10); i < inOrder.length; i += w) {
      const c = inOrder.slice(i, i + w).sort((x, y) => x - y);
      tenths.push(`${c[c.length >> 1].toFixed(1)}/${c[c.length - 1].toFixed(1)}`);
    }
    console.log(`protection ${kind}: median/max ms per tenth of the measured attacks, in order: ${tenths.join(' ')}`);
    lat.sort((x, y) => x - y);
    const fmt = (v) => `${v.toFixed(1)} ms`;
    console.log(
      `protection ${kind}: attack seen on the bridge -> nft element present, ${lat.length} of ${measured.length} attacks: ` +
        `p50 ${fmt(percentile(lat, 50))}, p90 ${fmt(percentile(lat, 90))}, p99 ${fmt(percentile(lat, 99))}, max ${fmt(lat[lat.length - 1])}` +
        `${unblocked ? `; ${unblocked} not blocked within 10 s` : ''}${unseen ? `; ${unseen} not seen by the bench's capture` : ''}` +
        ` (${services ? `\`cordon up --services ${services}\`` : 'every service in one `cordon up`'}; full ET Open from the policy topic; one attack per ${args.gap} ms over ${((Date.now() - started) / 1000).toFixed(1)} s after ${warmAddrs.length} unmeasured ones${warmed}; load average ${loadavg()
          .map((x) => x.toFixed(1))
          .join(' ')})`,
    );
    up.kill('SIGTERM');
    if (up.exitCode === null) await new Promise((r) => up.once('exit', r));
    await hops(kind, join(dir, 'data'), seenAt, blockedAt, measured).catch((err) =>
      console.log(`protection ${kind}: no per-hop split (${err.message})`),
    );
    // an attack never blocked counts as the slowest there is
    return { p99: unblocked > 0 && unblocked >= measured.length / 100 ? Infinity : percentile(lat, 99), n: lat.length };
  } finally {
    for (const p of procs.reverse()) p.kill('SIGTERM');
    await sleep(500);
    lab.destroy();
    if (args.keep) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** A pcap of `count` minimum-size UDP frames from `src` to `dst`, over 256 source ports. */
function udpCapture(file, src, dst, count) {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const mac = (m) => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
  const ip4 = (a) => Buffer.from(a.split('.').map(Number));
  const parts = [head];
  for (let i = 0; i < count; i++) {
    const f = Buffer.alloc(60);
    mac(dst.mac).copy(f, 0);
    mac(src.mac).copy(f, 6);
    f.writeUInt16BE(0x0800, 12);
    f[14] = 0x45;
    f.writeUInt16BE(46, 16);
    f[22] = 64;
    f[23] = 17;
    ip4(src.ip).copy(f, 26);
    ip4(dst.ip).copy(f, 30);
    let sum = 0;
    for (let j = 14; j < 34; j += 2) sum += f.readUInt16BE(j);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    f.writeUInt16BE(~sum & 0xffff, 24);
    f.writeUInt16BE(20000 + (i % 256), 34);
    f.writeUInt16BE(9, 36); // discard
    f.writeUInt16BE(26, 38);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1, 0);
    rec.writeUInt32LE(i, 4);
    rec.writeUInt32LE(60, 8);
    rec.writeUInt32LE(60, 12);
    parts.push(rec, f);
  }
  writeFileSync(file, Buffer.concat(parts));
}

async function captureRate() {
  if (spawnSync('tcpreplay', ['--version']).status !== 0) {
    console.log('watchdog capture: skipped (tcpreplay is not installed; scripts/bench.sh installs it)');
    return;
  }
  const pps = Number(args.pps);
  const seconds = Number(args.seconds);
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-capture-'));
  // two senders: one tcpreplay on a shared 2-core machine tops out below 100k frames/s
  const senders = ['src1', 'src2'];
  const lab = makeLab({ tag: 'bncap', subnet: 62, vms: ['dst', ...senders] });
  const { createEmbeddedBus } = await import('@cordon/bus');
  const { createContext, Metrics, silentLogger } = await import('@cordon/runtime');
  const { applyTopics } = await import('@cordon/cli');
  const { watchdogStage } = await import('@cordon/watchdog');
  const { runStage } = await import('@cordon/stage');
  const ctx = createContext({ log: silentLogger, metrics: new Metrics() });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'data'), ctx });
  try {
    const { dst } = lab.vms;
    for (const n of senders) udpCapture(join(dir, `${n}.pcap`), lab.vms[n], dst, 10_000);
    await applyTopics(bus);
    const wd = await runStage(watchdogStage, {
      bus,
      ctx,
      config: {
        host: 'hv-bench',
        bridge: lab.bridge,
        capture: { enabled: true, netns: lab.host },
        enforce: { enabled: false },
      },
    });
    await sleep(500);
    const each = pps / senders.length;
    const loops = Math.ceil((each * seconds) / 10_000);
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    // not spawnSync: the watchdog drains on this thread while tcpreplay sends
    const replay = (n) =>
      new Promise((res) => {
        const p = spawn(
          'ip',
          [
            'netns',
            'exec',
            lab.vms[n].ns,
            'tcpreplay',
            '-i',
            'eth0',
            `--pps=${each}`,
            '--pps-multi=10',
            `--loop=${loops}`,
            join(dir, `${n}.pcap`),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d) => (stdout += d));
        p.stderr.on('data', (d) => (stderr += d));
        p.on('exit', () => res({ stdout, stderr }));
      });
    const outs = await Promise.all(senders.map(replay));
    let sent = 0;
    let secs = 0;
    for (const r of outs) {
      const m = /Actual: (\d+) packets .* in ([\d.]+) seconds/.exec(r.stdout);
      if (!m) throw new Error(`tcpreplay failed:\n${r.stdout}\n${r.stderr}`);
      sent += Number(m[1]);
      secs = Math.max(secs, Number(m[2]));
    }
    // let the watchdog drain what is buffered
    let last = -1;
    while (wd.capture.stats().published !== last) {
      last = wd.capture.stats().published;
      await sleep(300);
    }
    const s = wd.capture.stats();
    const took = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuUsPerFrame = (cpu.user + cpu.system) / Math.max(1, s.captured);
    await wd.stop();
    console.log(
      `watchdog capture: offered ${sent.toLocaleString('en-US')} frames at ${Math.round(sent / secs).toLocaleString('en-US')} pps (${senders.length} tcpreplay senders, ${secs.toFixed(2)} s); ` +
        `captured ${s.captured.toLocaleString('en-US')}, published ${s.published.toLocaleString('en-US')} (${Math.round(s.published / took).toLocaleString('en-US')} packets/s incl. drain); ` +
        `dropped ${s.droppedKernel + s.droppedRing} (kernel ${s.droppedKernel}, buffer ${s.droppedRing}); published/offered ${(s.published / sent).toFixed(4)}; ` +
        `watchdog CPU ${cpuUsPerFrame.toFixed(1)} µs per frame (capture thread + publishing), i.e. ~${Math.round(1e6 / cpuUsPerFrame).toLocaleString('en-US')} frames/s per core`,
    );
  } finally {
    await bus.close();
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

// --bus kafka|embedded: the detection path on that bus only, reported against issue 19's
// target (p99 < 20 ms on Kafka, < 10 ms embedded) as the bench `block-latency[-embedded]`;
// --all-services: every service in one process, embedded (no target);
// neither: all three, as before.
const P99_TARGET = { kafka: 20, embedded: 10 };
if (args.only !== 'capture') {
  const path = args.services ?? 'watchdog,dpi,responder';
  const buses = args.bus ? [args.bus] : args['all-services'] ? [] : ['embedded', 'kafka'];
  for (const kind of buses) {
    if (!(kind in P99_TARGET)) throw new Error(`--bus is kafka or embedded, not ${kind}`);
    if (kind === 'kafka' && !process.env.KAFKA_BROKERS) {
      console.log('protection kafka: skipped (KAFKA_BROKERS is not set; scripts/bench.sh starts a broker)');
      continue;
    }
    const { p99 } = await latency(kind, path);
    if (args.bus)
      report({
        bench: kind === 'kafka' ? 'block-latency' : 'block-latency-embedded',
        metric: `p99 ms attack seen -> nft element present (${kind} bus, ${path})`,
        value: p99,
        target: P99_TARGET[kind],
        higherIsBetter: false,
        targetOn: 'value',
        unit: 'ms',
      });
  }
  if (!args.services && !args.bus) await latency('embedded', null);
}
if (args.only !== 'latency' && !args.bus) await captureRate();
