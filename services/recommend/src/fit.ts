import { SEVERITIES, type Severity } from './config.js';
import type { Outbound, Service, VmFacts } from './evidence.js';
import type { ParsedRule } from './rule-parse.js';
import { addrIncludes, isPortAgnostic, portIncludes, type AddrNode, type PortSet } from './rule-vars.js';
import { classifyProduct, type ProductKind } from './service-catalog.js';

/**
 * Does a rule protect a VM, and why (or why not) — in words a person can check.
 *
 * A rule fits when, in this order:
 *
 * 1. **It watches one of the VM's services** (server role). The rule's server side is its
 *    destination (`flow:to_server`, or no flow keyword and a destination that names ports),
 *    or its source (`flow:to_client`/`from_server`, or only the source names ports: responses).
 *    That side's addresses must include the VM (its inventory and agent addresses against
 *    `$HOME_NET` and the other variables, as the DPI engine resolves them), and:
 *    - an application-layer rule (`alert http`, or a tcp rule using `http.uri`,
 *      `app-layer-protocol:dns`, …) needs a service speaking that protocol on a port of the
 *      side's port spec — HTTP rules a web server, DNS rules port 53 or a DNS daemon;
 *    - a transport rule with ports (`tcp … -> $HOME_NET 445`) needs a service on one of them;
 *    - a transport rule with any port (`tcp $EXTERNAL_NET any -> $HOME_NET any`: scans,
 *      known-bad sources, shellcode) is host-wide: it fits a VM that exposes any service of
 *      that transport (icmp and ip: any service).
 * 2. **It watches the VM as a client** (`recommend.clientRules: observed`): the other side
 *    includes the VM and the VM was seen connecting out to that protocol or port (answered
 *    flows it started): a CnC check-in rule for HTTP fits a VM that makes HTTP requests out.
 *    A VM nobody saw connect out gets no client rules.
 * 3. **Its metadata agrees**: `signature_severity` at least `recommend.minSeverity`; a
 *    `deployment` among `recommend.deployments`; an `affected_product` the VM can run —
 *    an OS product the guest OS family (Windows rules not for a Linux guest), a server product
 *    the software of a matching service (`Microsoft_IIS` not for nginx; kept, and said so, when
 *    the software is unknown, as for agentless VMs), client software (browsers, office) only
 *    on a client OS, devices (routers, PLCs) never; web applications (WordPress, Struts) are
 *    not visible from processes and are kept for a web server. An `attack_target` that names
 *    a server kind (`SMB_Server`, `DNS_Server`, `Web_Server`, …) needs a service of that kind.
 *
 * A rule that fits none of this does not fit, with the most telling reason.
 */

export interface FitOptions {
  clientRules: 'observed' | 'never';
  minSeverity: Severity;
  deployments: ReadonlySet<string>;
  /** $HOME_NET resolved: a VM outside it is told so, rather than that it was not seen as a client. */
  homeNet?: AddrNode;
}

type Side = 'src' | 'dst';

/** A rule with what the fit asks of it computed once (ET Open is judged per VM). */
export interface Candidate {
  rule: ParsedRule;
  /** Sides that can be the server; both for `<>`. */
  serverSides: Side[];
  /** What it inspects: `http`, `dns`, `tcp 445`, `tcp any`, `icmp`. */
  target: string;
  severity: number | null;
  deployments: string[];
  products: Array<{ name: string; kind: ProductKind }>;
  attackTargets: string[];
}

const sev = (s: string): number => SEVERITIES.indexOf(s as Severity);

function sideOf(r: ParsedRule, side: Side): { addr: AddrNode; ports: PortSet; portText: string } {
  return side === 'src' ? r.src : r.dst;
}

