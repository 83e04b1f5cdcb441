/**
 * The coordination world: two hypervisor hosts, a VM that powers on and off, migrates between
 * them and runs an agent, and an attacker — every Cordon stage that takes part in protecting
 * it, on one bus, each killable on its own. Shared by test/coordination-e2e.test.ts and
 * bench/gap.mjs.
 *
 * - The platform is the inventory **file** connector (`services/inventory`, `file:///…`): the
 *   lab rewrites the YAML at each power change or migration and stamps the file with the
 *   instant the lab made the change (its mtime is the platform's time of the event), so the
 *   hand-off boundaries the coordinator derives from the platform's events are the real ones.
 *   (vcsim would drive the same connector interface, but its events carry its own clock and a
 *   VM's MAC cannot be made to move a veth: the file is the platform whose clock is the lab's.)
 * - The stages run in this process: inventory, coordinator (one or two), dpi (with a UDP rule of
 *   our own: `CORDON-GAP-ATTACK`), responder, fim (file events → alerts), a watchdog per host (capture and enforcement in the
 *   host's namespace) and the VM's agent (capture on the VM's eth0 and enforcement inside the
 *   VM's namespace). Watchdogs, agents and coordinators each get their own severable link to the
 *   bus: `kill()` cuts it first and then stops the stage, so nothing more of theirs is ever
 *   seen — a crash, not a goodbye.
 * - The attacker (a process in its namespace on the fabric) sends one UDP datagram every
 *   `intervalMs` to the VM, each from its own source port (the attack's id, also in the
 *   payload); a receiver in the VM's namespace notes which arrive. Alerts of the rule are
 *   matched to attacks by source port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { agentStage, makeEnrollToken, agentIdFor, readEnrollToken } from '@cordon/agent';
import { createEmbeddedBus, createKafkaBus, type Bus, type Consumer } from '@cordon/bus';
import { coordinatorStage } from '@cordon/coordinator';
import { dpiStage } from '@cordon/dpi';
import { fimStage } from '@cordon/fim';
import { inventoryStage } from '@cordon/inventory';
import { applyPolicyFile } from '@cordon/policy';
import { responderStage } from '@cordon/responder';
import {
  createContext,
  createLogger,
  Metrics,
  OffsetClock,
  silentLogger,
  type Clock,
  type Context,
} from '@cordon/runtime';
import {
  allTopicSpecs,
  codecFor,
  TOPICS,
  type AgentCommand,
  type AgentRecord,
  type Alert,
  type Assignment,
  type FileEvent,
  type PacketBatch,
} from '@cordon/schemas';
import { runStage, type RunningStage } from '@cordon/stage';
import { freshCordonTopics, makeHostsLab, severable, wallUs, type HostsLab, type SeverableBus } from '@cordon/testkit';
import { watchdogStage } from '@cordon/watchdog';

export const ATTACK_SID = 9100001;
export const BLOCK_SID = 9100002;
export const ATTACK_PORT = 9999;
const HELLO_PORT = 9998;
/** Attack ids are source ports from this one on. */
const PORT_BASE = 20000;
const PORT_SPAN = 40000;

export interface WorldOptions {
  kind: 'embedded' | 'kafka';
  /** 1-6 lower-case letters or digits (namespace names). */
  tag: string;
  subnet: number;
  dir: string;
  /** VM → host it starts on (powered off). Default { vm1: 'hva' }. */
  vms?: Record<string, string>;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  handoffDelayMs: number;
  /** Agents run on a clock this far off (ms; their capture stamps too): a guest without time sync. */
  agentClockMs?: number;
  /** coordination.maxClockOffsetMs (default: the policy's). */
  maxClockOffsetMs?: number;
  /** Gate every VM (coordination.gate), or these VMs (vms.<vm>.gate). */
  gate?: boolean | string[];
  coordinators?: number;
  /**
   * Run the coordinators as `cordon run coordinator` processes (Kafka only), killed with
   * SIGKILL: a crash the consumer group notices only by its session timeout.
   */
  coordinatorProcesses?: boolean;
  /** Log the stages' info lines to stderr. */
  verbose?: boolean;
}

