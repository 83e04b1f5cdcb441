import { isIP } from 'node:net';
import { normalizeAddress, stripV6Port } from './addr.js';
import { clfTimeAt, isoToMs, monthAt, monthIndex, parseCtime, yearlessToMs } from './decode-time.js';

/**
 * Decoders: one raw line → one LogEvent carrying the field names Sigma's linux and webserver
 * log sources use. A decoder never throws: a line no format recognises is a `text` event with
 * the whole line as its message, so keyword rules still see it.
 *
 * Kinds are bits so a rule's log source maps to "any of these kinds" with one AND.
 */
export const KIND = {
  /** Framed by a syslog header (RFC 3164/5424, ISO stamp, or journal's `host prog[pid]:`). */
  syslog: 1 << 0,
  /** Written by an authentication program (auth.log / secure content). */
  auth: 1 << 1,
  sshd: 1 << 2,
  sudo: 1 << 3,
  cron: 1 << 4,
  vsftpd: 1 << 5,
  clamav: 1 << 6,
  guacamole: 1 << 7,
  auditd: 1 << 8,
  /** Apache/nginx/haproxy access log line (category webserver). */
  webAccess: 1 << 9,
  apacheError: 1 << 10,
  nginxError: 1 << 11,
  /** Recognised by no decoder. */
  text: 1 << 12,
  /** A process start from an agent's process events (Sigma category process_creation), not a log line. */
  process: 1 << 13,
} as const;

export type KindName = keyof typeof KIND;

export function kindNames(kinds: number): KindName[] {
  return (Object.keys(KIND) as KindName[]).filter((k) => (kinds & KIND[k]) !== 0);
}

export interface LogEvent {
  /** The line as text (invalid UTF-8 replaced by U+FFFD). */
  raw: string;
  kinds: number;
  /** Log time in epoch ms; null when the line carries no stamp. */
  ts: number | null;
  host: string | null;
  /** Lower-cased program name (`sshd`, `sudo`, …) for syslog lines. */
  program: string | null;
  pid: string | null;
  /** The message after the header (the whole line for access logs and unknown text). */
  message: string;
  /** Sigma field name → value. */
  fields: Record<string, string>;
  /** The remote address the format itself names (client IP, rhost=, client:); null if none. */
  addr: string | null;
  /**
   * Where the fields that are verbatim slices of `raw` lie in it: `[start, end)` at
   * `2 * SPAN_SLOTS.get(name)`; start -1 when the line lacks the field, NOT_A_SLICE when this
   * line's value is not one. The literal scanner then finds their literals in its one pass over
   * `raw` instead of scanning each field again.
   */
  spans?: number[];
  /**
   * The decoder that understood the line's framing (`syslog`, `rfc5424`, `journal`, `access`,
   * `apache-error`, `nginx-error`, `haproxy`, `auditd`, `stamped-text`, `text`): what
   * `cordon logtest` counts in its coverage summary and shows with `--explain`.
   */
  decoder?: string;
  /** The whole line, when `raw` is the message a syslog header wrapped (web server lines through syslog). */
  line?: string;
}

export const NOT_A_SLICE = -2;

/** Slots of `LogEvent.spans`: an access line's fields that are slices of it. */
const SLOT = {
  keywords: 0,
  request: 1,
  method: 2,
  uri: 3,
  stem: 4,
  query: 5,
  version: 6,
  referer: 7,
  agent: 8,
  status: 9,
  bytes: 10,
  user: 11,
  cordonUri: 12,
} as const;
/**
 * A fresh `spans`, every slot absent (-1): two entries for each SLOT. An array literal, copied
 * from its boilerplate, where `new Array(26).fill(-1)` was a quarter of an access line's
 * decoding in a profile.
 */
function noSpans(): number[] {
  // prettier-ignore
  return [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1];
}
if (noSpans().length !== 2 * Object.keys(SLOT).length) throw new Error('noSpans() must hold two entries a SLOT');

/** Field name → its slot in `LogEvent.spans`. */
export const SPAN_SLOTS: ReadonlyMap<string, number> = new Map([
  ['keywords', SLOT.keywords],
  ['cs-request', SLOT.request],
  ['cs-method', SLOT.method],
  ['cs-uri', SLOT.uri],
  ['cs-uri-query', SLOT.uri],
  ['cs-uri-stem', SLOT.stem],
  ['cs-query', SLOT.query],
  ['cs-version', SLOT.version],
  ['cs-referer', SLOT.referer],
  ['cs-user-agent', SLOT.agent],
  ['sc-status', SLOT.status],
  ['sc-bytes', SLOT.bytes],
  ['cs-username', SLOT.user],
  // the URI lower-cased (when it holds no escape): to the case-folding scan, the URI's span
  ['cordon-uri', SLOT.cordonUri],
]);

export interface DecodeOptions {
  /** Reference time for year-less syslog stamps (ms). */
  refMs: number;
  /** A hint from the shipper (LogBatch.format or the file name): `auth` marks every line auth. */
  hint?: string | null;
}

const AUTH_PROGRAMS = new Set([
  'sshd',
  'sshd-session',
  'dropbear',
  'su',
  'sudo',
  'login',
  'passwd',
  'polkitd',
  'pkexec',
  'systemd-logind',
  'gdm-password',
  'unix_chkpwd',
  'chage',
  'useradd',
  'usermod',
  'userdel',
  'groupadd',
  'chpasswd',
  'vsftpd',
  'proftpd',
  'pure-ftpd',
  'dovecot',
  'saslauthd',
  'xinetd',
  'in.telnetd',
  'telnetd',
  'ftpd',
  'cyrus',
  'imapd',
  'pop3d',
  'ipop3d',
  'courierpop3login',
  'courier-imapd',
  'imapd-ssl',
  'pop3d-ssl',
  'cron',
  'crond',
  'sddm',
  'lightdm',
  'kdm',
  'xdm',
  'sshguard',
  'pam',
]);

