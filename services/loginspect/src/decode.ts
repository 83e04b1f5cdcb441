import { normalizeAddress, stripV6Port } from './addr.js';
import { isoToMs, monthIndex, parseClfTime, parseCtime, yearlessToMs } from './decode-time.js';

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
   * Where fields that are verbatim slices of `raw` start in it: the literal scanner then finds
   * their literals in its one pass over `raw` instead of scanning each field again.
   */
  at?: Record<string, number>;
}

export interface DecodeOptions {
  /** Reference time for year-less syslog stamps (ms). */
  refMs: number;
  /** A hint from the shipper (LogBatch.format or the file name): `auth` marks every line auth. */
  hint?: string | null;
}

const AUTH_PROGRAMS = new Set([
  'sshd', 'sshd-session', 'dropbear', 'su', 'sudo', 'login', 'passwd', 'polkitd', 'pkexec', 'systemd-logind', 'gdm-password',
  'unix_chkpwd', 'chage', 'useradd', 'usermod', 'userdel', 'groupadd', 'chpasswd', 'vsftpd', 'proftpd', 'pure-ftpd', 'dovecot',
  'saslauthd', 'xinetd', 'in.telnetd', 'telnetd', 'ftpd', 'cyrus', 'imapd', 'pop3d', 'ipop3d', 'courierpop3login', 'courier-imapd',
  'imapd-ssl', 'pop3d-ssl', 'cron', 'crond', 'sddm', 'lightdm', 'kdm', 'xdm', 'sshguard', 'pam',
]);

const SYSLOG_HEAD =
  /^(?:<(\d{1,3})>)?(?:(1) )?(?:([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{1,2}):(\d\d):(\d\d)(?:\.\d+)?(?: (\d{4}))?|(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?) +/;
/** After the stamp: `host prog[pid]: msg`, `prog[pid]: msg`, `host prog: msg`, `[prog]: msg`. */
const SYSLOG_TAG = /^(?:([^\s[\]]+) )?(\[?[A-Za-z0-9_][\w\-./@]*\]?)(?:\[(\d+)\])?:?(?: |$)/;
/** A header-less journal line must show its pid: `host prog[pid]: msg`. */
const JOURNAL_TAG = /^(?:([^\s[\]]+) )?([A-Za-z0-9_][\w\-./@]*)\[(\d+)\]:? /;
const SOLARIS_ID = /^\[ID \d+ [\w.]+\] /;
const APACHE_ERROR = /^\[((?:[A-Za-z]{3} ){1,2} ?\d{1,2} [\d:.]+ \d{4})\] \[([\w:]+)\] (.*)$/;
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

export function decodeLine(raw: string, opts: DecodeOptions): LogEvent {
  const authHint = isAuthHint(opts.hint);
  const ch = raw.charCodeAt(0);
  // cheap dispatch on the first byte: '[' apache error, digit nginx error / access / ISO syslog
  if (ch === 0x5b /* [ */) {
    const ev = decodeApacheError(raw);
    if (ev) return ev;
  }
  if (ch >= 0x30 && ch <= 0x39) {
    const ev = decodeNginxError(raw);
    if (ev) return ev;
  }
  const access = decodeAccess(raw);
  if (access) return access;
  const sys = decodeSyslog(raw, opts.refMs, authHint);
  if (sys) return sys;
  if (raw.startsWith('type=')) return decodeAuditd(raw, null, null);
  const ev = textEvent(raw);
  if (authHint) ev.kinds |= KIND.auth;
  return ev;
}

function textEvent(raw: string): LogEvent {
  return { raw, kinds: KIND.text, ts: null, host: null, program: null, pid: null, message: raw, fields: { keywords: raw, message: raw }, addr: null };
}

// ---------------------------------------------------------------- syslog

function decodeSyslog(raw: string, refMs: number, authHint: boolean): LogEvent | null {
  const m = SYSLOG_HEAD.exec(raw);
  let rest: string;
  let ts: number | null = null;
  if (m) {
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
    return syslogEvent(raw, null, j[1] ?? null, j[2]!, j[3] ?? null, raw.slice(j[0].length), authHint);
  }
  const t = SYSLOG_TAG.exec(rest);
  if (!t) return syslogEvent(raw, ts, null, null, null, rest, authHint);
  return syslogEvent(raw, ts, t[1] ?? null, t[2]!, t[3] ?? null, rest.slice(t[0].length), authHint);
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
  return syslogEvent(raw, ts, nil(parts[0]), nil(parts[1]), nil(parts[2]), msg, authHint);
}

function syslogEvent(raw: string, ts: number | null, host: string | null, tag: string | null, pid: string | null, message: string, authHint: boolean): LogEvent {
  let program: string | null = null;
  if (tag) {
    program = (tag.startsWith('[') && tag.endsWith(']') ? tag.slice(1, -1) : tag).toLowerCase();
    // `postfix/smtpd`, `dovecot/imap-login`: the family decides the kind, the full name stays
  }
  if (SOLARIS_ID.test(message)) message = message.slice(message.indexOf('] ') + 2);
  const fields: Record<string, string> = { keywords: raw, message, Message: message };
  if (host) fields['host'] = fields['Hostname'] = host;
  if (program) fields['program'] = fields['ProcessName'] = fields['Program'] = fields['Image'] = program;
  if (pid) fields['pid'] = fields['ProcessId'] = pid;
  let kinds: number = KIND.syslog;
  let addr: string | null = null;
  const family = program ? familyOf(program) : '';
  if (authHint || AUTH_PROGRAMS.has(family) || message.startsWith('pam_')) kinds |= KIND.auth;
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
        return inner;
      }
      break;
    }
    default:
      break;
  }
  if (message.startsWith('type=') || message.startsWith('audit: type=') || message.startsWith('audit(')) {
    const a = decodeAuditd(raw, ts, message.startsWith('audit: ') ? message.slice(7) : message);
    a.host = host;
    if (host) a.fields['host'] = host;
    a.program = program;
    a.pid = pid;
    return a;
  }
  const pamAt = message.indexOf('pam_');
  if (pamAt >= 0) addr = pamFields(message, pamAt, fields);
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
function pamFields(message: string, at: number, fields: Record<string, string>): string | null {
  const close = message.indexOf('): ', at);
  if (close < 0) return null;
  const open = message.indexOf('(', at);
  if (open > 0 && open < close) {
    fields['pam_module'] = message.slice(at, open);
    const svc = message.slice(open + 1, close);
    const c = svc.indexOf(':');
    fields['pam_service'] = c > 0 ? svc.slice(0, c) : svc;
  }
  const body = message.slice(close + 3);
  const semi = body.indexOf(';');
  fields['pam_message'] = (semi >= 0 ? body.slice(0, semi) : body).trim();
  let addr: string | null = null;
  if (semi >= 0) {
    for (const tok of body.slice(semi + 1).split(' ')) {
      const eq = tok.indexOf('=');
      if (eq <= 0) continue;
      const k = tok.slice(0, eq);
      const v = tok.slice(eq + 1);
      fields[`pam_${k}`] = v;
      if (k === 'rhost' && v) addr = normalizeAddress(v);
    }
  }
  return addr;
}

