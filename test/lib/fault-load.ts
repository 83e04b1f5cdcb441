/**
 * The fault tests' world: a steady load of numbered attacks through the real pipeline, the
 * service processes it goes through (each one a `cordon` child that a test kills with -9 and
 * starts again), and the accounting in ClickHouse by number: sent, stored, lost, doubled.
 *
 * Two loads, each record with a number of its own:
 * - log lines (`/fault/<n>/../../../../srv/x` in a web access log), tailed by the agent →
 *   `logs` → loginspect → one alert each (rule cordon-web-traversal);
 * - HTTP sessions (`/f/<n>/../../../../etc/passwd` from 198.18.<n>), published as packet
 *   batches → dpi → one alert each (sid 1900001) → responder → one block each (prevent mode
 *   in the demo policy, a distinct attacker per session).
 * The sink lands alerts, blocks and dead letters in ClickHouse, where they are counted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pcapFile, traversalFrames } from '@cordon/cli';

export const CLI = join(import.meta.dirname, '..', '..', '..', 'services', 'cli', 'bin', 'cordon.js');
export const DEMO_RULES = join(import.meta.dirname, '..', '..', '..', 'rules', 'demo');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One `cordon` child process, restarted on demand (and, like systemd's Restart=always, when it dies on its own). */
export class Service {
  child: ChildProcess | null = null;
  log = '';
  /** Exits we did not cause (a service that gave up, e.g. with the broker gone): counted, then restarted. */
  crashes = 0;
  kills = 0;
  /** Every run's log, for a failure message. */
  history = '';
  private stopping = false;
  private killing = false;

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  start(): void {
    this.history += this.log;
    this.stopping = false;
    this.killing = false;
    const child = spawn(process.execPath, [CLI, ...this.args], {
      env: { ...process.env, CORDON_LOG_LEVEL: 'warn', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.log = '';
    const keep = (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      if (this.stopping || this.killing) return;
      this.crashes++;
      this.log += `\n[${this.name} exited on its own: code ${code}, signal ${signal}; restarting]\n`;
      setTimeout(() => {
        if (!this.stopping && !this.child) this.start();
      }, 1000);
    });
  }

  /** kill -9: no drain, no last commit. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.killing = true;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
    this.kills++;
  }

  /** A graceful stop (SIGTERM: drain, commit). */
  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.child;
    if (!c) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(t);
  }
}

export interface LoadCounts {
  logs: number;
  sessions: number;
}

/**
 * The producer side of the load: appends numbered access-log lines to `logFile` (the agent
 * tails it) and publishes numbered sessions through `publish` (a pcap file per chunk; retried
 * until it succeeds, as an at-least-once producer does). `sent` counts what was handed over.
 */
export class Load {
  readonly sent: LoadCounts = { logs: 0, sessions: 0 };
  publishRetries = 0;
  private running = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    readonly logFile: string,
    private readonly publish: (pcap: string) => Promise<void>,
    private readonly opts = { linesPerTick: 4, sessionsPerTick: 3, tickMs: 250 },
  ) {
    writeFileSync(logFile, '');
  }

  start(): void {
    this.running = true;
    // two loops: the log lines keep their pace while a publish waits or is retried
    const lines = (async () => {
      while (this.running) {
        const batch: string[] = [];
        for (let i = 0; i < this.opts.linesPerTick; i++) {
          const n = ++this.sent.logs;
          batch.push(
            `198.19.${n >> 8}.${n & 255} - - [${accessTime(new Date())}] "GET /fault/${n}/../../../../srv/x HTTP/1.1" 404 153 "-" "fault-load"\n`,
          );
        }
        appendFileSync(this.logFile, batch.join(''));
        await sleep(this.opts.tickMs);
      }
    })();
    const sessions = (async () => {
      let chunk = 0;
      while (this.running) {
        const t0 = Date.now();
        const first = this.sent.sessions + 1;
        const pcap = join(this.dir, `chunk-${chunk++ % 4}.pcap`);
        writeFileSync(
          pcap,
          pcapFile(traversalFrames({ first, count: this.opts.sessionsPerTick, startUs: Date.now() * 1000 }), 1),
        );
        for (;;) {
          try {
            await this.publish(pcap);
            break;
          } catch {
            this.publishRetries++;
            await sleep(500);
          }
        }
        this.sent.sessions += this.opts.sessionsPerTick;
        await sleep(Math.max(0, this.opts.tickMs - (Date.now() - t0)));
      }
    })();
    this.done = Promise.all([lines, sessions]).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

function accessTime(d: Date): string {
  const m = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()]!;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${m}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** The queries an analyst would run, one row each: rows, distinct numbers, distinct ids. */
export const ACCOUNTING_SQL = {
  logAlerts: `SELECT count() AS rows, uniqExact(extract(evidence, '/fault/(\\\\d+)/')) AS numbers, uniqExact(alert_id) AS ids
    FROM alerts WHERE stage = 'loginspect' AND evidence LIKE '%fault-load%'`,
  dpiAlerts: `SELECT count() AS rows, uniqExact(extract(http_url, '^/f/(\\\\d+)/')) AS numbers, uniqExact(alert_id) AS ids
    FROM alerts WHERE stage = 'dpi' AND rule_id = 'sid:1900001'`,
  blocks: `SELECT count() AS rows, uniqExact(target) AS numbers, uniqExact(block_id) AS ids
    FROM blocks WHERE target LIKE '198.18.%'`,
  dlq: `SELECT count() AS rows, uniqExact(stage) AS numbers, uniqExact(error_code) AS ids FROM dlq`,
} as const;

export interface Figures {
  what: string;
  sent: number;
  stored: number;
  lost: number;
  doubled: number;
}

export type Row = { rows: number | string; numbers: number | string; ids: number | string };

/** sent vs what the query found: lost = numbers never stored, doubled = rows beyond one per number. */
export function figures(what: string, sent: number, r: Row): Figures {
  const rows = Number(r.rows);
  const numbers = Number(r.numbers);
  return { what, sent, stored: numbers, lost: sent - numbers, doubled: rows - numbers };
}