const SYSLOG_HEAD =
  /^(?:<(\d{1,3})>)?(?:(1) )?(?:([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{1,2}):(\d\d):(\d\d)(?:\.\d+)?(?: (\d{4}))?|(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?) +/;
/** The time of the stamp `bsdStampEnd` read last. */
let bsdStampMs = 0;

/**
 * SYSLOG_HEAD's match on its commonest line, `Mmm dd hh:mm:ss  host …` (BSD, no priority, no
 * fraction, no year), without the regex and its sixteen groups: where the text after the
 * stamp's spaces starts, its time in `bsdStampMs`. -1 for any other line, which the regex
 * reads then (and may refuse).
 */
function bsdStampEnd(raw: string, refMs: number): number {
  if (!isUpper(raw.charCodeAt(0)) || !isLower(raw.charCodeAt(1)) || !isLower(raw.charCodeAt(2))) return -1;
  let i = 3;
  if (raw.charCodeAt(i) !== 0x20) return -1;
  i++;
  if (raw.charCodeAt(i) === 0x20) i++;
  const day = digits12(raw, i);
  if (day < 0) return -1;
  i += day >> 8;
  if (raw.charCodeAt(i++) !== 0x20) return -1;
  const hour = digits12(raw, i);
  if (hour < 0) return -1;
  i += hour >> 8;
  if (
    raw.charCodeAt(i) !== 0x3a ||
    !isDigit(raw, i + 1) ||
    !isDigit(raw, i + 2) ||
    raw.charCodeAt(i + 3) !== 0x3a ||
    !isDigit(raw, i + 4) ||
    !isDigit(raw, i + 5)
  )
    return -1;
  const minute = (raw.charCodeAt(i + 1) - 0x30) * 10 + raw.charCodeAt(i + 2) - 0x30;
  const second = (raw.charCodeAt(i + 4) - 0x30) * 10 + raw.charCodeAt(i + 5) - 0x30;
  i += 6;
  // a fraction or a year after the time: the regex's
  if (raw.charCodeAt(i) !== 0x20) return -1;
  if (isDigit(raw, i + 1) && isDigit(raw, i + 2) && isDigit(raw, i + 3) && isDigit(raw, i + 4)) return -1;
  while (raw.charCodeAt(i) === 0x20) i++;
  const mon = monthAt(raw, 0);
  if (mon < 0) return -1;
  bsdStampMs = yearlessToMs(mon, day & 0xff, hour & 0xff, minute, second, refMs);
  return i;
}

/** One or two digits at `i`: their value, with how many in bits 8 and up; -1 for none. */
function digits12(s: string, i: number): number {
  if (!isDigit(s, i)) return -1;
  const a = s.charCodeAt(i) - 0x30;
  return isDigit(s, i + 1) ? (2 << 8) | (a * 10 + s.charCodeAt(i + 1) - 0x30) : (1 << 8) | a;
}

function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}

function isLower(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}

/** After the stamp: `host prog[pid]: msg`, `prog[pid]: msg`, `host prog: msg`, `[prog]: msg`. */
const SYSLOG_TAG = /^(?:([^\s[\]]+) )?(\[?[A-Za-z0-9_][\w\-./@]*(?:\([\w\-./]+\))?\]?)(?:\[(\d+)\])?:?(?: |$)/;
/** A header-less journal line must show its pid: `host prog[pid]: msg`. */
const JOURNAL_TAG = /^(?:([^\s[\]]+) )?([A-Za-z0-9_][\w\-./@]*)\[(\d+)\]:? /;
const SOLARIS_ID = /^\[ID \d+ [\w.]+\] /;
/** journald's audit lines: `audit[pid]: USER_LOGIN pid=… msg='…'`. */
const AUDIT_JOURNAL = /^[A-Z][A-Z_]+ (?:pid|msg)=/;
const KERNEL_PREFIX = /^kernel: ?\[ *\d+\.\d+\]:? /;
/** `[ctime] [module:level] …`; the stamp is absent when a forwarder (or a test) cut it off. */
const APACHE_ERROR =
  /^(?:\[((?:[A-Za-z]{3} ){1,2} ?\d{1,2} [\d:.]+ \d{4})\] )?\[([\w:]*(?:emerg|alert|crit|error|warn|notice|info|debug|trace\d))\] (.*)$/;
const NGINX_ERROR = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$/;

/** The last hint and what it said: the same hint comes with every line of a batch or file. */
let lastHint: string | null = null;
let lastHintAuth = false;

function isAuthHint(hint: string | null | undefined): boolean {
  if (!hint) return false;
  if (hint !== lastHint) {
    lastHint = hint;
    lastHintAuth = /auth|secure/i.test(hint);
  }
  return lastHintAuth;
}

/** A syslog header's first characters: `<pri>`, a month name, or an ISO date. */
const SYSLOG_START =
  /^(?:<\d{1,3}>|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)? )/;

/**
 * Whether SYSLOG_START can match, from the characters it needs first: `<`, a month's capital, or
 * an ISO date's `yyyy-` (most lines, an access line's address first, are settled without the regex).
 */
function mayStartSyslog(raw: string, ch: number): boolean {
  return ch === 0x3c || (ch >= 0x41 && ch <= 0x53) || (ch >= 0x30 && ch <= 0x39 && raw.charCodeAt(4) === 0x2d);
}

/**
 * `rows`/`base`: the line's row of a batch the native decoder read (`AccessBatch`), so an access
 * line's fields are not searched for again here; null: decoded here alone.
 */
export function decodeLine(raw: string, opts: DecodeOptions, rows: Int32Array | null = null, base = 0): LogEvent {
  const authHint = isAuthHint(opts.hint);
  const ch = raw.charCodeAt(0);
  // a syslog header first: a web server logging through syslog wraps its access line, whose
  // `[time]` would otherwise make the header's `11:07:10` look like the client's address
  if (mayStartSyslog(raw, ch) && SYSLOG_START.test(raw)) {
    const sys = decodeSyslog(raw, opts.refMs, authHint);
    if (sys) return sys;
  }
  // cheap dispatch on the first byte: '[' apache error, digit nginx error / access / ISO syslog
  if (ch === 0x5b /* [ */) {
    const ev = decodeApacheError(raw);
    if (ev) return ev;
  }
  // `yyyy/mm/dd`: an access line's address (a digit first too) is no nginx error
  if (ch >= 0x30 && ch <= 0x39 && raw.charCodeAt(4) === 0x2f) {
    const ev = decodeNginxError(raw);
    if (ev) return ev;
  }
  const kind = rows === null ? ROW_UNSURE : rows[base]!;
  const access =
    kind === ROW_ACCESS ? accessFromRow(raw, rows!, base) : kind === ROW_NOT_ACCESS ? null : decodeAccess(raw);
  if (access) return access;
  const sys = decodeSyslog(raw, opts.refMs, authHint);
  if (sys) return sys;
  if (raw.startsWith('type=')) return decodeAuditd(raw, null, null);
  const ev = textEvent(raw);
  if (authHint) ev.kinds |= KIND.auth;
  return ev;
}

function textEvent(raw: string): LogEvent {
  const ts = textTime(raw);
  return {
    raw,
    kinds: KIND.text,
    ts,
    host: null,
    program: null,
    pid: null,
    message: raw,
    fields: { keywords: raw, message: raw },
    addr: null,
    decoder: ts === null ? 'text' : 'stamped-text',
  };
}

/**
 * The stamp of a line no decoder framed, in the forms daemons write to their own files:
 * ISO (`2024-03-10 12:00:00,123`, `2024-03-10T12:00:00.5Z`; MySQL, PostgreSQL, exim,
 * fail2ban, Tomcat, caddy), `2024/03/10 12:00:00` (nginx, 3proxy, lighttpd), `[10/Mar/2024:…]`,
 * ctime (`Sun Mar 10 12:00:00 2024`: OpenVPN, Apache), `10-Mar-2024 12:00:00.123` (BIND, Tomcat),
 * `240310 12:00:00` (MySQL 5.x), and epoch seconds (squid, auditd). Only at the line's start
 * (after an optional `[`), so a date inside a message is never taken for the line's time.
 */