export function prepareRule(rule: ParsedRule): Candidate {
  let serverSides: Side[];
  if (rule.bidirectional) serverSides = ['dst', 'src'];
  else if (rule.flow === 'to_server') serverSides = ['dst'];
  else if (rule.flow === 'to_client') serverSides = ['src'];
  else serverSides = isPortAgnostic(rule.dst.ports) && !isPortAgnostic(rule.src.ports) ? ['src'] : ['dst'];
  const s = sideOf(rule, serverSides[0]!);
  let target: string;
  if (rule.app) target = rule.app;
  else if (rule.transport === 'icmp') target = 'icmp';
  else target = `${rule.proto} ${isPortAgnostic(s.ports) ? 'any' : s.portText}`;
  const severities = (rule.metadata['signature_severity'] ?? []).map(sev).filter((n) => n >= 0);
  return {
    rule,
    serverSides,
    target,
    severity: severities.length ? Math.max(...severities) : null,
    deployments: rule.metadata['deployment'] ?? [],
    products: (rule.metadata['affected_product'] ?? []).map((name) => ({ name, kind: classifyProduct(name) })),
    attackTargets: rule.metadata['attack_target'] ?? [],
  };
}

export type Fit = { fits: true; reason: string } | { fits: false; reason: string };

const SERVER_TARGETS: ReadonlyMap<string, readonly string[]> = new Map([
  ['Web_Server', ['http', 'tls']],
  ['DNS_Server', ['dns']],
  ['SMB_Server', ['smb']],
  ['SQL_Server', ['mysql', 'mssql', 'pgsql', 'oracle']],
  ['FTP_Server', ['ftp']],
  ['SMTP_Server', ['smtp']],
]);
const DEVICE_TARGETS = new Set(['IoT', 'Networking_Equipment']);

const transportFits = (rule: ParsedRule, proto: 'tcp' | 'udp') =>
  rule.transport === null || rule.transport === 'icmp' || rule.transport === proto;

/** An address list of a thousand IPs (IP reputation rules) is named, not quoted. */
const short = (spec: string) =>
  spec.length <= 48 ? spec : `${spec.slice(0, 40)}… (${spec.split(',').length} entries)`;
const list = (items: string[], max = 2) =>
  items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
const servicesText = (f: VmFacts) =>
  f.services.length
    ? list(
        f.services.map((s) => `${s.proto}/${s.port}${s.app[0] ? ` ${s.app[0]}` : ''}`),
        4,
      )
    : 'none';

interface RoleHit {
  role: 'service' | 'exposure' | 'client';
  side: Side;
  services: Service[];
  outbound: Outbound[];
}

function vmTarget(f: VmFacts) {
  return f.ips.length ? f.ips : 'home';
}

/** The server role: the services of the VM this rule watches, if any. */
function serverRole(c: Candidate, f: VmFacts): RoleHit | { miss: 'address' | 'service' } {
  const r = c.rule;
  let inAddress = false;
  for (const side of c.serverSides) {
    const s = sideOf(r, side);
    if (!addrIncludes(s.addr, vmTarget(f))) continue;
    inAddress = true;
    let hits: Service[];
    let role: RoleHit['role'] = 'service';
    if (r.app)
      hits = f.services.filter(
        (svc) =>
          svc.app.includes(r.app!) &&
          portIncludes(s.ports, svc.port) &&
          (r.transport === null || r.transport === svc.proto),
      );
    else if (isPortAgnostic(s.ports)) {
      hits = f.services.filter((svc) => transportFits(r, svc.proto) && portIncludes(s.ports, svc.port));
      role = 'exposure';
    } else hits = f.services.filter((svc) => transportFits(r, svc.proto) && portIncludes(s.ports, svc.port));
    if (hits.length) return { role, side, services: hits, outbound: [] };
  }
  return { miss: inAddress ? 'service' : 'address' };
}

/** The client role: the VM's outbound connections this rule watches, if any. */
function clientRole(c: Candidate, f: VmFacts): RoleHit | { miss: 'address' | 'outbound' } {
  const r = c.rule;
  let inAddress = false;
  for (const serverSide of c.serverSides) {
    const server = sideOf(r, serverSide);
    const client = sideOf(r, serverSide === 'dst' ? 'src' : 'dst');
    if (!addrIncludes(client.addr, vmTarget(f))) continue;
    inAddress = true;
    const hits = f.outbound.filter(
      (o) => portIncludes(server.ports, o.port) && (r.app ? o.app.includes(r.app) : transportFits(r, o.proto)),
    );
    if (hits.length)
      return { role: 'client', side: serverSide === 'dst' ? 'src' : 'dst', services: [], outbound: hits };
  }
  return { miss: inAddress ? 'outbound' : 'address' };
}

const CLIENT_TARGETS = new Set(['Client_Endpoint', 'Mobile_Client', 'SMB_Client']);

