/**
 * `cordon dpi` and `cordon rules check`: run the native engine over a capture, print one
 * EVE-style JSON line per alert; load rule files and report every rule that failed.
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { ERR_PCAP_BAD_BLOCK, ERR_PCAP_BAD_LENGTH, ERR_PCAP_TRUNCATED, readCapture } from '@cordon/pcap';
import { BatchBuilder, Engine, Rules, type EncryptionHandling, type RuleSource } from '@cordon/native';
import { ERR_DPI_RULES_READ, ERR_DPI_USAGE } from './errors.js';

/** Frames per native call: large enough to amortise the boundary, small enough for latency. */
const BATCH_FRAMES = 4096;
const BATCH_BYTES = 8 * 1024 * 1024;

async function readRules(files: string[]): Promise<RuleSource[]> {
  return Promise.all(
    files.map(async (f) => {
      try {
        return { name: f, text: await readFile(f, 'utf8') };
      } catch (err) {
        throw ERR_DPI_RULES_READ.withCause(err, f, (err as Error).message);
      }
    }),
  );
}

function parse<T extends Record<string, never>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw ERR_DPI_USAGE.withCause(err, (err as Error).message);
  }
}

export interface RunCaptureResult {
  alerts: number;
  packets: number;
  /** The capture ended in a damaged record: what the reader said (the frames before it were inspected). */
  damaged?: string;
}

/**
 * A damaged record ends the capture but not the inspection: as Suricata (libpcap) does, the
 * frames before it are inspected and the run succeeds, with a warning. Other read errors
 * (no such file, not a capture) still fail.
 */
function isDamagedRecord(err: unknown): err is Error {
  return ERR_PCAP_BAD_LENGTH.is(err) || ERR_PCAP_TRUNCATED.is(err) || ERR_PCAP_BAD_BLOCK.is(err);
}

/** Inspect one capture with a compiled rule set; `emit` receives each EVE line. */
export async function runCapture(
  rules: Rules,
  pcap: string,
  opts: { checksum: 'auto' | 'off'; encryptionHandling?: EncryptionHandling },
  emit: (line: string) => void,
): Promise<RunCaptureResult> {
  const engine = new Engine(rules, {
    checksum: opts.checksum,
    encryptionHandling: opts.encryptionHandling ?? 'default',
  });
  const batch = new BatchBuilder();
  let alerts = 0;
  const flush = () => {
    for (const l of engine.processBatch(batch.take())) {
      emit(l);
      alerts++;
    }
  };
  let damaged: string | undefined;
  try {
    for await (const f of readCapture(pcap)) {
      batch.add(f.frame, f.ts_us, f.linktype);
      if (batch.size >= BATCH_FRAMES || batch.byteLength >= BATCH_BYTES) flush();
    }
  } catch (err) {
    if (!isDamagedRecord(err)) throw err;
    damaged = err.message;
  }
  if (batch.size) flush();
  for (const l of engine.finish()) {
    emit(l);
    alerts++;
  }
  const res: RunCaptureResult = { alerts, packets: engine.stats().packets };
  if (damaged !== undefined) res.damaged = damaged;
  return res;
}

export interface DpiCommandOptions {
  /** Suricata rule files, at least one. */
  rules: string[];
  pcap: string;
  /** `off` is Suricata's `-k none`: checksums are not validated. */
  checksum: 'auto' | 'off';
  /** Suricata's TLS `encryption-handling` (default: content rules stop at encrypted data). */
  encryptionHandling?: EncryptionHandling;
  /** Print the alert and packet counts to stderr at the end. */
  stats: boolean;
}

/** `cordon dpi` (the CLI parses and validates its flags from its command table). */
export async function dpiCommand(opts: DpiCommandOptions): Promise<number> {
  const ruleFiles = opts.rules;
  if (!ruleFiles.length || !opts.pcap) throw ERR_DPI_USAGE('"cordon dpi" needs --rules FILE and --pcap FILE');
  const rules = Rules.compile(await readRules(ruleFiles));
  const rep = rules.report();
  for (const f of rep.failures)
    process.stderr.write(`cordon dpi: rule ${f.sid ?? '?'} (${f.file}:${f.line}) not loaded: ${f.reason}\n`);
  const lines: string[] = [];
  const res = await runCapture(
    rules,
    opts.pcap,
    { checksum: opts.checksum, encryptionHandling: opts.encryptionHandling ?? 'default' },
    (l) => {
      lines.push(l);
      if (lines.length >= 1024) process.stdout.write(lines.splice(0).join('\n') + '\n');
    },
  );
  if (lines.length) process.stdout.write(lines.join('\n') + '\n');
  if (res.damaged !== undefined)
    process.stderr.write(`cordon dpi: warning: ${res.damaged}; the ${res.packets} packets before it were inspected\n`);
  if (opts.stats) process.stderr.write(`cordon dpi: ${JSON.stringify(res)}\n`);
  return 0;
}

export async function rulesCheckCommand(
  argv: string[],
  write: (s: string) => void = (s) => void process.stdout.write(s),
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'check') throw ERR_DPI_USAGE('usage: cordon rules check FILE...');
  const { positionals } = parse(rest, {});
  if (!positionals.length) throw ERR_DPI_USAGE('"cordon rules check" needs at least one rule file');
  const rep = Rules.compile(await readRules(positionals)).report();
  const out: string[] = [];
  for (const f of rep.failures) out.push(`sid ${f.sid ?? '?'} ${f.file}:${f.line}: ${f.reason}`);
  // The same failures grouped by reason, most frequent first.
  const byReason = new Map<string, number>();
  for (const f of rep.failures) byReason.set(f.reason, (byReason.get(f.reason) ?? 0) + 1);
  for (const [reason, n] of [...byReason].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])))
    out.push(`${n} failed: ${reason}`);
  out.push(JSON.stringify({ rules: rep.rules, loaded: rep.loaded, failed: rep.failed }));
  write(out.join('\n') + '\n');
  return rep.failed > 0 ? 1 : 0;
}