const TEXT_ISO = /^\[?(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d):(\d\d):(\d\d)([.,]\d+)?\s?(Z|[+-]\d\d:?\d\d|UTC)?/;
const TEXT_DMY = /^\[?(\d\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d)(?:\.\d+)?/;
const TEXT_MYSQL = /^(\d\d)(\d\d)(\d\d) +(\d{1,2}):(\d\d):(\d\d) /;
const TEXT_EPOCH = /^\[?(1\d{9})(?:\.(\d{1,6}))?\b/;

export function textTime(raw: string): number | null {
  const c = raw.charCodeAt(raw.charCodeAt(0) === 0x5b ? 1 : 0);
  if (c < 0x30 || c > 0x39) {
    if (raw.charCodeAt(0) === 0x5b) {
      const rb = raw.indexOf(']');
      if (rb > 0) return parseCtime(raw.slice(1, rb)) ?? clfTimeAt(raw, 1, rb);
    }
    return parseCtime(raw);
  }
  let m = TEXT_ISO.exec(raw);
  if (m) return isoToMs(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!, m[7]?.replace(',', '.'), m[8] === 'UTC' ? 'Z' : m[8]);
  m = TEXT_DMY.exec(raw);
  if (m) {
    const mon = monthIndex(m[2]!);
    return mon < 0 ? null : Date.UTC(Number(m[3]), mon, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = TEXT_MYSQL.exec(raw);
  if (m) return Date.UTC(2000 + Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = TEXT_EPOCH.exec(raw);
  if (m) return Number(m[1]) * 1000 + (m[2] ? Math.floor(Number(`0.${m[2]}`) * 1000) : 0);
  return null;
}

// ---------------------------------------------------------------- syslog

function decodeSyslog(raw: string, refMs: number, authHint: boolean): LogEvent | null {
  let rest: string;
  let ts: number | null = null;
  const at = bsdStampEnd(raw, refMs);
  const m = at > 0 ? null : SYSLOG_HEAD.exec(raw);
  if (at > 0) {
    rest = raw.slice(at);
    ts = bsdStampMs;
  } else if (m) {
    rest = raw.slice(m[0].length);
    if (m[3]) {
      const mon = monthIndex(m[3]);
      if (mon < 0) return null;
      ts = m[8]
        ? Date.UTC(Number(m[8]), mon, Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7]))
        : yearlessToMs(mon, Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7]), refMs);
    } else {
      ts = isoToMs(m[9]!, m[10]!, m[11]!, m[12]!, m[13]!, m[14]!, m[15], m[16]);
    }
    if (m[2] === '1') return decode5424(raw, rest, ts, authHint);
  } else {
    const j = JOURNAL_TAG.exec(raw);
    if (!j) return null;
    return named(
      syslogEvent(raw, null, j[1] ?? null, j[2]!, j[3] ?? null, raw.slice(j[0].length), authHint),
      'journal',
    );
  }
  const t = SYSLOG_TAG.exec(rest);
  if (!t) return named(syslogEvent(raw, ts, null, null, null, rest, authHint), 'syslog');
  return named(syslogEvent(raw, ts, t[1] ?? null, t[2]!, t[3] ?? null, rest.slice(t[0].length), authHint), 'syslog');
}

/** Sets the decoder's name unless an inner decoder (access, auditd, haproxy) already did. */
function named(ev: LogEvent, decoder: string): LogEvent {
  ev.decoder ??= decoder;
  return ev;
}

/** RFC 5424: `<pri>1 TS HOST APP PROCID MSGID [SD…]|- MSG`. */
function decode5424(raw: string, rest: string, ts: number | null, authHint: boolean): LogEvent {
  const parts: string[] = [];
  let i = 0;
  for (let k = 0; k < 4; k++) {
    const sp = rest.indexOf(' ', i);
    if (sp < 0) {
      parts.push(rest.slice(i));
      i = rest.length;
      break;
    }
    parts.push(rest.slice(i, sp));
    i = sp + 1;
  }
  // structured data: '-' or one or more [id k="v" …] elements (values may hold escaped ']')
  if (rest[i] === '-') i += 2;
  else {
    while (rest[i] === '[') {
      let j = i + 1;
      let inQuote = false;
      while (j < rest.length && (inQuote || rest[j] !== ']')) {
        if (rest[j] === '\\') j++;
        else if (rest[j] === '"') inQuote = !inQuote;
        j++;
      }
      i = j + 1;
    }
    if (rest[i] === ' ') i++;
  }
  let msg = rest.slice(Math.min(i, rest.length));
  if (msg.charCodeAt(0) === 0xfeff) msg = msg.slice(1);
  const nil = (s: string | undefined): string | null => (s === undefined || s === '-' ? null : s);
  return named(syslogEvent(raw, ts, nil(parts[0]), nil(parts[1]), nil(parts[2]), msg, authHint), 'rfc5424');
}

function syslogEvent(
  raw: string,
  ts: number | null,
  host: string | null,
  tag: string | null,
  pid: string | null,
  message: string,
  authHint: boolean,
): LogEvent {
  let program: string | null = null;
  let module: string | null = null;
  if (tag) {
    program = (tag.startsWith('[') && tag.endsWith(']') ? tag.slice(1, -1) : tag).toLowerCase();
    // `postfix/smtpd`, `dovecot/imap-login`: the family decides the kind, the full name stays;
    // `sshd(pam_unix)` (older PAM) is sshd's PAM module speaking
    const paren = program.indexOf('(');
    if (paren > 0 && program.endsWith(')')) {
      module = program.slice(paren + 1, -1);
      program = program.slice(0, paren);
    }
  }
  if (SOLARIS_ID.test(message)) message = message.slice(message.indexOf('] ') + 2);
  // the journal's kernel-time prefix some forwarders put before the message: `kernel:[  970.69]: `
  if (message.startsWith('kernel:')) {
    const k = KERNEL_PREFIX.exec(message);
    if (k) message = message.slice(k[0].length);
  }
  const fields: Record<string, string> = { keywords: raw, message, Message: message };
  if (host) fields['host'] = fields['Hostname'] = host;
  if (program) fields['program'] = fields['ProcessName'] = fields['Program'] = fields['Image'] = program;
  if (pid) fields['pid'] = fields['ProcessId'] = pid;
  if (module) fields['pam_module'] = module;
  let kinds: number = KIND.syslog;
  let addr: string | null = null;
  const family = program ? familyOf(program) : '';
  if (authHint || AUTH_PROGRAMS.has(family) || message.startsWith('pam_') || module !== null) kinds |= KIND.auth;
  switch (family) {
    case 'sshd':
    case 'sshd-session':
      kinds |= KIND.sshd;
      break;
    case 'sudo':
      kinds |= KIND.sudo;
      sudoFields(message, fields);
      break;
    case 'cron':
    case 'crond':
    case 'anacron':
      kinds |= KIND.cron;
      break;
    case 'vsftpd':
      kinds |= KIND.vsftpd;
      break;
    case 'clamd':
    case 'freshclam':
    case 'clamscan':
    case 'clamav':
    case 'clamav-milter':
      kinds |= KIND.clamav;
      break;
    case 'guacd':
    case 'guacamole':
      kinds |= KIND.guacamole;
      break;
    case 'haproxy':
      return haproxyEvent(raw, ts, host, program, pid, message, fields, kinds);
    case 'nginx':
    case 'apache':
    case 'apache2':
    case 'httpd': {
      // web servers logging through syslog: the message is an error or access line
      const inner = decodeNginxError(message) ?? decodeApacheError(message) ?? decodeAccess(message);
      if (inner) {
        inner.kinds |= KIND.syslog;
        inner.ts ??= ts;
        inner.host = host;
        inner.pid = pid;
        inner.decoder = `syslog+${inner.decoder ?? 'access'}`;
        inner.line = raw;
        return inner;
      }
      break;
    }
    default: {
      // any program (a custom tag such as `nginx_access`, `web01`) may carry an access line
      if (message.indexOf('] "') > 0) {
        const inner = decodeAccess(message);
        if (inner) {
          inner.kinds |= KIND.syslog;
          inner.ts ??= ts;
          inner.host = host;
          inner.program = program;
          inner.pid = pid;
          inner.decoder = 'syslog+access';
          inner.line = raw;
          return inner;
        }
      }
      break;
    }
  }
  const journalAudit = program === 'audit' && AUDIT_JOURNAL.test(message);
  if (
    journalAudit ||
    message.startsWith('type=') ||
    message.startsWith('audit: type=') ||
    message.startsWith('audit(')
  ) {
    const a = decodeAuditd(
      raw,
      ts,
      journalAudit ? `type=${message}` : message.startsWith('audit: ') ? message.slice(7) : message,
    );
    a.host = host;
    if (host) a.fields['host'] = host;
    a.program = program;
    a.pid = pid;
    return a;
  }
  // only at the start: a `pam_…(…): …; ruser= rhost=` further on is text a client chose (a user name)
  if (message.startsWith('pam_')) addr = pamFields(message, fields);
  // older PAM (`sshd(pam_unix)[pid]: authentication failure; …`) and callers that log PAM's record without the module
  else if (message.startsWith('authentication failure; ')) addr = pamRemote(message.slice(24), fields);
  // netfilter's LOG target (iptables, nftables, ufw, firewalld): `… IN=eth0 OUT= … SRC=a DST=b … PROTO=TCP SPT=1 DPT=2 …`
  else if (family === 'kernel' && message.indexOf(' SRC=') > 0 && message.indexOf(' PROTO=') > 0)
    addr = netfilterFields(message, fields);
  return { raw, kinds, ts, host, program, pid, message, fields, addr };
}

/** `postfix/smtpd` → `postfix`; `sshd-session` stays itself (it is its own program). */
function familyOf(program: string): string {
  const slash = program.indexOf('/');
  if (slash > 0) return program.slice(0, slash);
  if (program.startsWith('clamav')) return 'clamav';
  if (program.startsWith('guacamole')) return 'guacamole';
  return program;
}

/** sudo: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls`. */
function sudoFields(message: string, fields: Record<string, string>): void {
  const colon = message.indexOf(' : ');
  if (colon > 0) fields['SUDO_USER'] = message.slice(0, colon).trim();
  for (const part of message.slice(colon + 3).split(' ; ')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
}

/**
 * `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root`
 * → pam_message, pam_user, pam_rhost, pam_ruser, pam_service (the names Sigma's auth rules use).
 */
function pamFields(message: string, fields: Record<string, string>): string | null {
  const close = message.indexOf('): ');
  if (close < 0) return null;
  const open = message.indexOf('(');
  if (open > 0 && open < close) {
    fields['pam_module'] = message.slice(0, open);
    const svc = message.slice(open + 1, close);
    const c = svc.indexOf(':');
    fields['pam_service'] = c > 0 ? svc.slice(0, c) : svc;
  }
  const body = message.slice(close + 3);
  const semi = body.indexOf(';');
  fields['pam_message'] = (semi >= 0 ? body.slice(0, semi) : body).trim();
  return semi >= 0 ? pamRemote(body.slice(semi + 1), fields) : null;
}

/**
 * The ` logname= uid= euid= tty= ruser=R rhost=A  user=U` fields of a PAM record; the remote
 * address (rhost). R and U are names a client chose and may hold anything, ` rhost=…` and
 * `  user=…` included, so the record is not split at spaces: the fields before `ruser=` are
 * the caller's, and the rest is read as `R rhost=A<spaces>user=U` (or `R rhost=A` when the user
 * is empty) with A one token. A spaceless A makes that split unique for a given R, and callers
 * set R empty (sshd, login) or to the user name (dovecot, vsftpd): when names holding
 * `  user=` make several splits possible, the one that fits such a caller is the record, and a
 * record that two of them fit names no address.
 */
function pamRemote(tail: string, fields: Record<string, string>): string | null {
  const ruserAt = tail.indexOf(' ruser=');
  const head = ruserAt < 0 ? tail : tail.slice(0, ruserAt);
  for (const tok of head.split(' ')) {
    const eq = tok.indexOf('=');
    if (eq > 0 && tok.slice(0, eq) !== 'rhost' && tok.slice(0, eq) !== 'user')
      fields[`pam_${tok.slice(0, eq)}`] = tok.slice(eq + 1);
  }
  const rest = ruserAt < 0 ? null : tail.slice(ruserAt + 7);
  const split = rest === null ? null : pamSplit(rest);
  if (!split) return null;
  fields['pam_ruser'] = split.ruser;
  fields['pam_rhost'] = split.rhost;
  if (split.user !== null) fields['pam_user'] = split.user;
  return split.rhost ? normalizeAddress(split.rhost) : null;
}

interface PamSplit {
  ruser: string;
  rhost: string;
  user: string | null;
}

/** `R rhost=A<spaces>user=U` or `R rhost=A`: the one reading of `rest` (see pamRemote); null when there is none or more than one. */
function pamSplit(rest: string): PamSplit | null {
  const withUser: PamSplit[] = [];
  let withoutUser: PamSplit | null = null;
  for (let at = rest.indexOf(' rhost='); at >= 0; at = rest.indexOf(' rhost=', at + 1)) {
    const a = at + 7;
    let end = rest.indexOf(' ', a);
    if (end < 0) end = rest.length;
    let u = end;
    while (rest.charCodeAt(u) === 0x20) u++;
    const read = { ruser: rest.slice(0, at), rhost: rest.slice(a, end) };
    if (u === rest.length) withoutUser = { ...read, user: null };
    else if (u > end && rest.startsWith('user=', u)) withUser.push({ ...read, user: rest.slice(u + 5).trimEnd() });
  }
  // pam_unix leaves out `user=` only when there is no user name, and then a caller has no name for ruser either
  if (withUser.length <= 1) return withUser[0] ?? withoutUser;
  const usual = withUser.filter(conventional);
  return usual.length === 1 ? usual[0]! : null;
}

/** A PAM caller's usual ruser: none, or the user name. */
function conventional(s: PamSplit): boolean {
  return s.ruser === '' || s.ruser === s.user;
}

/** The KEY=VALUE fields of a netfilter log line; the source address. */
function netfilterFields(message: string, fields: Record<string, string>): string | null {
  for (const tok of message.split(' ')) {
    const eq = tok.indexOf('=');
    if (eq > 0 && /^[A-Z]+$/.test(tok.slice(0, eq))) fields[tok.slice(0, eq)] = tok.slice(eq + 1);
  }
  return fields['SRC'] ? normalizeAddress(fields['SRC']) : null;
}

/** haproxy HTTP log: `client:port [accept] frontend backend/server timers status bytes … "METHOD URI VER"`. */
function haproxyEvent(
  raw: string,
  ts: number | null,
  host: string | null,
  program: string | null,
  pid: string | null,
  message: string,
  fields: Record<string, string>,
  kinds: number,
): LogEvent {
  const m = /^(\S+):(\d+) \[([^\]]+)\] (\S+) (\S+) (\S+) (-?\d+) (\d+|-) .*?"([^"]*)"?\s*$/.exec(message);
  if (!m) return { raw, kinds, ts, host, program, pid, message, fields, addr: null, decoder: 'haproxy' };
  const addr = normalizeAddress(m[1]!);
  fields['c-ip'] = fields['clientip'] = addr;
  fields['sc-status'] = m[7]!;
  fields['sc-bytes'] = m[8]!;
  requestFields(m[9]!, fields);
  return { raw, kinds: kinds | KIND.webAccess, ts, host, program, pid, message, fields, addr, decoder: 'haproxy' };
}

