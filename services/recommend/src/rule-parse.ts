import { DISABLED_RULE_LINE, RULE_ACTIONS, ruleFileLines, splitOptions } from '@cordon/rulesets';
import { SpecError, type AddrNode, type PortSet, type RuleVars } from './rule-vars.js';

/**
 * What the recommendation needs of a Suricata rule — its header (action, protocol, both
 * sides' addresses and ports, direction) and the options that say what it protects (`msg`,
 * `sid`, `rev`, `classtype`, `flow`, `metadata`, the application-layer keywords) — read from
 * hostile text without trusting it: a line that does not parse is skipped with a counted
 * reason, never a throw. The DPI engine parses rules for matching; this reads them for
 * choosing, and only as far as choosing needs.
 */

export const ACTIONS = new Set(RULE_ACTIONS);

/** Transport (and packet) protocols of a rule header. */
export const TRANSPORTS = new Set([
  'ip',
  'ipv4',
  'ip4',
  'ipv6',
  'ip6',
  'tcp',
  'udp',
  'icmp',
  'icmpv4',
  'icmpv6',
  'sctp',
  'pkthdr',
  'tcp-pkt',
  'tcp-stream',
]);

/** Application-layer protocols of a rule header (Suricata 7). `http1` is read as `http`. */
export const APP_LAYERS = new Set([
  'http',
  'http2',
  'ftp',
  'ftp-data',
  'tls',
  'smb',
  'dcerpc',
  'dns',
  'ssh',
  'smtp',
  'imap',
  'pop3',
  'modbus',
  'dnp3',
  'enip',
  'nfs',
  'ike',
  'krb5',
  'ntp',
  'dhcp',
  'snmp',
  'sip',
  'rfb',
  'mqtt',
  'rdp',
  'pgsql',
  'telnet',
  'websocket',
  'ldap',
  'quic',
  'bittorrent-dht',
  'tftp',
]);

export type SkipReason =
  | 'not-a-rule'
  | 'header'
  | 'protocol'
  | 'direction'
  | 'address'
  | 'port'
  | 'variable'
  | 'options'
  | 'sid'
  | 'duplicate-sid';

export interface ParsedRule {
  action: string;
  /** As written, lower-cased (`http1` → `http`). */
  proto: string;
  /** The application layer the rule inspects: its header protocol, `app-layer-protocol`, or its buffers (`http.uri` in a tcp rule). */
  app: string | null;
  /** tcp, udp or null (both: ip, and application layers that run on both). */
  transport: 'tcp' | 'udp' | 'icmp' | null;
  src: { addr: AddrNode; ports: PortSet; addrText: string; portText: string };
  dst: { addr: AddrNode; ports: PortSet; addrText: string; portText: string };
  bidirectional: boolean;
  /** From `flow`: which way the inspected packets go; null when the rule does not say. */
  flow: 'to_server' | 'to_client' | null;
  sid: number;
  rev: number;
  msg: string;
  classtype: string | null;
  /** `metadata` pairs: key → values in order (keys repeat: `deployment Perimeter, deployment Internal`). */
  metadata: Record<string, string[]>;
  /** Where it came from: the rule file as the policy topic names it, and the line. */
  ruleSet: string;
  line: number;
}

export interface RuleSkip {
  ruleSet: string;
  line: number;
  sid: number | null;
  reason: SkipReason;
  detail: string;
}

export type ParseResult =
  { ok: true; rule: ParsedRule } | { ok: false; reason: SkipReason; detail: string; sid: number | null };

