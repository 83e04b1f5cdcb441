import { createHash } from 'node:crypto';
import {
  createWriteStream,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  type WriteStream,
} from 'node:fs';
import { join } from 'node:path';
import { describeError, type Context } from '@cordon/runtime';
import { ProcEvents, type ProcEvent as NativeProcEvent, type ProcStats } from '@cordon/native';
import type { ProcessPolicy } from '@cordon/policy';
import {
  agentEnforcer,
  alertId,
  NO_FLOW,
  type AlertInput,
  type ProcessAncestor,
  type ProcessEvent,
  type ProcessMonitorStatus,
} from '@cordon/schemas';
import { ERR_AGENT_PROCESS_EVENTS_LOST } from './errors.js';

/**
 * Process monitoring: exec, exit and uid events from the native reader (the kernel's process
 * events connector, else /proc polling) → `ProcessEvent` records with the process tree up to
 * the session leader (from a bounded pid table), published on `cordon.processes.v1`.
 *
 * Bounded at every step, so a fork bomb or an exec storm costs counted, alerted drops and
 * never the agent: the native queue (`maxQueue`), the rate published (`maxEventsPerSecond`),
 * the events waiting for the bus (a batch in flight at a time; the native queue holds the
 * rest), the pid table (`tableSize`). Every loss is counted in the heartbeat and raises an
 * alert (at most one per `alertEveryMs`, with the counts since the last).
 */

/** The longest ancestor chain walked (a session leader is normally found well before). */
const MAX_DEPTH = 16;
/** An ancestor's command line in a record is cut at this length (its own is whole, up to the native limit). */
const MAX_ANCESTOR_CMD = 4096;
/** Events published per send (one signature covers them). */
const SEND_BATCH = 512;
/**
 * Under a stream of events, a send leaves at most this often and carries every event queued
 * meanwhile; the first event after a quiet spell leaves at once. Every send is signed (an
 * Ed25519 signature, tens of µs): an exec loop woke the monitor for nearly every event, so
 * 4,000 execs cost ~3,000 signatures, CPU taken from the machine being watched.
 */
const SEND_EVERY_MS = 5;
const ALERT_EVERY_MS = 10_000;
const S_ISUID = 0o4000;

export interface ProcessMonitorOptions {
  policy: ProcessPolicy;
  agent: string;
  vm: string;
  ctx: Context;
  /** Publish events (keyed by VM); resolves when the bus took them. */
  send(events: ProcessEvent[]): Promise<void>;
  /** Publish an alert about this agent's own monitoring (events lost). */
  alert(a: AlertInput): Promise<void>;
  /** Append every event read, one JSON object a line (the agent file's `processRecord`). */
  recordFile?: string | undefined;
  /** /proc and /etc of the machine: "/" but in tests. */
  root?: string;
}

interface Known {
  pid: number;
  ppid: number;
  sid: number;
  image: string;
  commandLine: string;
  uid: number;
  startUs: number;
}