// ---------------------------------------------------------------- auditd

const HEX = /^(?:[0-9A-F]{2})+$/;
const HEX_FIELDS = new Set([
  'proctitle',
  'a0',
  'a1',
  'a2',
  'a3',
  'a4',
  'a5',
  'a6',
  'a7',
  'a8',
  'a9',
  'name',
  'cwd',
  'exe',
  'comm',
  'path',
  'data',
  'cmd',
]);

/** `type=SYSCALL msg=audit(1610000000.123:42): arch=c000003e syscall=59 … comm="bash" exe="/usr/bin/bash"`. */
function decodeAuditd(raw: string, ts: number | null, body: string | null): LogEvent {
  const text = body ?? raw;
  const fields: Record<string, string> = { keywords: raw };
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && text.charCodeAt(i) === 0x20) i++;
    const eq = text.indexOf('=', i);
    if (eq < 0) break;
    const sp = text.indexOf(' ', i);
    if (sp >= 0 && sp < eq) {
      i = sp + 1; // a token without '='
      continue;
    }
    const key = text.slice(i, eq);
    let val: string;
    if (text[eq + 1] === '"') {
      const close = text.indexOf('"', eq + 2);
      val = text.slice(eq + 2, close < 0 ? n : close);
      i = close < 0 ? n : close + 1;
    } else if (text[eq + 1] === "'" && key === 'msg') {
      // user-space records nest their fields in msg='op=… acct="…" addr=… res=…': read them as
      // the record's own (untrusted values inside are quoted or hex-encoded by auditd)
      fields['msg'] = text.slice(eq + 2, text.lastIndexOf("'") > eq + 1 ? text.lastIndexOf("'") : n);
      i = eq + 2;
      continue;
    } else if (text[eq + 1] === "'") {
      const close = text.indexOf("'", eq + 2);
      val = text.slice(eq + 2, close < 0 ? n : close);
      i = close < 0 ? n : close + 1;
    } else {
      const end = text.indexOf(' ', eq + 1);
      val = text.slice(eq + 1, end < 0 ? n : end);
      i = end < 0 ? n : end + 1;
      if (val.endsWith("'")) val = val.slice(0, -1); // the last field of a nested msg='…'
      // auditd hex-encodes untrusted strings (spaces, quotes, NULs) and leaves them unquoted
      if (HEX_FIELDS.has(key) && val.length >= 2 && HEX.test(val))
        val = Buffer.from(val, 'hex').toString('utf8').replace(/\0/g, ' ').trimEnd();
    }
    if (key === 'msg' && val.startsWith('audit(')) {
      const m = /^audit\((\d+)(?:\.(\d+))?:(\d+)\):?/.exec(val);
      if (m) {
        ts ??= Number(m[1]) * 1000 + (m[2] ? Number(m[2].slice(0, 3).padEnd(3, '0')) : 0);
        fields['serial'] = m[3]!;
      }
      continue;
    }
    if (key === 'type' && key in fields) continue;
    fields[key] = val;
  }
  if (fields['syscall'] !== undefined) fields['SYSCALL'] = fields['syscall'];
  const addr = fields['addr'] && fields['addr'] !== '?' ? normalizeAddress(fields['addr']) : null;
  return {
    raw,
    kinds: KIND.auditd,
    ts,
    host: null,
    program: 'auditd',
    pid: fields['pid'] ?? null,
    message: text,
    fields,
    addr,
    decoder: 'auditd',
  };
}