/** Buffers and keywords that make a tcp/udp rule an application-layer rule, by prefix. */
const APP_KEYWORDS: ReadonlyArray<readonly [string, string]> = [
  ['http.', 'http'],
  ['http_', 'http'],
  ['urilen', 'http'],
  ['dns.', 'dns'],
  ['dns_', 'dns'],
  ['tls.', 'tls'],
  ['tls_', 'tls'],
  ['ssl_', 'tls'],
  ['ja3', 'tls'],
  ['ssh.', 'ssh'],
  ['ssh_', 'ssh'],
  ['smb.', 'smb'],
  ['ftp.', 'ftp'],
  ['ftpbounce', 'ftp'],
  ['ftpdata_', 'ftp-data'],
  ['smtp.', 'smtp'],
  ['krb5_', 'krb5'],
  ['krb5.', 'krb5'],
  ['dce_', 'dcerpc'],
  ['sip.', 'sip'],
  ['snmp.', 'snmp'],
  ['rfb.', 'rfb'],
  ['mqtt.', 'mqtt'],
  ['ike.', 'ike'],
  ['ldap.', 'ldap'],
  ['quic.', 'quic'],
];

/** Application layers carried on UDP only; the others here are TCP unless listed in BOTH. */
const UDP_APPS = new Set(['ntp', 'dhcp', 'tftp', 'quic', 'ike', 'bittorrent-dht']);
const BOTH_APPS = new Set(['dns', 'snmp', 'sip', 'krb5', 'nfs']);

export function transportOfApp(app: string): 'tcp' | 'udp' | null {
  if (BOTH_APPS.has(app)) return null;
  return UDP_APPS.has(app) ? 'udp' : 'tcp';
}

export function unquote(v: string): string {
  const s = v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1) : v;
  return s.replace(/\\(.)/g, '$1');
}

export function parseMetadata(value: string, into: Record<string, string[]>): void {
  for (const part of value.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const sp = p.search(/\s/);
    const key = (sp < 0 ? p : p.slice(0, sp)).toLowerCase();
    const val = sp < 0 ? '' : p.slice(sp + 1).trim();
    (into[key] ??= []).push(val);
  }
}

const fail = (reason: SkipReason, detail: string, sid: number | null = null): ParseResult => ({
  ok: false,
  reason,
  detail,
  sid,
});

/**
 * One rule line (continuations already joined). The header's specs are resolved with `vars`
 * (an undefined variable skips the rule, as it would fail to load in the DPI engine).
 */
