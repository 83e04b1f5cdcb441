import { closeSync, existsSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Alert, AuditEvent, FileEvent, FlowRecord } from '@cordon/schemas';
import type { Invocation } from './args.js';
import { configFrom, contextFrom } from './cli-context.js';
import { runOp } from './remote.js';

/**
 * `cordon export`: alerts and flows as Suricata EVE JSON (an eve.json that Suricata tooling
 * ingests) or alerts, flows, file and audit events as OCSF JSON lines — to stdout or a file
 * with size-based rotation, from the topics (through the running instance when there is one).
 */

/** Lines to a file, rotated at `rotateBytes` (FILE → FILE.1 → … → FILE.<keep>, the oldest dropped). */
export class RotatingFile {
  private fd: number;
  private size: number;
  constructor(
    private readonly path: string,
    private readonly rotateBytes: number,
    private readonly keep = 5,
  ) {
    this.fd = openSync(path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }
  write(line: string): void {
    const buf = Buffer.from(`${line}\n`);
    if (this.rotateBytes > 0 && this.size > 0 && this.size + buf.length > this.rotateBytes) this.rotate();
    writeSync(this.fd, buf);
    this.size += buf.length;
  }
  private rotate(): void {
    closeSync(this.fd);
    for (let i = this.keep - 1; i >= 1; i--)
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = 0;
  }
  close(): void {
    closeSync(this.fd);
  }
}

const TOPICS_OF = {
  eve: ['cordon.alerts.v1', 'cordon.flows.v1'],
  ocsf: ['cordon.alerts.v1', 'cordon.flows.v1', 'cordon.fim.v1', 'cordon.audit.v1'],
} as const;

export async function exportCommand(inv: Invocation): Promise<number> {
  const notify = await import('@cordon/notify');
  const format = inv.str('format') as 'eve' | 'ocsf';
  const follow = inv.bool('follow');
  const only = inv.list('topic');
  const topics = TOPICS_OF[format].filter(
    (t) => only.length === 0 || only.some((o) => t === o || t === `cordon.${o}.v1`),
  );
  const output = inv.str('output');
  const file = output ? new RotatingFile(resolve(output), (inv.num('rotate-mb') ?? 0) * 1024 * 1024) : null;
  const write = file ? (l: string) => file.write(l) : (l: string) => void process.stdout.write(`${l}\n`);
  const convert: Record<string, (v: never) => Record<string, unknown>> =
    format === 'eve'
      ? {
          'cordon.alerts.v1': (v: Alert) => notify.alertToEve(v),
          'cordon.flows.v1': (v: FlowRecord) => notify.flowToEve(v),
        }
      : {
          'cordon.alerts.v1': (v: Alert) => notify.alertToOcsf(v),
          'cordon.flows.v1': (v: FlowRecord) => notify.flowToOcsf(v),
          'cordon.fim.v1': (v: FileEvent) => notify.fimToOcsf(v),
          'cordon.audit.v1': (v: AuditEvent) => notify.auditToOcsf(v),
        };
  const abort = new AbortController();
  const stop = () => abort.abort();
  if (follow) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  const since = inv.num('since');
  try {
    await runOp({
      config: configFrom(inv),
      ctx: contextFrom(inv),
      name: 'records-tail',
      input: { topics: [...topics], sinceMs: since ?? null, follow },
      waitMs: inv.num('wait')!,
      signal: abort.signal,
      onEvent: (ev) => {
        if (!('record' in ev)) return;
        write(JSON.stringify(convert[ev.record.topic]!(ev.record.value as never)));
      },
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    file?.close();
  }
  return 0;
}