export interface SeenBatch {
  at: number;
  sensor: string;
  vm: string | null;
  frames: Array<{ tsUs: number; src: string; dst: string }>;
}

export interface Attack {
  id: number;
  /** The VM attacked (by its address). */
  vm: string | null;
  sentUs: number;
  receivedUs: number | null;
  alerts: Alert[];
}

export interface AgentHandle {
  id: string;
  vm: string;
  stateDir: string;
  token: string;
  stage: RunningStage<unknown, object>;
  link: SeverableBus;
  metrics: Metrics;
}

type Running = RunningStage<unknown, object>;

/** What the world saw on the bus, as it came. */
export interface Seen {
  alerts: Array<{ at: number; alert: Alert }>;
  assignments: Array<{ at: number; a: Assignment }>;
  commands: Array<{ at: number; c: AgentCommand }>;
  agents: Array<{ at: number; r: AgentRecord }>;
  fim: Array<{ at: number; e: FileEvent }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ATTACKER = `
const dgram = require('dgram');
const [dport, base, span] = process.argv.slice(1).map(Number);
const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
let timer = null;
let next = 0;
function one(id, dst, src, text) {
  const s = dgram.createSocket('udp4');
  s.on('error', () => s.close());
  s.bind({ address: src || undefined, port: base + (id % span) }, () => {
    const at = now();
    s.send(text || ('CORDON-GAP-ATTACK id=' + id), dport, dst, () => {
      process.stdout.write('S ' + id + ' ' + at + ' ' + dst + '\\n');
      s.close();
    });
  });
}
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, a, b, ...rest] = l.split(' ');
  if (cmd === 'start') {
    clearInterval(timer);
    const dsts = b.split(',');
    timer = setInterval(() => { for (const d of dsts) one(next++, d); }, Number(a));
  } else if (cmd === 'stop') {
    clearInterval(timer);
    timer = null;
  } else if (cmd === 'one') {
    one(next++, a, b, rest.join(' '));
  }
});
`;

const RECEIVER = `
const dgram = require('dgram');
const [port, helloTo, helloPort] = process.argv.slice(1);
const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const s = dgram.createSocket('udp4');
s.on('message', (m) => {
  const x = /id=(\\d+)/.exec(m.toString());
  if (x) process.stdout.write('R ' + x[1] + ' ' + now() + '\\n');
});
s.bind(Number(port), () => process.stdout.write('listening\\n'));
require('readline').createInterface({ input: process.stdin }).on('line', () => s.send('hello', Number(helloPort), helloTo));
`;

function lines(child: ChildProcess, on: (line: string) => void): void {
  createInterface({ input: child.stdout! }).on('line', on);
}

export class CoordinationWorld {
  readonly lab: HostsLab;
  readonly bus: Bus;
  readonly ctx: Context;
  readonly secret = randomBytes(32);
  readonly secretFile: string;
  readonly seen: Seen = { alerts: [], assignments: [], commands: [], agents: [], fim: [] };
  readonly attacks = new Map<number, Attack>();
  readonly watchdogs = new Map<string, { stage: Running; link: SeverableBus; metrics: Metrics }>();
  readonly coordinators: Array<{
    stage?: Running;
    link?: SeverableBus;
    proc?: ChildProcess;
    partitions?: number[];
  } | null> = [];
  readonly packets: SeenBatch[] = [];
  readonly agents: AgentHandle[] = [];
  policyVersion = 0;
  private readonly stages: Running[] = [];
  private readonly procs: ChildProcess[] = [];
  private readonly taps: Consumer[] = [];
  private readonly inventoryFile: string;
  private inventoryVersion = 0;
  private attacker: ChildProcess | null = null;
  private readonly receivers = new Map<string, ChildProcess>();
  private readonly power = new Map<string, 'on' | 'off'>();