/**
 * Whose product `affected_product` names: the attacked side's. A rule that watches infected
 * clients (attack_target Client_Endpoint: a malware DNS lookup, a CnC check-in) seen at the
 * VM as their server names the clients' OS and software, not the server's; and a rule about
 * attacks on servers seen with the VM as the client names the remote servers'.
 */
function productsAreTheVms(c: Candidate, hit: RoleHit): boolean {
  if (!c.attackTargets.length) return true;
  if (hit.role === 'client') return !c.attackTargets.every((t) => SERVER_TARGETS.has(t));
  return !c.attackTargets.every((t) => CLIENT_TARGETS.has(t));
}

function productCheck(
  c: Candidate,
  f: VmFacts,
  hit: RoleHit,
): { ok: true; note: string | null } | { ok: false; reason: string } {
  if (!c.products.length) return { ok: true, note: null };
  let products = c.products;
  if (!productsAreTheVms(c, hit)) {
    // a server product is a server's whatever attack_target says (ET's metadata is not always consistent)
    products = hit.role === 'client' ? [] : c.products.filter((p) => p.kind.kind === 'server');
    if (!products.length) {
      return {
        ok: true,
        note: `affected_product ${c.products.map((p) => p.name).join(', ')} (the ${hit.role === 'client' ? 'remote servers' : 'clients'}', attack_target ${c.attackTargets.join(', ')})`,
      };
    }
  }
  const pool = hit.role === 'service' ? hit.services : f.services;
  const os = f.guestOs ? `${f.guestOs} (${f.os.family})` : null;
  let unverified: string | null = null;
  let failure: string | null = null;
  for (const { name, kind } of products) {
    const say = `affected_product ${name}`;
    switch (kind.kind) {
      case 'any':
        return { ok: true, note: say };
      case 'application':
        unverified ??= `${say} (an application on the server, not visible from processes)`;
        break;
      case 'os':
        if (f.os.family === kind.family) return { ok: true, note: `${say} matches the guest OS ${os}` };
        if (f.os.family === 'unknown') unverified ??= `${say} (guest OS unknown)`;
        else failure ??= `${say} is for ${kind.family}; ${f.name} runs ${os}`;
        break;
      case 'server': {
        const svcs = kind.app ? pool.filter((s) => s.app.includes(kind.app!)) : pool;
        const match = svcs.find((s) => s.products.includes(name));
        if (match) return { ok: true, note: `${say} matches ${match.software} on ${match.proto}/${match.port}` };
        const unknown = svcs.find((s) => s.software === null);
        if (unknown)
          unverified ??= `${say} (the software on ${unknown.proto}/${unknown.port} is not known${unknown.fromNetconf ? '' : ': no agent'})`;
        else if (svcs.length)
          failure ??= `${say} is not what serves ${svcs[0]!.proto}/${svcs[0]!.port} (${svcs[0]!.software})`;
        else failure ??= `${say}: ${f.name} runs no ${kind.app ?? name} server`;
        break;
      }
      case 'client':
        if (hit.role === 'client' && f.os.role === 'client') return { ok: true, note: `${say} on a client OS (${os})` };
        if (hit.role === 'client' && f.os.role === 'unknown') unverified ??= `${say} (guest OS unknown)`;
        else
          failure ??= `${say} is client software; ${f.name} ${f.os.role === 'server' ? `runs a server OS (${os})` : 'is judged as a server here'}`;
        break;
      case 'device':
        failure ??= `${say} is a device (router, camera, controller), not a VM`;
        break;
    }
  }
  if (unverified) return { ok: true, note: unverified };
  return { ok: false, reason: failure ?? 'affected_product does not match' };
}

function attackTargetCheck(c: Candidate, f: VmFacts, hit: RoleHit): string | null {
  if (!c.attackTargets.length || hit.role === 'client') return null;
  if (c.attackTargets.every((t) => DEVICE_TARGETS.has(t)))
    return `attack_target ${c.attackTargets.join(', ')}: devices, not VMs`;
  if (!c.attackTargets.every((t) => SERVER_TARGETS.has(t))) return null;
  const apps = c.attackTargets.flatMap((t) => SERVER_TARGETS.get(t)!);
  const pool = hit.role === 'service' ? hit.services : f.services;
  if (pool.some((s) => s.app.some((a) => apps.includes(a)))) return null;
  return `attack_target ${c.attackTargets.join(', ')}: ${f.name} serves no ${[...new Set(apps)].join('/')}`;
}