// ---------------------------------------------------------------- web

/** Request line `GET /a/b?c=d HTTP/1.1` → cs-method, cs-uri-stem, cs-uri-query, cs-uri, cs-version. */
function requestFields(req: string, fields: Record<string, string>): void {
  fields['cs-request'] = req;
  const sp = req.indexOf(' ');
  if (sp < 0) {
    fields['cs-method'] = req;
    return;
  }
  fields['cs-method'] = req.slice(0, sp);
  let uri = req.slice(sp + 1);
  const v = uri.lastIndexOf(' HTTP/');
  if (v >= 0) {
    fields['cs-version'] = uri.slice(v + 1);
    uri = uri.slice(0, v);
  }
  fields['cs-uri'] = uri;
  const q = uri.indexOf('?');
  fields['cs-uri-stem'] = q < 0 ? uri : uri.slice(0, q);
  fields['cs-uri-query'] = uri;
  if (q >= 0) fields['cs-query'] = uri.slice(q + 1);
  fields['cordon-uri'] = cordonUri(uri);
}

/**
 * SigmaHQ's webserver rules put path fragments (`/cgi-bin/…`, `../`) in cs-uri-query: they are
 * written against backends that map it to the whole request target, so it carries the target.
 * Attacks hide in encodings (%2e%2e%2f, %252e, +, %u002e): Cordon's own web rules read the
 * target as `cordon-uri`, decoded twice and lower-cased; Sigma rules keep the raw fields as
 * SigmaHQ expects.
 */