/** haproxy HTTP log: `client:port [accept] frontend backend/server timers status bytes … "METHOD URI VER"`. */
function haproxyEvent(raw: string, ts: number | null, host: string | null, program: string | null, pid: string | null, message: string, fields: Record<string, string>, kinds: number): LogEvent {
  const m = /^(\S+):(\d+) \[([^\]]+)\] (\S+) (\S+) (\S+) (-?\d+) (\d+|-) .*?"([^"]*)"?\s*$/.exec(message);
  if (!m) return { raw, kinds, ts, host, program, pid, message, fields, addr: null };
  const addr = normalizeAddress(m[1]!);
  fields['c-ip'] = fields['clientip'] = addr;
  fields['sc-status'] = m[7]!;
  fields['sc-bytes'] = m[8]!;
  requestFields(m[9]!, fields);
  return { raw, kinds: kinds | KIND.webAccess, ts, host, program, pid, message, fields, addr };
}

// ---------------------------------------------------------------- auditd

const HEX = /^(?:[0-9A-F]{2})+$/;
const HEX_FIELDS = new Set(['proctitle', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9', 'name', 'cwd', 'exe', 'comm', 'path', 'data', 'cmd']);

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
    } else if (text[eq + 1] === "'") {
      const close = text.indexOf("'", eq + 2);
      val = text.slice(eq + 2, close < 0 ? n : close);
      i = close < 0 ? n : close + 1;
    } else {
      const end = text.indexOf(' ', eq + 1);
      val = text.slice(eq + 1, end < 0 ? n : end);
      i = end < 0 ? n : end + 1;
      // auditd hex-encodes untrusted strings (spaces, quotes, NULs) and leaves them unquoted
      if (HEX_FIELDS.has(key) && val.length >= 2 && HEX.test(val)) val = Buffer.from(val, 'hex').toString('utf8').replace(/\0/g, ' ').trimEnd();
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
  return { raw, kinds: KIND.auditd, ts, host: null, program: 'auditd', pid: fields['pid'] ?? null, message: text, fields, addr };
}

// ---------------------------------------------------------------- web

/** Request line `GET /a/b?c=d HTTP/1.1` → cs-method, cs-uri-stem, cs-uri-query, cs-uri, cs-version. */
function requestFields(req: string, fields: Record<string, string>, at?: Record<string, number>, base = 0): void {
  fields['cs-request'] = req;
  const sp = req.indexOf(' ');
  if (sp < 0) {
    fields['cs-method'] = req;
    if (at) at['cs-request'] = at['cs-method'] = base;
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
  if (at) {
    at['cs-request'] = at['cs-method'] = base;
    at['cs-uri'] = at['cs-uri-stem'] = at['cs-uri-query'] = base + sp + 1;
    if (v >= 0) at['cs-version'] = base + sp + 1 + v + 1;
    if (q >= 0) at['cs-query'] = base + sp + 1 + q + 1;
  }
  // SigmaHQ's webserver rules put path fragments (`/cgi-bin/…`, `../`) in cs-uri-query: they are
  // written against backends that map it to the whole request target, so it carries the target.
  fields['cs-uri-query'] = uri;
  if (q >= 0) fields['cs-query'] = uri.slice(q + 1);
  // attacks hide in encodings (%2e%2e%2f, %252e, +, %u002e): Cordon's own web rules read the
  // target decoded twice, lower-cased; Sigma rules keep the raw field as SigmaHQ expects
  fields['cordon-uri'] = uri.indexOf('%') >= 0 || uri.indexOf('+') >= 0 ? percentDecode(percentDecode(uri)).toLowerCase() : uri.toLowerCase();
}

/** Lenient percent-decoding: bad escapes stay as they are, %uXXXX (IIS) is understood, bytes map to Latin-1. */
export function percentDecode(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '+') out += ' ';
    else if (c === '%') {
      const h = s.slice(i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(h)) {
        out += String.fromCharCode(parseInt(h, 16));
        i += 2;
      } else if ((s[i + 1] === 'u' || s[i + 1] === 'U') && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16));
        i += 5;
      } else out += c;
    } else out += c;
  }
  return out;
}