/** A glob of `excludeImages` (`*`: any characters) → a test. */
export function imageMatcher(patterns: readonly string[]): (image: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const res = patterns
    .filter((p) => p.includes('*'))
    .map(
      (p) =>
        new RegExp(
          `^${p
            .split('*')
            .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        ),
    );
  return (image) => exact.has(image) || res.some((r) => r.test(image));
}

/** uid → name from a passwd file's text. */
export function parsePasswd(text: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && /^\d+$/.test(f[2]!)) m.set(Number(f[2]), f[0]);
  }
  return m;
}

/** Setuid regular files below `dirs` (depth ≤ 4, at most 200,000 entries looked at) with their SHA-256. */
export function suidBaseline(dirs: readonly string[], maxHashBytes = 64 << 20): Map<string, string> {
  const out = new Map<string, string>();
  let budget = 200_000;
  const walk = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      if (--budget < 0) return;
      const p = join(d, n);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory() && depth < 4) walk(p, depth + 1);
      else if (st.isFile() && st.mode & S_ISUID && st.size <= maxHashBytes) {
        try {
          out.set(p, createHash('sha256').update(readFileSync(p)).digest('hex'));
        } catch {
          // unreadable: not in the baseline, so running it is reported
        }
      }
    }
  };
  for (const d of dirs) walk(d, 0);
  return out;
}

export class ProcessMonitor {
  private native: ProcEvents | null = null;
  private readonly table = new Map<number, Known>();
  private readonly excluded: (image: string) => boolean;
  private users = new Map<number, string>();
  private usersMtime = -1;
  private usersCheckedAt = 0;
  private baseline = new Map<string, string>();
  private record: WriteStream | null = null;
  private sending: Promise<void> | null = null;
  private scheduled = false;
  /** Events arrived since the running pump last drained (it is scheduled again when it ends). */
  private wanted = false;
  /** When the last send left (performance.now()). */
  private lastSendAt = -Infinity;
  private wake: { timer?: NodeJS.Timeout; immediate?: NodeJS.Immediate } = {};
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  /** Token bucket of the published rate. */
  private tokens: number;
  private refilledAt = Date.now();
  private readonly counts = { events: 0, published: 0, excluded: 0, droppedRate: 0, droppedSend: 0 };
  private alerted = { dropped: 0, at: 0 };
  private readonly root: string;
  private source: ProcessEvent['source'] = 'connector';

  constructor(private readonly o: ProcessMonitorOptions) {
    this.excluded = imageMatcher(o.policy.excludeImages);
    this.tokens = o.policy.maxEventsPerSecond;
    this.root = o.root ?? '/';
  }

  get mode(): ProcessMonitorStatus['mode'] {
    return this.native?.stats().mode ?? 'off';
  }

  /** Start reading; returns the mode that runs (`connector` or `poll`). */
  start(): string {
    const p = this.o.policy;
    this.baseline = suidBaseline(p.suidBaselineDirs, p.hashMaxMiB << 20);
    if (this.o.recordFile) {
      this.record = createWriteStream(this.o.recordFile, { flags: 'a', mode: 0o600 });
      this.record.on('error', (err) =>
        this.o.ctx.log.error(
          { err: describeError(err), file: this.o.recordFile },
          'Process events cannot be recorded to the file.',
        ),
      );
    }
    this.native = ProcEvents.open({
      mode: p.mode,
      maxQueue: p.maxQueue,
      hashMaxBytes: p.hashMaxMiB * 1024 * 1024,
      pollMs: p.pollMs,
      boostBelowExecsPerSecond: p.boostBelowExecsPerSecond,
      onData: () => this.schedule(),
    });
    const mode = this.native.stats().mode;
    this.source = mode;
    // a timer as well: events queued while a send was in flight are picked up without a new wake-up
    this.timer = setInterval(() => {
      this.schedule();
      this.alertIfLost().catch(() => undefined);
    }, 200);
    this.timer.unref();
    this.o.ctx.log.info(
      { mode, suidBaseline: this.baseline.size, excludeImages: p.excludeImages.length },
      mode === 'connector'
        ? 'Process monitoring runs on the kernel process events connector.'
        : 'Process monitoring polls /proc (the connector is unavailable): processes shorter than the interval are missed.',
    );
    return mode;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.wake.timer);
    clearImmediate(this.wake.immediate);
    await this.sending;
    await this.pump();
    await this.alertIfLost(true).catch(() => undefined);
    this.native?.close();
    if (this.record) await new Promise<void>((r) => this.record!.end(r));
  }

  nativeStats(): ProcStats | null {
    return this.native?.stats() ?? null;
  }

  status(): ProcessMonitorStatus {
    const s = this.native?.stats();
    const dropped =
      (s?.droppedQueue ?? 0) + (s?.droppedKernel ?? 0) + this.counts.droppedRate + this.counts.droppedSend;
    return {
      mode: s?.mode ?? 'off',
      events: this.counts.events,
      published: this.counts.published,
      excluded: this.counts.excluded,
      dropped,
      dropped_queue: (s?.droppedQueue ?? 0) + this.counts.droppedRate + this.counts.droppedSend,
      dropped_kernel: s?.droppedKernel ?? 0,
      incomplete: s?.incomplete ?? 0,
      table_size: this.table.size,
    };
  }

  private schedule(): void {
    this.wanted = true;
    if (this.scheduled || this.sending || !this.native || this.stopped) return;
    this.scheduled = true;
    const wait = this.lastSendAt + SEND_EVERY_MS - performance.now();
    if (wait > 0) this.wake = { timer: setTimeout(() => this.run(), wait) };
    else this.wake = { immediate: setImmediate(() => this.run()) };
  }

  private run(): void {
    this.scheduled = false;
    this.wake = {};
    if (this.stopped) return;
    // a timer can fire up to a millisecond early by this clock (libuv's is the loop's, in whole
    // milliseconds): the spacing between sends holds anyway
    if (performance.now() - this.lastSendAt < SEND_EVERY_MS) {
      this.schedule();
      return;
    }
    this.wanted = false;
    this.sending = this.pump().finally(() => {
      this.sending = null;
      if (this.wanted) this.schedule();
    });
  }

  /** Drain, turn into records, publish a batch at a time until the queue is empty. */
  private async pump(): Promise<void> {
    const n = this.native;
    if (!n) return;
    for (;;) {
      const raw = n.drain(SEND_BATCH);
      if (raw.length === 0) return;
      const out: ProcessEvent[] = [];
      for (const e of raw) {
        const rec = this.toRecord(e);
        if (rec) out.push(rec);
      }
      if (out.length === 0) continue;
      this.lastSendAt = performance.now();
      try {
        await this.o.send(out);
        this.counts.published += out.length;
      } catch (err) {
        this.counts.droppedSend += out.length;
        this.o.ctx.metrics.inc('errors');
        this.o.ctx.log.warn(
          { err: describeError(err), events: out.length },
          'Process events could not be published; they are counted as dropped.',
        );
      }
      // a full batch: more is queued, drain on; else the next send waits its turn (schedule)
      if (this.stopped || raw.length < SEND_BATCH) return;
    }
  }

  private userOf(uid: number): string | null {
    // /etc/passwd is looked at again at most once a second, not once an event
    const now = Date.now();
    if (now - this.usersCheckedAt < 1000) return this.users.get(uid) ?? null;
    this.usersCheckedAt = now;
    const file = join(this.root, 'etc/passwd');
    try {
      const m = statSync(file).mtimeMs;
      if (m !== this.usersMtime) {
        this.users = parsePasswd(readFileSync(file, 'utf8'));
        this.usersMtime = m;
      }
    } catch {
      // no passwd: names stay unknown
    }
    return this.users.get(uid) ?? null;
  }

  private remember(k: Known): void {
    this.table.delete(k.pid);
    this.table.set(k.pid, k);
    if (this.table.size > this.o.policy.tableSize) this.table.delete(this.table.keys().next().value!);
  }

  /** A process started before the agent, or whose exec was not seen: read from /proc now. */
  private lookUp(pid: number): Known | null {
    const base = join(this.root, 'proc', String(pid));
    try {
      const stat = readFileSync(join(base, 'stat'), 'latin1');
      const close = stat.lastIndexOf(')');
      const f = stat.slice(close + 2).split(' ');
      const argv = readFileSync(join(base, 'cmdline'), 'utf8').replace(/\0$/, '').split('\0');
      let image = '';
      try {
        image = readlinkSync(join(base, 'exe')).replace(/ \(deleted\)$/, '');
      } catch {
        // a kernel thread, or not ours to read
      }
      const uidLine = /^Uid:\s+(\d+)/m.exec(readFileSync(join(base, 'status'), 'latin1'));
      const k: Known = {
        pid,
        ppid: Number(f[1]),
        sid: Number(f[3]),
        image,
        commandLine: argv.join(' '),
        uid: uidLine ? Number(uidLine[1]) : -1,
        startUs: 0,
      };
      this.remember(k);
      return k;
    } catch {
      return null;
    }
  }

  /** Parent first, up to and including the session leader. */
  private ancestors(ppid: number, sid: number): ProcessAncestor[] {
    const out: ProcessAncestor[] = [];
    let pid = ppid;
    const seen = new Set<number>();
    while (pid > 0 && out.length < MAX_DEPTH && !seen.has(pid)) {
      seen.add(pid);
      const k = this.table.get(pid) ?? this.lookUp(pid);
      if (!k) break;
      // the parent always (who started it, also when it leads a session of its own), then the
      // ancestors within its session: the tree ends at the session leader
      if (out.length > 0 && sid > 0 && k.sid > 0 && k.sid !== sid) break;
      out.push({
        pid,
        image: k.image,
        command_line:
          k.commandLine.length > MAX_ANCESTOR_CMD ? `${k.commandLine.slice(0, MAX_ANCESTOR_CMD)}…` : k.commandLine,
        uid: k.uid,
        start_us: k.startUs,
      });
      if (pid === sid || pid === 1) break;
      pid = k.ppid;
    }
    return out;
  }

  private allow(): boolean {
    const now = Date.now();
    const rate = this.o.policy.maxEventsPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private toRecord(e: NativeProcEvent): ProcessEvent | null {
    this.counts.events++;
    if (e.kind === 'exit') {
      const k = this.table.get(e.pid);
      this.table.delete(e.pid);
      if (!this.o.policy.exits) return null;
      if (k) {
        e.exe = k.image;
        e.ppid ||= k.ppid;
        e.uid = k.uid;
        e.startUs = k.startUs;
        e.argv = k.commandLine ? [k.commandLine] : [];
      }
    }
    if (e.kind === 'uid') {
      // the program that changed its ids is the one its last exec named (events come in order;
      // /proc, read a moment later, may already show the next program it executed)
      const k = this.table.get(e.pid);
      if (k) {
        e.exe = k.image;
        e.ppid ||= k.ppid;
        e.sid = k.sid;
        e.argv = k.commandLine ? [k.commandLine] : [];
        this.remember({ ...k, uid: e.uid });
      }
    }
    const commandLine = e.kind === 'exec' ? e.argv.join(' ') : (e.argv[0] ?? '');
    if (e.kind === 'exec') {
      this.remember({
        pid: e.pid,
        ppid: e.ppid,
        sid: e.sid,
        image: e.exe,
        commandLine,
        uid: e.uid,
        startUs: e.startUs,
      });
    }
    const excluded = e.exe !== '' && this.excluded(e.exe);
    // without a record file, what is not published is not built either (an exec storm costs little)
    if (!this.record && !this.admit(excluded)) return null;
    const rec = this.build(e, commandLine);
    if (this.record) {
      this.record.write(`${JSON.stringify(rec)}\n`);
      if (!this.admit(excluded)) return null;
    }
    return rec;
  }

  /** Counted out when excluded or over the rate. */
  private admit(excluded: boolean): boolean {
    if (excluded) {
      this.counts.excluded++;
      return false;
    }
    if (!this.allow()) {
      this.counts.droppedRate++;
      return false;
    }
    return true;
  }

  private build(e: NativeProcEvent, commandLine: string): ProcessEvent {
    const parent = this.table.get(e.ppid) ?? (e.ppid > 0 && e.kind === 'exec' ? this.lookUp(e.ppid) : null);
    const setuid = (e.exeMode & S_ISUID) !== 0;
    return {
      event_id: `${this.o.agent}|${e.pid}|${e.startUs}|${e.kind}|${e.tsUs}`,
      agent: this.o.agent,
      vm: this.o.vm,
      ts_us: e.tsUs,
      kind: e.kind,
      source: this.source,
      pid: e.pid,
      ppid: e.ppid,
      sid: e.sid,
      uid: e.uid,
      euid: e.euid,
      user: e.kind === 'exit' ? null : this.userOf(e.uid),
      image: e.exe,
      image_deleted: e.exeDeleted,
      image_mode: e.exeMode,
      image_size: e.exeSize,
      image_sha256: e.sha256 || null,
      suid_new: e.kind === 'exec' && setuid && this.baseline.get(e.exe) !== e.sha256,
      argv: e.kind === 'exec' ? e.argv : [],
      argv_truncated: e.argvTruncated,
      command_line: commandLine,
      cwd: e.cwd,
      comm: e.comm,
      parent_image: e.parentExe || parent?.image || '',
      parent_command_line: parent?.commandLine ?? '',
      start_us: e.startUs,
      // the kernel's wait status, as a shell reports it: the code, or 128 + the signal
      exit_code: e.kind === 'exit' ? (e.exitCode & 0x7f ? 128 + (e.exitCode & 0x7f) : (e.exitCode >> 8) & 0xff) : null,
      incomplete: e.incomplete,
      ancestors: e.kind === 'exec' ? this.ancestors(e.ppid, e.sid) : [],
    };
  }

  /** An alert when events were lost since the last one (at most one per ALERT_EVERY_MS unless `now`). */
  private async alertIfLost(now = false): Promise<void> {
    const st = this.status();
    if (st.dropped <= this.alerted.dropped) return;
    const t = Date.now();
    if (!now && t - this.alerted.at < ALERT_EVERY_MS) return;
    const since = this.alerted.dropped;
    this.alerted = { dropped: st.dropped, at: t };
    const err = ERR_AGENT_PROCESS_EVENTS_LOST(st.dropped - since, st.mode);
    this.o.ctx.log.warn({ err: describeError(err), status: st }, 'Process events were lost; an alert says so.');
    await this.o.alert({
      alert_id: alertId('agent', this.o.vm, 'process-events-lost', this.o.agent, st.dropped),
      ts_us: t * 1000,
      stage: 'agent',
      vm: this.o.vm,
      sensor: agentEnforcer(this.o.agent),
      rule_id: 'cordon:process-events-lost',
      rule_rev: 0,
      signature: 'Process events lost by the agent (overload, a fork or exec storm?)',
      severity: 2,
      category: 'sensor-health',
      action: 'alert',
      ...NO_FLOW,
      evidence: JSON.stringify({ code: err.code, lost: st.dropped - since, status: st }),
    });
  }
}
