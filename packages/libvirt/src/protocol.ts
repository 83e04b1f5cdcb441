/**
 * The sidecar's wire protocol, read as hostile input: lines are bounded, every line must be one
 * JSON object of a known type with bounded, typed fields (unknown fields are refused), and the
 * first line that breaks any of that ends the session (the connector kills and restarts the
 * sidecar). The Go side is packages/libvirt/sidecar/main.go.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;

const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a lower-case UUID');
const mac = z.string().regex(/^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/, 'a lower-case MAC');
const int32 = z.number().int().min(-2147483648).max(2147483647);
const ts = z.number().int().min(0).max(8.64e15);
/** libvirt domain names: anything but '/', at most what libvirt itself accepts on any driver. */
const domainName = z.string().min(1).max(1024);

const nic = z
  .object({
    mac,
    type: z.string().max(32),
    network: z.string().max(1024).optional(),
    ips: z.array(z.string().max(64)).max(64),
  })
  .strict();

export const domainSchema = z
  .object({
    uuid,
    name: domainName,
    id: int32,
    /** virDomainState: 0 nostate … 7 pmsuspended. */
    state: z.number().int().min(0).max(7),
    reason: int32,
    persistent: z.boolean(),
    osId: z.string().max(1024).optional(),
    nics: z.array(nic).max(256),
    snapshot: z.string().max(1024).optional(),
  })
  .strict();
export type SidecarDomain = z.infer<typeof domainSchema>;

const hostMsg = z
  .object({
    t: z.literal('host'),
    v: z.literal(PROTOCOL_VERSION),
    hostname: z.string().min(1).max(255),
    libvirtVersion: z.number().int().min(0),
  })
  .strict();
const syncMsg = z.object({ t: z.literal('sync'), ts, domains: z.array(domainSchema).max(100_000) }).strict();
const eventMsg = z
  .object({
    t: z.literal('event'),
    ts,
    uuid,
    name: domainName,
    /** virDomainEventType and its detail code. */
    event: z.number().int().min(0).max(64),
    detail: int32,
    /** The domain re-read after the event; null: it no longer exists; absent: the re-read failed. */
    dom: domainSchema.nullable().optional(),
    domError: z.string().max(4096).optional(),
  })
  .strict();
const disconnectedMsg = z.object({ t: z.literal('disconnected'), message: z.string().max(4096) }).strict();
const errorMsg = z.object({ t: z.literal('error'), code: z.string().max(64), message: z.string().max(4096) }).strict();
const parsedMsg = z.object({ t: z.literal('parsed'), dom: domainSchema }).strict();

export const messageSchema = z.discriminatedUnion('t', [
  hostMsg,
  syncMsg,
  eventMsg,
  disconnectedMsg,
  errorMsg,
  parsedMsg,
]);
export type SidecarMessage = z.infer<typeof messageSchema>;
export type SidecarEventMessage = z.infer<typeof eventMsg>;
export type SidecarSyncMessage = z.infer<typeof syncMsg>;

/** Why a line was refused; the connector wraps it into ERR_LIBVIRT_PROTOCOL. */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

/** One line → one validated message, or a ProtocolViolation that says what was wrong. */
export function parseMessage(line: string): SidecarMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ProtocolViolation(`line is not JSON: ${preview(line)}`);
  }
  const r = messageSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length ? issue.path.join('.') : 'message';
    throw new ProtocolViolation(`${where}: ${issue?.message ?? 'invalid'} in ${preview(line)}`);
  }
  return r.data;
}

/**
 * Splits a byte stream into lines without ever holding more than `maxLineBytes` of one line:
 * a longer line is a ProtocolViolation, not an out-of-memory.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private pending = 0;

  constructor(private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {}

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.pending + (end - start) > this.maxLineBytes) {
        throw new ProtocolViolation(`line longer than ${this.maxLineBytes} bytes`);
      }
      if (nl === -1) {
        if (end > start) {
          this.parts.push(chunk.subarray(start, end));
          this.pending += end - start;
        }
        return lines;
      }
      this.parts.push(chunk.subarray(start, end));
      const line = Buffer.concat(this.parts).toString('utf8');
      this.parts = [];
      this.pending = 0;
      if (line.length > 0) lines.push(line);
      start = nl + 1;
    }
  }

  /** Bytes of an unfinished last line (a sidecar that died mid-line). */
  get rest(): number {
    return this.pending;
  }
}

function preview(line: string): string {
  const s = line.length > 120 ? `${line.slice(0, 120)}…(${line.length} chars)` : line;
  return JSON.stringify(s);
}