function looksLikeIp(t: string): boolean {
  // cheap shape check before the real one: digits/hex, dots or colons
  let colons = 0;
  let dots = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 0x2e) dots++;
    else if (c === 0x3a) colons++;
    else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46))) return false;
  }
  return dots === 3 || colons >= 2;
}

/** Scan a `"…"` field from the opening quote; backslash escapes (nginx `\x03`, `\"`) are kept verbatim. */
function quoted(line: string, open: number): number {
  let i = open + 1;
  while (i < line.length) {
    const c = line.charCodeAt(i);
    if (c === 0x5c) i += 2;
    else if (c === 0x22) return i;
    else i++;
  }
  return -1;
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
  const ts = parseClfTime(raw.slice(lb + 2, rb));
  if (ts === null) return null;
  const q = raw.indexOf('"', rb);
  if (q < 0) return null;
  const qe = quoted(raw, q);
  if (qe < 0) return null;
  const head = raw.slice(0, lb).split(' ');
  const fields: Record<string, string> = { keywords: raw };
  let ip: string | undefined;
  for (const t of head) {
    if (looksLikeIp(t)) {
      ip = t;
      break;
    }
  }
  ip ??= head.length >= 3 ? head[head.length - 3] : head[0];
  if (head.length >= 4 && head[0] !== ip) fields['cs-host'] = head[0]!;
  const user = head[head.length - 1];
  if (user && user !== '-') fields['cs-username'] = user;
  const between = raw.slice(rb + 1, q).trim();
  if (between) fields['cs-host'] ??= between;
  const at: Record<string, number> = {};
  requestFields(raw.slice(q + 1, qe), fields, at, q + 1);
  // after the request: status bytes "referer" "agent" …
  let i = qe + 1;
  const tok = (): string => {
    while (raw.charCodeAt(i) === 0x20) i++;
    const s = i;
    while (i < raw.length && raw.charCodeAt(i) !== 0x20) i++;
    return raw.slice(s, i);
  };
  const status = tok();
  if (!/^\d{3}$/.test(status)) return null;
  fields['sc-status'] = status;
  fields['sc-bytes'] = tok();
  while (raw.charCodeAt(i) === 0x20) i++;
  if (raw[i] === '"') {
    const e = quoted(raw, i);
    if (e > 0) {
      fields['cs-referer'] = raw.slice(i + 1, e);
      at['cs-referer'] = i + 1;
      i = e + 1;
      while (raw.charCodeAt(i) === 0x20) i++;
      if (raw[i] === '"') {
        const e2 = quoted(raw, i);
        if (e2 > 0) {
          fields['cs-user-agent'] = raw.slice(i + 1, e2);
          at['cs-user-agent'] = i + 1;
        }
      }
    }
  }
  const addr = normalizeAddress(ip ?? '');
  fields['c-ip'] = fields['clientip'] = addr;
  at['keywords'] = 0;
  return { raw, kinds: KIND.webAccess, ts, host: null, program: null, pid: null, message: raw, fields, addr, at };
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
  return { raw, kinds: KIND.apacheError, ts: parseCtime(m[1]!), host: null, program: 'apache', pid: fields['pid'] ?? null, message: rest, fields, addr };
}

function decodeNginxError(raw: string): LogEvent | null {
  const m = NGINX_ERROR.exec(raw);
  if (!m) return null;
  const msg = m[8]!;
  const fields: Record<string, string> = { keywords: raw, level: m[7]!, message: msg };
  let addr: string | null = null;
  const c = msg.lastIndexOf(', client: ');
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
  return { raw, kinds: KIND.nginxError, ts, host: null, program: 'nginx', pid: null, message: c >= 0 ? msg.slice(0, c) : msg, fields, addr };
}