export function parseRule(text: string, vars: RuleVars, where: { ruleSet: string; line: number }): ParseResult {
  const line = text.trim();
  // for the skip report of a rule whose options do not split: its sid, if one can be seen
  const guess = /[;(\s]sid\s*:\s*(\d{1,10})\s*[;)]/.exec(line);
  const sidSeen = guess ? Number(guess[1]) : null;
  const open = line.indexOf('(');
  if (open < 0)
    return fail(ACTIONS.has(line.split(/\s/)[0] ?? '') ? 'options' : 'not-a-rule', 'no "(" opens the options', sidSeen);
  const header = line.slice(0, open).trim().split(/\s+/);
  if (!ACTIONS.has(header[0] ?? ''))
    return fail('not-a-rule', `"${(header[0] ?? '').slice(0, 40)}" is not a rule action`);
  if (!line.endsWith(')')) return fail('options', 'the options are not closed by ")"', sidSeen);
  const options = splitOptions(line.slice(open + 1, -1));
  if (!options) return fail('options', 'the last option is not terminated by ";"', sidSeen);
  const sidOpt = options.find((o) => o.key === 'sid');
  const sid = sidOpt?.value && /^\d{1,10}$/.test(sidOpt.value) ? Number(sidOpt.value) : null;
  if (sid === null)
    return fail('sid', sidOpt ? `sid "${String(sidOpt.value).slice(0, 20)}" is not a number` : 'the rule has no sid');
  if (header.length !== 7)
    return fail('header', `the header has ${header.length} fields, not 7 (action proto src sport dir dst dport)`, sid);
  const [action, protoRaw, srcA, srcP, dir, dstA, dstP] = header as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  let proto = protoRaw.toLowerCase();
  if (proto === 'http1') proto = 'http';
  if (!TRANSPORTS.has(proto) && !APP_LAYERS.has(proto))
    return fail('protocol', `unknown protocol "${protoRaw.slice(0, 40)}"`, sid);
  if (dir !== '->' && dir !== '<>') return fail('direction', `"${dir.slice(0, 10)}" is not -> or <>`, sid);
  let src: ParsedRule['src'];
  let dst: ParsedRule['dst'];
  try {
    src = { addr: vars.addr(srcA), ports: vars.ports(srcP), addrText: srcA, portText: srcP };
    dst = { addr: vars.addr(dstA), ports: vars.ports(dstP), addrText: dstA, portText: dstP };
  } catch (err) {
    if (err instanceof SpecError) return fail(err.reason, err.message, sid);
    throw err;
  }
  let msg = '';
  let rev = 0;
  let classtype: string | null = null;
  let flow: ParsedRule['flow'] = null;
  let appKeyword: string | null = null;
  let appLayerProtocol: string | null = null;
  const metadata: Record<string, string[]> = {};
  for (const { key, value } of options) {
    if (key === 'msg' && value !== null) msg = unquote(value);
    else if (key === 'rev' && value !== null && /^\d{1,9}$/.test(value)) rev = Number(value);
    else if (key === 'classtype' && value) classtype = value;
    else if (key === 'metadata' && value !== null) parseMetadata(value, metadata);
    else if (key === 'flow' && value !== null) {
      for (const f of value.split(',').map((x) => x.trim().toLowerCase())) {
        if (f === 'to_server' || f === 'from_client') flow = 'to_server';
        if (f === 'to_client' || f === 'from_server') flow = 'to_client';
      }
    } else if (key === 'app-layer-protocol' && value && !value.startsWith('!')) {
      const a = value.split(',')[0]!.trim().toLowerCase();
      if (APP_LAYERS.has(a)) appLayerProtocol = a === 'http1' ? 'http' : a;
    } else if (!appKeyword) {
      for (const [prefix, app] of APP_KEYWORDS) {
        if (key.startsWith(prefix)) {
          appKeyword = app;
          break;
        }
      }
    }
  }
  const isApp = APP_LAYERS.has(proto);
  const app = isApp
    ? proto
    : (appLayerProtocol ?? (proto === 'tcp' || proto === 'udp' || proto === 'ip' ? appKeyword : null));
  let transport: ParsedRule['transport'];
  if (isApp) transport = transportOfApp(proto);
  else if (proto.startsWith('tcp')) transport = 'tcp';
  else if (proto === 'udp') transport = 'udp';
  else if (proto.startsWith('icmp')) transport = 'icmp';
  else transport = null;
  return {
    ok: true,
    rule: {
      action,
      proto,
      app,
      transport,
      src,
      dst,
      bidirectional: dir === '<>',
      flow,
      sid,
      rev,
      msg,
      classtype,
      metadata,
      ruleSet: where.ruleSet,
      line: where.line,
    },
  };
}

export interface ParsedRuleFile {
  rules: ParsedRule[];
  skipped: RuleSkip[];
  /** Commented-out rules ("# alert …"): not enabled, not judged. */
  disabled: number;
}

/** Every rule of a rule file; lines ending in "\" continue on the next, as in Suricata. */
export function parseRuleFile(text: string, ruleSet: string, vars: RuleVars): ParsedRuleFile {
  const rules: ParsedRule[] = [];
  const skipped: RuleSkip[] = [];
  let disabled = 0;
  for (const { line, text: t } of ruleFileLines(text)) {
    if (t.startsWith('#')) {
      if (DISABLED_RULE_LINE.test(t)) disabled++;
      continue;
    }
    const r = parseRule(t, vars, { ruleSet, line });
    if (r.ok) rules.push(r.rule);
    else skipped.push({ ruleSet, line, sid: r.sid, reason: r.reason, detail: r.detail });
  }
  return { rules, skipped, disabled };
}