  private constructor(readonly opts: WorldOptions) {
    this.ctx = this.contextFor('world');
    this.lab = makeHostsLab({ tag: opts.tag, subnet: opts.subnet, vms: opts.vms ?? { vm1: 'hva' } });
    mkdirSync(opts.dir, { recursive: true });
    this.secretFile = join(opts.dir, 'enroll.key');
    writeFileSync(this.secretFile, this.secret.toString('hex'), { mode: 0o600 });
    this.inventoryFile = join(opts.dir, 'inventory.yaml');
    this.bus =
      opts.kind === 'kafka'
        ? createKafkaBus({ brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(','), ctx: this.ctx })
        : createEmbeddedBus({ dataDir: join(opts.dir, 'bus'), ctx: this.ctx });
    for (const vm of Object.keys(this.lab.vms)) this.power.set(vm, 'off');
  }

  contextFor(name: string, metrics = new Metrics(), clock?: Clock): Context {
    return createContext({
      log: this.opts.verbose ? createLogger(name, 'info') : silentLogger,
      metrics,
      ...(clock ? { clock } : {}),
    });
  }

  static async start(opts: WorldOptions): Promise<CoordinationWorld> {
    if (opts.kind === 'kafka') await freshCordonTopics((process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(','));
    const w = new CoordinationWorld(opts);
    try {
      await w.boot();
    } catch (err) {
      await w.stop();
      throw err;
    }
    return w;
  }

  private async boot(): Promise<void> {
    const { opts, bus } = this;
    await bus.admin.ensureTopics(allTopicSpecs());
    // the taps first: everything from the start
    this.tap<Alert>(TOPICS.alerts, (v) => this.onAlert(v));
    this.tap<Assignment>(TOPICS.assignments, (a) => this.seen.assignments.push({ at: wallUs(), a }));
    this.tap<AgentCommand>(TOPICS.agentCommands, (c) => this.seen.commands.push({ at: wallUs(), c }));
    this.tap<AgentRecord>(TOPICS.agents, (r) => this.seen.agents.push({ at: wallUs(), r }));
    this.tap<FileEvent>(TOPICS.fim, (e) => this.seen.fim.push({ at: wallUs(), e }));

    writeFileSync(
      join(opts.dir, 'gap.rules'),
      [
        `alert udp any any -> any ${ATTACK_PORT} (msg:"CORDON gap attack"; content:"CORDON-GAP-ATTACK"; classtype:attempted-admin; sid:${ATTACK_SID}; rev:1;)`,
        `alert udp any any -> any ${ATTACK_PORT} (msg:"CORDON block me"; content:"CORDON-BLOCK-ME"; classtype:attempted-admin; sid:${BLOCK_SID}; rev:1;)`,
        '',
      ].join('\n'),
    );
    const gate = opts.gate;
    const policy = [
      'id: default',
      'mode: detect',
      'ruleFiles: [gap.rules]',
      `rules: { "${BLOCK_SID}": prevent }`,
      'blocks: { ttlS: 600 }',
      `coordination: { heartbeatIntervalMs: ${opts.heartbeatIntervalMs}, heartbeatTimeoutMs: ${opts.heartbeatTimeoutMs}, handoffDelayMs: ${opts.handoffDelayMs}, gate: ${gate === true}${opts.maxClockOffsetMs ? `, maxClockOffsetMs: ${opts.maxClockOffsetMs}` : ''} }`,
      ...(Array.isArray(gate) ? ['vms:', ...gate.map((v) => `  ${v}: { gate: true }`)] : []),
      '',
    ].join('\n');
    writeFileSync(join(opts.dir, 'policy.yaml'), policy);
    this.policyVersion = (
      await applyPolicyFile({ bus, ctx: this.ctx, dataDir: opts.dir }, join(opts.dir, 'policy.yaml'))
    ).version;
    this.writeInventory(wallUs());

    const run = async (
      module: Parameters<typeof runStage>[0],
      config: unknown,
      b: Bus = bus,
      ctx = this.ctx,
    ): Promise<Running> => {
      const s = (await runStage(module, { bus: b, ctx, config, env: { dataDir: opts.dir } } as Parameters<
        typeof runStage
      >[1])) as Running;
      this.stages.push(s);
      return s;
    };
    await run(
      inventoryStage,
      { sources: [{ url: pathToFileURL(this.inventoryFile).href, pollMs: 20 }] },
      bus,
      this.contextFor('inventory'),
    );
    await run(dpiStage, { checksum: 'off', maxBatchRecords: 64 }, bus, this.contextFor('dpi'));
    await run(responderStage, {}, bus, this.contextFor('responder'));
    await run(fimStage, {}, bus, this.contextFor('fim'));
    for (const host of Object.keys(this.lab.hosts)) await this.startWatchdog(host);
    for (let i = 0; i < (opts.coordinators ?? 1); i++) await this.startCoordinator();

    // the attacker on the fabric; a receiver in each VM
    const attacker = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.lab.attacker.ns,
        process.execPath,
        '-e',
        ATTACKER,
        String(ATTACK_PORT),
        String(PORT_BASE),
        String(PORT_SPAN),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.procs.push(attacker);
    this.attacker = attacker;
    lines(attacker, (l) => {
      const [k, id, us, dst] = l.split(' ');
      if (k !== 'S') return;
      const a = this.attackOf(Number(id));
      a.sentUs = Number(us);
      a.vm = Object.values(this.lab.vms).find((v) => v.ip === dst)?.name ?? null;
    });
    for (const vm of Object.values(this.lab.vms)) {
      const r = spawn(
        'ip',
        [
          'netns',
          'exec',
          vm.ns,
          process.execPath,
          '-e',
          RECEIVER,
          String(ATTACK_PORT),
          this.lab.attacker.ip,
          String(HELLO_PORT),
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      this.procs.push(r);
      this.receivers.set(vm.name, r);
      await new Promise<void>((resolve, reject) => {
        lines(r, (l) => {
          if (l === 'listening') resolve();
          const [k, id, us] = l.split(' ');
          if (k === 'R') {
            const a = this.attackOf(Number(id));
            a.receivedUs ??= Number(us);
          }
        });
        r.once('exit', (c) => reject(new Error(`the receiver in ${vm.name} exited (${String(c)})`)));
      });
    }
  }

  private attackOf(id: number): Attack {
    let a = this.attacks.get(id);
    if (!a) this.attacks.set(id, (a = { id, vm: null, sentUs: 0, receivedUs: null, alerts: [] }));
    return a;
  }

  private onAlert(alert: Alert): void {
    this.seen.alerts.push({ at: wallUs(), alert });
    if (alert.rule_id !== `sid:${ATTACK_SID}` || alert.src_port === null) return;
    const id = alert.src_port - PORT_BASE;
    this.attackOf(id).alerts.push(alert);
  }

  private tap<T>(topic: string, on: (v: T) => void): void {
    const codec = codecFor(topic as Parameters<typeof codecFor>[0]);
    const c = this.bus.consumer({
      groupId: `world-tap-${topic}-${process.pid}-${Date.now()}`,
      topics: [topic],
      fromBeginning: true,
      autoCommit: false,
    });
    this.taps.push(c);
    void c
      .run(async (batch) => {
        for (const r of batch.records) if (r.value) on(codec.decode(r.value) as T);
      })
      .catch(() => undefined);
  }

  // ---- the platform: the inventory file, stamped with the lab's instant of each change

  private writeInventory(atUs: number): void {
    const byHost = new Map<string, string[]>(Object.keys(this.lab.hosts).map((h) => [h, []]));
    for (const vm of Object.values(this.lab.vms)) {
      byHost
        .get(vm.host)!
        .push(
          `      ${vm.name}:`,
          `        power: ${this.power.get(vm.name)}`,
          `        nics: [{ mac: "${vm.mac}", ips: ["${vm.ip}"] }]`,
        );
    }
    const text = [
      `# version ${++this.inventoryVersion}`,
      'hosts:',
      ...[...byHost].flatMap(([h, l]) => [`  ${h}:`, ...(l.length ? ['    vms:', ...l] : ['    vms: {}'])]),
      '',
    ].join('\n');
    const tmp = `${this.inventoryFile}.tmp`;
    writeFileSync(tmp, text);
    const at = new Date(atUs / 1000);
    utimesSync(tmp, at, at);
    renameSync(tmp, this.inventoryFile);
  }

  /** Power the VM on: its port up, then the platform says so (from that instant). */
  powerOn(vm: string): number {
    const t = this.lab.powerOn(vm);
    this.power.set(vm, 'on');
    this.writeInventory(t);
    this.hello(vm);
    return t;
  }

  powerOff(vm: string): number {
    const t = this.lab.powerOff(vm);
    this.power.set(vm, 'off');
    this.writeInventory(t);
    return t;
  }

  /** Migrate the VM: its port moves; the platform reports the switchover instant; the VM announces itself (RARP's part). */
  migrate(vm: string, host: string): number {
    const t = this.lab.migrate(vm, host);
    this.hello(vm);
    this.writeInventory(t);
    return t;
  }

  /** A frame from the VM, so the fabric learns where it is now (what QEMU's announce does). */
  hello(vm: string): void {
    this.receivers.get(vm)?.stdin!.write('hello\n');
  }

  // ---- the attacker

  /** One attack every `intervalMs` at each of `vms` (default: the first VM). */
  startAttacks(intervalMs: number, vms: string[] = [Object.keys(this.lab.vms)[0]!]): void {
    this.attacker!.stdin!.write(`start ${intervalMs} ${vms.map((v) => this.lab.vms[v]!.ip).join(',')}\n`);
  }

  stopAttacks(): void {
    this.attacker!.stdin!.write('stop\n');
  }

  /** One datagram with this payload to `vm` from `src` (an address of the attacker's). */
  sendOne(vm: string, src: string, payload: string): void {
    this.attacker!.stdin!.write(`one ${this.lab.vms[vm]!.ip} ${src} ${payload}\n`);
  }

  // ---- stages that can be killed

  async startWatchdog(host: string): Promise<void> {
    const h = this.lab.hosts[host]!;
    const link = severable(this.bus);
    const metrics = new Metrics();
    const stage = (await runStage(watchdogStage, {
      bus: link.bus,
      ctx: this.contextFor(`watchdog-${host}`, metrics),
      config: {
        host,
        bridge: h.bridge,
        capture: { enabled: true, netns: h.ns, pollMs: 20, holdMs: 10_000 },
        enforce: { enabled: true, netns: h.ns, table: 'cordon_watchdog' },
        statusIntervalMs: Math.max(50, this.opts.heartbeatIntervalMs),
      },
    })) as Running;
    this.watchdogs.set(host, { stage, link, metrics });
  }

  async killWatchdog(host: string): Promise<void> {
    const w = this.watchdogs.get(host);
    if (!w) return;
    this.watchdogs.delete(host);
    w.link.sever();
    await w.stage.stop().catch(() => undefined);
  }

  async startCoordinator(): Promise<number> {
    if (this.opts.coordinatorProcesses) return this.spawnCoordinator();
    const link = severable(this.bus);
    const stage = (await runStage(coordinatorStage, {
      bus: link.bus,
      ctx: this.contextFor(`coordinator-${this.coordinators.length}`),
      config: { enrollSecretFile: this.secretFile, tickMs: 50 },
      env: { dataDir: this.opts.dir },
    } as Parameters<typeof runStage>[1])) as Running;
    this.coordinators.push({ stage, link });
    return this.coordinators.length - 1;
  }

  private async spawnCoordinator(): Promise<number> {
    const i = this.coordinators.length;
    const dir = join(this.opts.dir, `coordinator-${i}`);
    mkdirSync(dir, { recursive: true });
    const cfg = join(dir, 'cordon.yaml');
    writeFileSync(cfg, `coordinator: { enrollSecretFile: "${this.secretFile}", tickMs: 50 }\n`);
    const cli = join(
      fileURLToPath(new URL('.', import.meta.url)),
      '..',
      '..',
      '..',
      'services',
      'cli',
      'bin',
      'cordon.js',
    );
    const proc = spawn(
      process.execPath,
      [
        cli,
        'run',
        'coordinator',
        '--config',
        cfg,
        '--data-dir',
        dir,
        '--brokers',
        process.env.KAFKA_BROKERS ?? '127.0.0.1:19092',
        '--metrics-addr',
        'off',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, CORDON_LOG_FORMAT: 'json', CORDON_LOG_LEVEL: 'info' },
      },
    );
    this.procs.push(proc);
    const c: { proc: ChildProcess; partitions?: number[] } = { proc };
    this.coordinators.push(c);
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      if (this.opts.verbose) process.stderr.write(`[coordinator-${i}] ${l}\n`);
      try {
        const o = JSON.parse(l) as { msg?: string; partitions?: number[] };
        if (o.msg === 'Coordinating the VMs of these partitions.' && o.partitions) c.partitions = o.partitions;
      } catch {
        // not a log line
      }
    });
    return i;
  }

