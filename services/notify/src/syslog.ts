import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { hostname as osHostname } from 'node:os';
import { readFileSync } from 'node:fs';
import type { Alert } from '@cordon/schemas';

/**
 * Alerts for syslog collectors: RFC 5424 messages whose MSG is CEF (ArcSight, most SIEMs) or
 * LEEF (QRadar), sent over UDP (RFC 5426), TCP or TLS (RFC 6587 octet counting, RFC 5425).
 */

export type SyslogFormat = 'cef' | 'leef';
export type SyslogTransport = 'udp' | 'tcp' | 'tls';

const FACILITIES = {
  kern: 0,
  user: 1,
  daemon: 3,
  auth: 4,
  syslog: 5,
  authpriv: 10,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
export type Facility = keyof typeof FACILITIES;
export const FACILITY_NAMES = Object.keys(FACILITIES) as Facility[];

/** Cordon severity 1 (highest) .. 4 → syslog severity (2 critical, 3 error, 4 warning, 5 notice). */
const syslogSeverity = (s: number) => Math.min(5, Math.max(2, s + 1));
/** → CEF 0..10 (10 most severe). */
const cefSeverity = (s: number) => [10, 10, 8, 5, 3][Math.min(4, Math.max(0, s))]!;
const VERSION = '0.1.0';

const cefHeader = (s: string) =>
  s
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ');
const cefValue = (s: string) =>
  s.replace(/\\/g, '\\\\').replace(/=/g, '\\=').replace(/\r?\n/g, '\\n').replace(/\r/g, '\\r');
/**
 * LEEF 2.0 with `^` as the attribute delimiter rather than tab: syslog relays escape control
 * characters (rsyslog writes a tab as #011 by default), a caret travels as it is. Values may
 * hold neither the delimiter nor line breaks.
 */
const LEEF_DELIMITER = '^';
const leefValue = (s: string) => s.replace(/[\^\t\r\n]+/g, ' ');

/** The fields both formats carry, as [CEF key, LEEF key, value]. */
function fields(a: Alert): Array<[string, string, string]> {
  const f: Array<[string, string, string | number | null | undefined]> = [
    ['rt', 'devTime', Math.floor(a.ts_us / 1000)],
    ['externalId', 'externalId', a.alert_id],
    ['src', 'src', a.src_ip],
    ['spt', 'srcPort', a.src_port],
    ['dst', 'dst', a.dst_ip],
    ['dpt', 'dstPort', a.dst_port],
    ['proto', 'proto', a.proto],
    ['act', 'action', a.action],
    ['cat', 'cat', a.category],
    ['dvchost', 'identHostName', a.vm],
    ['deviceProcessName', 'stage', a.stage],
    ['cs1Label', 'cs1Label', 'communityId'],
    ['cs1', 'communityId', a.community_id],
    ['cs2Label', 'cs2Label', 'mitreTechniques'],
    ['cs2', 'mitreTechniques', (a.mitre_technique_ids ?? []).join(',') || null],
    ['cs3Label', 'cs3Label', 'cves'],
    ['cs3', 'cves', (a.cves ?? []).join(',') || null],
    ['request', 'url', a.http_url],
    ['requestMethod', 'method', a.http_method],
    ['dhost', 'dstHostName', a.http_hostname ?? a.tls_sni ?? a.dns_rrname],
    ['msg', 'msg', a.signature],
  ];
  const out: Array<[string, string, string]> = [];
  for (const [c, l, v] of f) if (v !== null && v !== undefined && v !== '') out.push([c, l, String(v)]);
  // a label without its value says nothing
  return out.filter(([c], i, all) => !c.endsWith('Label') || all[i + 1]?.[0] === c.replace('Label', ''));
}

/** The alert as a CEF:0 line. */
export function toCef(a: Alert): string {
  const ext = fields(a)
    .map(([k, , v]) => `${k}=${cefValue(v)}`)
    .join(' ');
  return `CEF:0|Cordon|Cordon|${VERSION}|${cefHeader(a.rule_id)}|${cefHeader(a.signature)}|${cefSeverity(a.severity)}|${ext}`;
}

/** The alert as a LEEF:2.0 line (`^`-delimited attributes). */
export function toLeef(a: Alert): string {
  const attrs = [
    ['sev', String(cefSeverity(a.severity))] as [string, string],
    ...fields(a)
      .filter(([c]) => !c.endsWith('Label'))
      .map(([, l, v]) => [l, v] as [string, string]),
  ];
  return `LEEF:2.0|Cordon|Cordon|${VERSION}|${leefValue(a.rule_id).replace(/\|/g, '/')}|${LEEF_DELIMITER}|${attrs.map(([k, v]) => `${k}=${leefValue(v)}`).join(LEEF_DELIMITER)}`;
}

/** RFC 5424 header characters: PRINTUSASCII, at most `max`, `-` when empty. */
const token = (s: string, max: number) => s.replace(/[^\x21-\x7e]/g, '_').slice(0, max) || '-';

/** One RFC 5424 message: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`. */
export function rfc5424(
  a: Alert,
  format: SyslogFormat,
  opts: { facility?: Facility; hostname?: string; appName?: string } = {},
): string {
  const pri = FACILITIES[opts.facility ?? 'local0'] * 8 + syslogSeverity(a.severity);
  const ts = new Date(Math.floor(a.ts_us / 1000)).toISOString();
  const sd = `[cordon@32473 alert_id="${a.alert_id}" rule="${a.rule_id.replace(/["\\\]]/g, '\\$&')}"]`;
  const msg = format === 'cef' ? toCef(a) : toLeef(a);
  return `<${pri}>1 ${ts} ${token(opts.hostname ?? osHostname(), 255)} ${token(opts.appName ?? 'cordon', 48)} ${process.pid} ${token(format.toUpperCase(), 32)} ${sd} ${msg}`;
}

export interface SyslogTargetOptions {
  transport: SyslogTransport;
  host: string;
  port: number;
  /** TLS: a PEM file of the CA that signed the collector's certificate (else the system's). */
  caFile?: string;
  /** TLS: client certificate and key (PEM files), for collectors that authenticate senders. */
  certFile?: string;
  keyFile?: string;
  /** TLS: the name the certificate must carry (default: host). */
  servername?: string;
  timeoutMs?: number;
}

/**
 * One connection to a collector. `send` resolves once the message is written to the socket
 * (TCP/TLS) or handed to the kernel (UDP); a broken connection is reopened on the next send.
 */
export class SyslogSender {
  private udp: UdpSocket | null = null;
  private stream: Socket | null = null;
  private connecting: Promise<Socket> | null = null;

  constructor(private readonly opts: SyslogTargetOptions) {}

  async send(message: string): Promise<void> {
    const body = Buffer.from(message, 'utf8');
    if (this.opts.transport === 'udp') {
      this.udp ??= createSocket(this.opts.host.includes(':') ? 'udp6' : 'udp4');
      await new Promise<void>((res, rej) =>
        this.udp!.send(body, this.opts.port, this.opts.host, (err) => (err ? rej(err) : res())),
      );
      return;
    }
    const s = await this.connection();
    // RFC 6587 octet counting: "LEN SP MSG", so messages may hold line breaks
    const framed = Buffer.concat([Buffer.from(`${body.length} `), body]);
    await new Promise<void>((res, rej) => {
      s.write(framed, (err) => (err ? rej(err) : res()));
    }).catch((err: unknown) => {
      this.drop();
      throw err;
    });
  }

  private connection(): Promise<Socket> {
    if (this.stream && !this.stream.destroyed) return Promise.resolve(this.stream);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const o = this.opts;
      const s =
        o.transport === 'tls'
          ? tlsConnect({
              host: o.host,
              port: o.port,
              servername: o.servername ?? o.host,
              ...(o.caFile ? { ca: readFileSync(o.caFile) } : {}),
              ...(o.certFile ? { cert: readFileSync(o.certFile) } : {}),
              ...(o.keyFile ? { key: readFileSync(o.keyFile) } : {}),
            })
          : netConnect({ host: o.host, port: o.port });
      const timer = setTimeout(
        () => s.destroy(new Error(`no connection to ${o.host}:${o.port} within ${o.timeoutMs ?? 10_000} ms`)),
        o.timeoutMs ?? 10_000,
      );
      s.once(o.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.setKeepAlive(true);
        this.stream = s;
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      s.on('close', () => {
        if (this.stream === s) this.stream = null;
      });
      // a collector does not talk back; a read error shows as close
      s.on('data', () => undefined);
    }).finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private drop(): void {
    this.stream?.destroy();
    this.stream = null;
  }

  /** Wait until what was written is flushed, then close. */
  async close(): Promise<void> {
    this.udp?.close();
    this.udp = null;
    const s = this.stream;
    this.stream = null;
    if (s && !s.destroyed) await new Promise<void>((res) => s.end(() => res()));
  }
}