function cordonUri(uri: string): string {
  return lowerCase(uri.indexOf('%') >= 0 || uri.indexOf('+') >= 0 ? percentDecode(percentDecode(uri)) : uri);
}

/** A character toLowerCase may change: ASCII upper case, and anything above ASCII but U+FFFD. */
const CASED = /[^\0-@[-\x7f\ufffd]/;

/**
 * `s.toLowerCase()`. Undecodable bytes (U+FFFD each: overflow payloads, binary junk) make a
 * string two-byte, which toLowerCase maps character by character; such a string holding
 * nothing else but lower-case ASCII is its own lower case.
 */
export function lowerCase(s: string): string {
  return s.indexOf('\ufffd') >= 0 && !CASED.test(s) ? s : s.toLowerCase();
}

/** Lenient percent-decoding: bad escapes stay as they are, %uXXXX (IIS) is understood, bytes map to Latin-1. */
export function percentDecode(s: string): string {
  let next = nextEscape(s, 0);
  if (next < 0) return s;
  let out = '';
  let from = 0; // the text before `next` not yet copied to out
  while (next >= 0) {
    let i = next;
    if (s.charCodeAt(i) === 0x2b) {
      out += `${s.slice(from, i)} `;
      from = i + 1;
    } else {
      const h = (hex(s.charCodeAt(i + 1)) << 4) | hex(s.charCodeAt(i + 2));
      if (h >= 0) {
        out += s.slice(from, i) + String.fromCharCode(h);
        i += 2;
        from = i + 1;
      } else if ((s.charCodeAt(i + 1) | 0x20) === 0x75) {
        const u =
          (hex(s.charCodeAt(i + 2)) << 12) |
          (hex(s.charCodeAt(i + 3)) << 8) |
          (hex(s.charCodeAt(i + 4)) << 4) |
          hex(s.charCodeAt(i + 5));
        if (u >= 0) {
          out += s.slice(from, i) + String.fromCharCode(u);
          i += 5;
          from = i + 1;
        }
      }
    }
    next = nextEscape(s, i + 1);
  }
  return out + s.slice(from);
}

/** The next `%` or `+` at or after `i`; -1 when none. */
function nextEscape(s: string, i: number): number {
  const pct = s.indexOf('%', i);
  const plus = s.indexOf('+', i);
  return pct < 0 ? plus : plus < 0 || pct < plus ? pct : plus;
}

/** A hex digit's value; -1 for anything else (NaN past the end too): any OR of shifted digits with it stays negative. */
function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1;
}

function looksLikeIp(s: string, from: number, to: number): boolean {
  // cheap shape check before the real one: digits/hex, dots or colons
  let colons = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) dots++;
    else if (c === 0x3a) colons++;
    else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46))) return false;
  }
  return (dots === 3 || colons >= 2) && isIP(s.slice(from, to)) !== 0;
}

/**
 * The closing quote of a `"…"` field, from the opening quote; backslash escapes (nginx `\x03`,
 * `\"`) are kept verbatim. Found with indexOf, which beats a loop over the characters.
 */
function quoted(line: string, open: number): number {
  let quote = line.indexOf('"', open + 1);
  let slash = line.indexOf('\\', open + 1);
  for (;;) {
    if (quote < 0 || slash < 0 || slash > quote) return quote;
    // the backslash escapes the character after it (perhaps this quote)
    const next = slash + 2;
    if (quote < next) quote = line.indexOf('"', next);
    slash = line.indexOf('\\', next);
  }
}

/**
 * An access line's fields, cut from the line when first read: a line meets rules that read two
 * or three of its seventeen fields, so decoding finds only where they lie (`spans`, shared with
 * the literal scanner) and the address. `cordon-uri`, the one derived field every line of
 * Cordon's web rules reads, is kept once computed.
 */
class AccessFields {
  readonly #line: string;
  readonly #spans: number[];
  readonly #addr: string;
  /** `cs-host`: the first token [0, hostEnd) when ≥ 0 (vhost logs), else the trimmed text [gapStart, gapEnd) after the stamp. */
  readonly #hostEnd: number;
  readonly #gapStart: number;
  readonly #gapEnd: number;
  #cordonUri: string | undefined | null = null;
  /** The fields many rules read, kept once cut (null: not read yet): sc-status is read 3.4 times a line. */
  #status: string | undefined | null = null;
  #request: string | undefined | null = null;
  #method: string | undefined | null = null;

  constructor(line: string, spans: number[], addr: string, hostEnd: number, gapStart: number, gapEnd: number) {
    this.#line = line;
    this.#spans = spans;
    this.#addr = addr;
    this.#hostEnd = hostEnd;
    this.#gapStart = gapStart;
    this.#gapEnd = gapEnd;
  }