  /** The partitions of vm-events a coordinator owns now (a process: as its last log said). */
  owned(i: number): Set<number> {
    const c = this.coordinators[i];
    if (c?.proc) return new Set(c.partitions ?? []);
    return (c?.stage as unknown as { owned?: Set<number> })?.owned ?? new Set();
  }

  /** Kill a coordinator: SIGKILL for a process; an in-process one's link is cut, then it stops. */
  async killCoordinator(i: number): Promise<void> {
    const c = this.coordinators[i];
    if (!c) return;
    this.coordinators[i] = null;
    if (c.proc) {
      c.proc.kill('SIGKILL');
      return;
    }
    c.link!.sever();
    await c.stage!.stop().catch(() => undefined);
  }

  tokenFor(vm: string): string {
    return makeEnrollToken(this.secret, vm, 24 * 3_600_000, Date.now());
  }

  /** A machine identity for an agent (its machine-id): two sysRoots, two machines. */
  sysRoot(name: string): string {
    const root = join(this.opts.dir, 'machines', name);
    mkdirSync(join(root, 'etc'), { recursive: true });
    if (!existsSync(join(root, 'etc', 'machine-id')))
      writeFileSync(join(root, 'etc', 'machine-id'), `${randomBytes(16).toString('hex')}\n`);
    return root;
  }