/** The metadata filters; a reason when the rule must not be recommended. */
function metadataCheck(
  c: Candidate,
  f: VmFacts,
  hit: RoleHit,
  o: FitOptions,
): { ok: true; notes: string[] } | { ok: false; reason: string } {
  if (c.severity !== null && c.severity < sev(o.minSeverity)) {
    return {
      ok: false,
      reason: `signature_severity ${SEVERITIES[c.severity]} is below recommend.minSeverity (${o.minSeverity})`,
    };
  }
  if (c.deployments.length && !c.deployments.some((d) => o.deployments.has(d))) {
    return {
      ok: false,
      reason: `deployment ${c.deployments.join(', ')}: not where the sensor is (recommend.deployments)`,
    };
  }
  const at = attackTargetCheck(c, f, hit);
  if (at) return { ok: false, reason: at };
  const p = productCheck(c, f, hit);
  if (!p.ok) return p;
  const notes: string[] = [];
  if (p.note) notes.push(p.note);
  if (c.severity !== null) notes.push(`signature_severity ${SEVERITIES[c.severity]}`);
  return { ok: true, notes };
}

function hitText(c: Candidate, f: VmFacts, hit: RoleHit): string {
  const dir = hit.side === 'dst' ? 'to_server' : 'to_client';
  if (hit.role === 'client') {
    const out = hit.outbound.map((o) => `${o.proto}/${o.port}${o.app[0] ? ` ${o.app[0]}` : ''}`);
    return `${f.name} connects out to ${list(out)} (seen in flows); rule watches it as a ${c.target} client`;
  }
  if (hit.role === 'exposure')
    return `${f.name} exposes ${list(hit.services.map((s) => s.summary))}; rule targets ${c.target} to any port of the VM (host-wide)`;
  return `${list(hit.services.map((s) => s.summary))}; rule targets ${c.target} ${dir}`;
}

export function fit(c: Candidate, f: VmFacts, o: FitOptions): Fit {
  let filtered: string | null = null;
  const server = serverRole(c, f);
  if ('role' in server) {
    const m = metadataCheck(c, f, server, o);
    if (m.ok) return { fits: true, reason: [hitText(c, f, server), ...m.notes].join('; ') };
    filtered = m.reason;
  }
  const client = o.clientRules === 'never' ? null : clientRole(c, f);
  if (client && 'role' in client) {
    const m = metadataCheck(c, f, client, o);
    if (m.ok) return { fits: true, reason: [hitText(c, f, client), ...m.notes].join('; ') };
    filtered ??= m.reason;
  }
  if (filtered) return { fits: false, reason: filtered };
  const sm = 'miss' in server ? server.miss : null;
  if (sm === 'service')
    return {
      fits: false,
      reason: `rule protects ${c.target} servers; ${f.name} serves none (its services: ${servicesText(f)})`,
    };
  const outsideHome = o.homeNet !== undefined && f.ips.length > 0 && !addrIncludes(o.homeNet, f.ips);
  const where = f.ips.length ? f.addresses.join(', ') : 'no known address';
  if (outsideHome)
    return {
      fits: false,
      reason: `rule's addresses (${short(c.rule.src.addrText)} -> ${short(c.rule.dst.addrText)}) do not include ${f.name} as a server (${where}: outside $HOME_NET)`,
    };
  const cm = client && 'miss' in client ? client.miss : null;
  if (cm === 'outbound')
    return {
      fits: false,
      reason: `rule watches ${c.target} clients; ${f.name} was not seen connecting out to ${c.target}`,
    };
  if (
    o.clientRules === 'never' &&
    addrIncludes(sideOf(c.rule, c.serverSides[0] === 'dst' ? 'src' : 'dst').addr, vmTarget(f))
  ) {
    return {
      fits: false,
      reason: `rule watches ${c.target} clients; client-side rules are off (recommend.clientRules: never)`,
    };
  }
  return {
    fits: false,
    reason: `rule's addresses (${short(c.rule.src.addrText)} -> ${short(c.rule.dst.addrText)}) do not include ${f.name} (${where})`,
  };
}