  #slot(k: number): string | undefined {
    const s = this.#spans[2 * k]!;
    return s < 0 ? undefined : this.#line.slice(s, this.#spans[2 * k + 1]);
  }

  get keywords(): string {
    return this.#line;
  }
  get 'cs-request'(): string | undefined {
    if (this.#request === null) this.#request = this.#slot(SLOT.request);
    return this.#request;
  }
  get 'cs-method'(): string | undefined {
    if (this.#method === null) this.#method = this.#slot(SLOT.method);
    return this.#method;
  }
  get 'cs-uri'(): string | undefined {
    return this.#slot(SLOT.uri);
  }
  get 'cs-uri-query'(): string | undefined {
    return this.#slot(SLOT.uri);
  }
  get 'cs-uri-stem'(): string | undefined {
    return this.#slot(SLOT.stem);
  }
  get 'cs-query'(): string | undefined {
    return this.#slot(SLOT.query);
  }
  get 'cs-version'(): string | undefined {
    return this.#slot(SLOT.version);
  }
  get 'cs-referer'(): string | undefined {
    return this.#slot(SLOT.referer);
  }
  get 'cs-user-agent'(): string | undefined {
    return this.#slot(SLOT.agent);
  }
  get 'sc-status'(): string | undefined {
    if (this.#status === null) this.#status = this.#slot(SLOT.status);
    return this.#status;
  }
  get 'sc-bytes'(): string | undefined {
    return this.#slot(SLOT.bytes);
  }
  get 'cs-username'(): string | undefined {
    return this.#slot(SLOT.user);
  }
  get 'cs-host'(): string | undefined {
    if (this.#hostEnd >= 0) return this.#line.slice(0, this.#hostEnd);
    const gap = this.#line.slice(this.#gapStart, this.#gapEnd).trim();
    return gap === '' ? undefined : gap;
  }
  get 'c-ip'(): string {
    return this.#addr;
  }
  get clientip(): string {
    return this.#addr;
  }
  get 'cordon-uri'(): string | undefined {
    if (this.#cordonUri === null) {
      const uri = this.#slot(SLOT.uri);
      this.#cordonUri = uri === undefined ? undefined : cordonUri(uri);
    }
    return this.#cordonUri;
  }
}

/**
 * Common/combined log format and its variants (vhost first, `%v:%p`, extra fields after the
 * user agent): `[vhost] ip ident user [time] "request" status bytes ["referer" "agent"]`.
 */
export function decodeAccess(raw: string): LogEvent | null {
  const lb = raw.indexOf(' [');
  if (lb < 1 || lb > 300) return null;
  const c0 = raw.charCodeAt(lb + 2);
  if (c0 < 0x30 || c0 > 0x39) return null;
  const rb = raw.indexOf(']', lb);
  if (rb < 0) return null;
  const ts = clfTimeAt(raw, lb + 2, rb);
  if (ts === null) return null;
  const q = raw.indexOf('"', rb);
  if (q < 0) return null;
  const qe = quoted(raw, q);
  if (qe < 0) return null;
  // after the request: status bytes "referer" "agent" …
  let i = qe + 1;
  while (raw.charCodeAt(i) === 0x20) i++;
  const statusStart = i;
  while (i < raw.length && raw.charCodeAt(i) !== 0x20) i++;
  if (
    i - statusStart !== 3 ||
    !isDigit(raw, statusStart) ||
    !isDigit(raw, statusStart + 1) ||
    !isDigit(raw, statusStart + 2)
  )
    return null;
  const statusEnd = i;
  while (raw.charCodeAt(i) === 0x20) i++;
  const bytesStart = i;
  while (i < raw.length && raw.charCodeAt(i) !== 0x20) i++;
  const bytesEnd = i;
  const spans = noSpans();
  setSpan(spans, SLOT.keywords, 0, raw.length);
  setSpan(spans, SLOT.status, statusStart, statusEnd);
  setSpan(spans, SLOT.bytes, bytesStart, bytesEnd);
  requestSpans(raw, q + 1, qe, spans);
  while (raw.charCodeAt(i) === 0x20) i++;
  if (raw.charCodeAt(i) === 0x22) {
    const e = quoted(raw, i);
    if (e > 0) {
      setSpan(spans, SLOT.referer, i + 1, e);
      i = e + 1;
      while (raw.charCodeAt(i) === 0x20) i++;
      if (raw.charCodeAt(i) === 0x22) {
        const e2 = quoted(raw, i);
        if (e2 > 0) setSpan(spans, SLOT.agent, i + 1, e2);
      }
    }
  }
  // the head, `[vhost] ip ident user`, as tokens split at single spaces: the address is the
  // first token shaped like one, else the third from last; the user is the last
  let ipStart = -1;
  let ipEnd = -1;
  let count = 0;
  let firstEnd = -1;
  let back3 = 0; // starts and ends of the last three tokens, oldest first
  let back3End = 0;
  let back2 = 0;
  let back2End = 0;
  let back1 = 0;
  let back1End = 0;
  for (let s = 0; ;) {
    let e = raw.indexOf(' ', s);
    if (e < 0 || e > lb) e = lb;
    if (count === 0) firstEnd = e;
    count++;
    back3 = back2;
    back3End = back2End;
    back2 = back1;
    back2End = back1End;
    back1 = s;
    back1End = e;
    if (ipStart < 0 && looksLikeIp(raw, s, e)) {
      ipStart = s;
      ipEnd = e;
    }
    if (e === lb) break;
    s = e + 1;
  }
  if (ipStart < 0) {
    if (count >= 3) {
      ipStart = back3;
      ipEnd = back3End;
    } else {
      ipStart = 0;
      ipEnd = firstEnd;
    }
  }
  const ip = raw.slice(ipStart, ipEnd);
  if (back1End > back1 && !(back1End - back1 === 1 && raw.charCodeAt(back1) === 0x2d))
    setSpan(spans, SLOT.user, back1, back1End);
  const hostEnd = count >= 4 && raw.slice(0, firstEnd) !== ip ? firstEnd : -1;
  return accessEvent(raw, ts, spans, normalizeAddress(ip), hostEnd, rb + 1, q);
}

/** An access line's event: its fields cut from the line when read (`AccessFields`). */
function accessEvent(
  raw: string,
  ts: number,
  spans: number[],
  addr: string,
  hostEnd: number,
  gapStart: number,
  gapEnd: number,
): LogEvent {
  const fields = new AccessFields(raw, spans, addr, hostEnd, gapStart, gapEnd) as unknown as Record<string, string>;
  return {
    raw,
    kinds: KIND.webAccess,
    ts,
    host: null,
    program: null,
    pid: null,
    message: raw,
    fields,
    addr,
    spans,
    decoder: 'access',
  };
}

/** A row's kinds and entries (native/src/logline.rs): 1 access, 2 not access, 3 (or 0) decode here. */
const ROW_ACCESS = 1;
const ROW_NOT_ACCESS = 2;
const ROW_UNSURE = 3;
const ROW_TS_FROM = 27;
const ROW_TS_TO = 28;
const ROW_GAP_START = 29;
const ROW_GAP_END = 30;
const ROW_IP_START = 31;
const ROW_IP_END = 32;
const ROW_HOST_END = 33;
if (ROW_TS_FROM !== 1 + 2 * Object.keys(SLOT).length) throw new Error('a row holds two entries a SLOT after its kind');

/** `decodeAccess(raw)` from where the native decoder found its fields (`rows[base]` is ROW_ACCESS). */
function accessFromRow(raw: string, rows: Int32Array, b: number): LogEvent | null {
  const ts = clfTimeAt(raw, rows[b + ROW_TS_FROM]!, rows[b + ROW_TS_TO]!);
  if (ts === null) return decodeAccess(raw); // the native decoder settles only stamps that read
  // prettier-ignore
  const spans = [
    rows[b + 1]!, rows[b + 2]!, rows[b + 3]!, rows[b + 4]!, rows[b + 5]!, rows[b + 6]!, rows[b + 7]!,
    rows[b + 8]!, rows[b + 9]!, rows[b + 10]!, rows[b + 11]!, rows[b + 12]!, rows[b + 13]!,
    rows[b + 14]!, rows[b + 15]!, rows[b + 16]!, rows[b + 17]!, rows[b + 18]!, rows[b + 19]!,
    rows[b + 20]!, rows[b + 21]!, rows[b + 22]!, rows[b + 23]!, rows[b + 24]!, rows[b + 25]!,
    rows[b + 26]!,
  ];
  return accessEvent(
    raw,
    ts,
    spans,
    normalizeAddress(raw.slice(rows[b + ROW_IP_START]!, rows[b + ROW_IP_END]!)),
    rows[b + ROW_HOST_END]!,
    rows[b + ROW_GAP_START]!,
    rows[b + ROW_GAP_END]!,
  );
}

function isDigit(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0x30 && c <= 0x39;
}

/** Where the request line's parts lie (see requestFields, whose fields these spans mirror). */
function requestSpans(raw: string, start: number, end: number, spans: number[]): void {
  setSpan(spans, SLOT.request, start, end);
  const sp = raw.indexOf(' ', start);
  if (sp < 0 || sp >= end) {
    setSpan(spans, SLOT.method, start, end);
    return;
  }
  setSpan(spans, SLOT.method, start, sp);
  const uriStart = sp + 1;
  let uriEnd = end;
  const v = raw.lastIndexOf(' HTTP/', end - 6);
  if (v >= uriStart) {
    setSpan(spans, SLOT.version, v + 1, end);
    uriEnd = v;
  }
  setSpan(spans, SLOT.uri, uriStart, uriEnd);
  const qm = raw.indexOf('?', uriStart);
  if (qm >= 0 && qm < uriEnd) {
    setSpan(spans, SLOT.stem, uriStart, qm);
    setSpan(spans, SLOT.query, qm + 1, uriEnd);
  } else setSpan(spans, SLOT.stem, uriStart, uriEnd);
  if (hasEscape(raw, uriStart, uriEnd)) spans[2 * SLOT.cordonUri] = NOT_A_SLICE;
  else setSpan(spans, SLOT.cordonUri, uriStart, uriEnd);
}

function setSpan(spans: number[], slot: number, start: number, end: number): void {
  spans[2 * slot] = start;
  spans[2 * slot + 1] = end;
}

/** Does [from, to) of `s` hold a `%` or `+` (which percentDecode changes)? */
function hasEscape(s: string, from: number, to: number): boolean {
  const pct = s.indexOf('%', from);
  if (pct >= 0 && pct < to) return true;
  const plus = s.indexOf('+', from);
  return plus >= 0 && plus < to;
}

function decodeApacheError(raw: string): LogEvent | null {
  const m = APACHE_ERROR.exec(raw);
  if (!m) return null;
  const fields: Record<string, string> = { keywords: raw, level: m[2]! };
  let rest = m[3]!;
  let addr: string | null = null;
  const v24 = rest.startsWith('[pid ');
  // [pid …] [client a:port] [client a] — every bracket group before the message
  while (rest.startsWith('[')) {
    const close = rest.indexOf('] ');
    if (close < 0) break;
    const group = rest.slice(1, close);
    if (group.startsWith('client ') && addr === null) {
      const a = group.slice(7);
      addr = normalizeAddress(v24 ? stripV6Port(a) : a);
    } else if (group.startsWith('pid ')) fields['pid'] = group.slice(4);
    rest = rest.slice(close + 2);
  }
  if (addr) fields['c-ip'] = fields['clientip'] = addr;
  fields['message'] = rest;
  return {
    raw,
    kinds: KIND.apacheError,
    ts: m[1] ? parseCtime(m[1]) : null,
    host: null,
    program: 'apache',
    pid: fields['pid'] ?? null,
    message: rest,
    fields,
    addr,
    decoder: 'apache-error',
  };
}

/**
 * Where nginx's own `, client: A` lies in an error message; -1 when it is not there or not
 * alone. nginx appends the connection's context to the message: `, client: A, server: S` and
 * then `, request: "…"`, `, upstream: "…"`, `, host: "…"`, `, referrer: "…"` (stream and mail
 * add `, upstream: U`, `, login: "…"`, `, bytes from/to client:N/M`). The client chose text on
 * both sides of it: a path in the message (`open() "/…" failed`, which nginx writes decoded, so
 * it may hold `, client: V, server: S`), the request line, Host and Referer. Every `, client: `
 * is therefore tried, and the one is kept from which the rest of the line reads as that
 * context to its end, quoted values skipped whole (nginx escapes a quote in them); a forged one
 * in a path meets the path's closing quote and the real context after it, one inside a quoted
 * value meets that value's closing quote. When none or several read so, no address is named.
 */
function nginxClient(msg: string): number {
  let found = -1;
  for (let c = msg.indexOf(', client: '); c >= 0; c = msg.indexOf(', client: ', c + 10)) {
    if (!nginxContext(msg, c + 10)) continue;
    if (found >= 0) return -1;
    found = c;
  }
  return found;
}

/** A context key after the client: `server`, `request`, `bytes from/to client`, … (never `client` again). */
const NGINX_KEY = /^, ([a-z][a-z/ ]*):/;

/** Does `msg` from `at` (just after `, client: `) read as nginx's context to the end: an address, then `, key: value` pairs? */
function nginxContext(msg: string, at: number): boolean {
  let i = at;
  while (i < msg.length && msg.charCodeAt(i) !== 0x2c && msg.charCodeAt(i) !== 0x20 && msg.charCodeAt(i) !== 0x22) i++;
  if (!looksLikeIp(msg, at, i)) return false;
  while (i < msg.length) {
    const k = NGINX_KEY.exec(msg.slice(i, i + 40));
    if (!k || k[1] === 'client') return false;
    i += k[0].length;
    if (msg.charCodeAt(i) === 0x20) i++;
    if (msg.charCodeAt(i) === 0x22) {
      const e = quoted(msg, i);
      // a line nginx cut at its length limit ends inside the last value
      if (e < 0) return msg.indexOf('"', i + 1) < 0;
      i = e + 1;
    } else {
      while (i < msg.length && msg.charCodeAt(i) !== 0x2c && msg.charCodeAt(i) !== 0x22) i++;
      if (msg.charCodeAt(i) === 0x22) return false;
    }
  }
  return true;
}

function decodeNginxError(raw: string): LogEvent | null {
  const m = NGINX_ERROR.exec(raw);
  if (!m) return null;
  const msg = m[8]!;
  const fields: Record<string, string> = { keywords: raw, level: m[7]!, message: msg };
  let addr: string | null = null;
  const c = nginxClient(msg);
  if (c >= 0) {
    const end = msg.indexOf(',', c + 10);
    addr = normalizeAddress(msg.slice(c + 10, end < 0 ? msg.length : end));
    fields['c-ip'] = fields['clientip'] = addr;
  }
  const r = msg.indexOf(', request: "', c < 0 ? 0 : c);
  if (r >= 0) {
    const e = quoted(msg, r + 11);
    if (e > 0) requestFields(msg.slice(r + 12, e), fields);
  }
  const ts = isoToMs(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!, undefined, undefined);
  return {
    raw,
    kinds: KIND.nginxError,
    ts,
    host: null,
    program: 'nginx',
    pid: null,
    message: c >= 0 ? msg.slice(0, c) : msg,
    fields,
    addr,
    decoder: 'nginx-error',
  };
}