  /**
   * Start an agent for `vm` (its token's VM) capturing and enforcing inside the namespace of
   * `inVm` (the VM it runs in: the same one, or a clone's).
   */
  async startAgent(o: {
    vm: string;
    token: string;
    stateDir: string;
    sysRoot: string;
    inVm?: string;
    fimPaths?: string[];
    checkpointS?: number;
    verdictWaitS?: number;
  }): Promise<AgentHandle> {
    const ns = this.lab.vms[o.inVm ?? o.vm]!.ns;
    const link = severable(this.bus);
    const metrics = new Metrics();
    const stage = (await runStage(agentStage, {
      bus: link.bus,
      ctx: this.contextFor(
        `agent-${o.vm}`,
        metrics,
        this.opts.agentClockMs ? new OffsetClock(this.opts.agentClockMs) : undefined,
      ),
      config: {
        token: o.token,
        stateDir: o.stateDir,
        sysRoot: o.sysRoot,
        heartbeatS: Math.max(0.05, this.opts.heartbeatIntervalMs / 1000),
        ...(o.checkpointS ? { checkpointS: o.checkpointS } : {}),
        ...(o.verdictWaitS !== undefined ? { verdictWaitS: o.verdictWaitS } : {}),
        netconf: { enabled: false },
        // the lab's file trees are its own temp dirs: they are the agent's roots (main's fimRoots check refused them)
        ...(o.fimPaths ? { fim: { paths: o.fimPaths, scanIntervalS: 0 }, fimRoots: o.fimPaths } : {}),
        capture: { enabled: true, interface: 'eth0', netns: ns, pollMs: 20, holdMs: 10_000 },
        enforce: { enabled: true, netns: ns, table: 'cordon' },
      },
    })) as Running;
    const h: AgentHandle = {
      id: agentIdFor(readEnrollToken(o.token)),
      vm: o.vm,
      stateDir: o.stateDir,
      token: o.token,
      stage,
      link,
      metrics,
    };
    this.agents.push(h);
    return h;
  }

  /** Kill an agent: its link is cut (nothing more of it is seen), then it stops. */
  async killAgent(a: AgentHandle): Promise<void> {
    a.link.sever();
    await a.stage.stop().catch(() => undefined);
    const i = this.agents.indexOf(a);
    if (i >= 0) this.agents.splice(i, 1);
  }

  /** Record every PacketBatch published (who published which frames), from now on. */
  tapPackets(): void {
    this.tap<PacketBatch>(TOPICS.packets, (b) => {
      const frames = b.packets.map((p) => {
        const f = p.frame;
        const ip4 = f.length >= 34 && f.readUInt16BE(12) === 0x0800;
        return {
          tsUs: p.ts_us,
          src: ip4 ? [...f.subarray(26, 30)].join('.') : '',
          dst: ip4 ? [...f.subarray(30, 34)].join('.') : '',
        };
      });
      this.packets.push({ at: wallUs(), sensor: b.sensor, vm: b.vm, frames });
    });
  }

  /** Another source address for the attacker. */
  addAttackerAddress(ip: string): void {
    this.lab.exec(this.lab.attacker.ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  }

  /** The addresses in a set of a host's watchdog table now (drop4, reject4, …; gate: MACs). */
  nftSet(host: string, set: string): string[] {
    let out: string;
    try {
      out = this.lab.exec(this.lab.hosts[host]!.ns, ['nft', '-j', 'list', 'set', 'bridge', 'cordon_watchdog', set]);
    } catch {
      return [];
    }
    const doc = JSON.parse(out) as { nftables?: Array<{ set?: { elem?: unknown[] } }> };
    const vals: string[] = [];
    for (const item of doc.nftables ?? []) {
      for (const e of item.set?.elem ?? []) {
        const v = typeof e === 'string' ? e : (e as { elem?: { val?: unknown } }).elem?.val;
        if (typeof v === 'string') vals.push(v);
      }
    }
    return vals;
  }

  /** The VM's newest assignment as seen on the topic. */
  assignment(vm: string): Assignment | undefined {
    for (let i = this.seen.assignments.length - 1; i >= 0; i--)
      if (this.seen.assignments[i]!.a.vm === vm) return this.seen.assignments[i]!.a;
    return undefined;
  }

  static copyDir(from: string, to: string): void {
    rmSync(to, { recursive: true, force: true });
    cpSync(from, to, { recursive: true, preserveTimestamps: true });
  }

  async stop(): Promise<void> {
    for (const a of [...this.agents]) await a.stage.stop().catch(() => undefined);
    for (const [, w] of this.watchdogs) await w.stage.stop().catch(() => undefined);
    for (const c of this.coordinators) await c?.stage?.stop().catch(() => undefined);
    for (const s of [...this.stages].reverse()) await s.stop().catch(() => undefined);
    for (const c of this.taps) await c.close().catch(() => undefined);
    for (const p of this.procs) p.kill('SIGKILL');
    await sleep(100);
    await this.bus.close().catch(() => undefined);
    this.lab?.destroy();
  }
}
