import type { FlowRecord, ListeningSocket, NetSnapshot } from '@cordon/schemas';
import { appsOfPort, classifyGuestOs, serviceNoun, softwareOf, TLS_PORTS, type GuestOs } from './service-catalog.js';
import { parseIp, type Ip } from './rule-vars.js';

/**
 * What the stage knows about VMs, from two inputs it consumes and checkpoints per partition:
 *
 * - `cordon.flows.v1`: for every inventory address, the ports it answered on (inbound: the VM
 *   is a server there) and the remote ports it connected to (outbound: the VM is a client),
 *   each with a flow count and first/last seen. A flow counts when the responder answered —
 *   a SYN-ACK, or packets back without a reset (TCP); any packet back (UDP) — so a port scan
 *   against closed ports makes no services.
 * - `cordon.netconf.v1`: each VM's newest agent snapshot (listening sockets with processes,
 *   interface addresses).
 *
 * Evidence is kept by address, not by VM: the inventory may name an address's VM after its
 * flows arrived, and an address that moves to another VM takes its history with it.
 */

export interface PortStats {
  flows: number;
  first: number;
  last: number;
}

export interface SnapshotEvidence {
  vm: string;
  agent: string;
  ts_us: number;
  listening: ListeningSocket[];
  addresses: string[];
}

type PortMap = Map<string, PortStats>;

/** The evidence one input partition contributed; merged across partitions when a VM is judged. */
export class PartitionEvidence {
  readonly inbound = new Map<string, PortMap>();
  readonly outbound = new Map<string, PortMap>();
  readonly snapshots = new Map<string, SnapshotEvidence>();
  /** Ports not kept because an address had maxPortsPerAddress already. */
  capped = 0;
  newestFlowUs = 0;

  /**
   * Count a flow for the addresses `known` accepts (inventory addresses). Returns the
   * addresses whose evidence changed in a way that can change a decision (a new port, or a
   * port reaching `minFlows`), so the stage recomputes only those VMs.
   */
  addFlow(f: FlowRecord, known: (ip: string) => boolean, opts: { maxPorts: number; minFlows: number }): string[] {
    const proto = f.proto === 6 ? 'tcp' : f.proto === 17 ? 'udp' : null;
    if (!proto || !answered(f)) return [];
    if (f.last_seen_us > this.newestFlowUs) this.newestFlowUs = f.last_seen_us;
    const changed: string[] = [];
    const count = (maps: Map<string, PortMap>, ip: string, port: number) => {
      if (!known(ip) || !(port > 0 && port <= 65535)) return;
      let m = maps.get(ip);
      if (!m) maps.set(ip, (m = new Map()));
      const key = `${proto}/${port}`;
      const s = m.get(key);
      if (!s) {
        if (m.size >= opts.maxPorts) {
          this.capped++;
          return;
        }
        m.set(key, { flows: 1, first: f.first_seen_us, last: f.last_seen_us });
        changed.push(ip);
        return;
      }
      s.flows++;
      if (f.first_seen_us < s.first) s.first = f.first_seen_us;
      if (f.last_seen_us > s.last) s.last = f.last_seen_us;
      if (s.flows === opts.minFlows) changed.push(ip);
    };
    count(this.inbound, f.dst_ip, f.dst_port);
    count(this.outbound, f.src_ip, f.dst_port);
    return changed;
  }

  /** The VM's newest snapshot; false when `s` is not newer than the one kept. */
  setSnapshot(s: NetSnapshot): boolean {
    const prev = this.snapshots.get(s.vm);
    if (prev && prev.ts_us >= s.ts_us) return false;
    this.snapshots.set(s.vm, {
      vm: s.vm,
      agent: s.agent,
      ts_us: s.ts_us,
      listening: s.listening.map((l) => ({ proto: l.proto, address: l.address, port: l.port, process: l.process })),
      addresses: [...new Set(s.interfaces.flatMap((i) => i.addresses.map((a) => a.replace(/\/\d+$/, ''))))].sort(),
    });
    return (
      !prev ||
      JSON.stringify(prev.listening) !== JSON.stringify(s.listening) ||
      prev.addresses.join() !== this.snapshots.get(s.vm)!.addresses.join()
    );
  }

  serialize(): Buffer {
    const ports = (maps: Map<string, PortMap>) =>
      [...maps].map(([ip, m]) => [ip, [...m].map(([k, s]) => [k, s.flows, s.first, s.last])]);
    return Buffer.from(
      JSON.stringify({
        v: 1,
        inbound: ports(this.inbound),
        outbound: ports(this.outbound),
        snapshots: [...this.snapshots.values()],
        capped: this.capped,
        newestFlowUs: this.newestFlowUs,
      }),
    );
  }

  /** Throws on anything but a checkpoint this version wrote. */
  static restore(buf: Buffer): PartitionEvidence {
    const o = JSON.parse(buf.toString('utf8')) as {
      v: number;
      inbound: Array<[string, Array<[string, number, number, number]>]>;
      outbound: Array<[string, Array<[string, number, number, number]>]>;
      snapshots: SnapshotEvidence[];
      capped: number;
      newestFlowUs: number;
    };
    if (o.v !== 1 || !Array.isArray(o.inbound) || !Array.isArray(o.outbound) || !Array.isArray(o.snapshots))
      throw new Error(`not a version-1 recommend checkpoint`);
    const e = new PartitionEvidence();
    const load = (into: Map<string, PortMap>, from: Array<[string, Array<[string, number, number, number]>]>) => {
      for (const [ip, list] of from)
        into.set(ip, new Map(list.map(([k, flows, first, last]) => [k, { flows, first, last }])));
    };
    load(e.inbound, o.inbound);
    load(e.outbound, o.outbound);
    for (const s of o.snapshots) e.snapshots.set(s.vm, s);
    e.capped = Number(o.capped) || 0;
    e.newestFlowUs = Number(o.newestFlowUs) || 0;
    return e;
  }
}

const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

/** The responder answered: a SYN-ACK, or packets back and no reset (TCP); anything back (UDP). */
export function answered(f: FlowRecord): boolean {
  if (f.proto === 6)
    return (
      (f.tcp_flags_toclient & (SYN | ACK)) === (SYN | ACK) ||
      (f.pkts_toclient > 0 && (f.tcp_flags_toclient & RST) === 0)
    );
  return f.pkts_toclient > 0;
}

// ---------------------------------------------------------------- facts of one VM

export interface VmInventory {
  id: string;
  name: string;
  guestOs: string | null;
  ips: string[];
}

export interface Service {
  proto: 'tcp' | 'udp';
  port: number;
  /** Application protocols, the software's own first. */
  app: string[];
  software: string | null;
  products: string[];
  process: string | null;
  listen: string | null;
  fromNetconf: boolean;
  flows: number;
  first: number | null;
  last: number | null;
  /** `web server on tcp/80 (nginx, from netconf)`. */
  summary: string;
}

export interface Outbound {
  proto: 'tcp' | 'udp';
  port: number;
  app: string[];
  flows: number;
  first: number;
  last: number;
}

/** Everything a VM is judged on; built deterministically (sorted) from the evidence. */
export interface VmFacts {
  vm: string;
  name: string;
  guestOs: string | null;
  os: GuestOs;
  addresses: string[];
  /** Parsed addresses; empty when none is known (then the VM is taken to be in $HOME_NET). */
  ips: Ip[];
  agent: string | null;
  netconfTs: number | null;
  services: Service[];
  outbound: Outbound[];
  ignored: string[];
}

export interface FactsOptions {
  minFlows: number;
  maxAgeS: number;
  /** HTTP inside TLS is visible (the sensor decrypts): a web server on a TLS port also serves `http`. */
  tlsDecrypted: boolean;
}

const isLoopback = (a: string) => /^127\./.test(a) || a === '::1' || a === 'localhost';
const isLinkLocal = (a: string) => /^fe80:/i.test(a) || /^169\.254\./.test(a);
const byKey = (a: { proto: string; port: number }, b: { proto: string; port: number }) =>
  a.proto.localeCompare(b.proto) || a.port - b.port;

function sumPorts(
  parts: readonly PartitionEvidence[],
  ips: readonly string[],
  dir: 'inbound' | 'outbound',
): Map<string, PortStats> {
  const out = new Map<string, PortStats>();
  for (const p of parts) {
    for (const ip of ips) {
      for (const [k, s] of p[dir].get(ip) ?? []) {
        const o = out.get(k);
        if (!o) out.set(k, { ...s });
        else {
          o.flows += s.flows;
          o.first = Math.min(o.first, s.first);
          o.last = Math.max(o.last, s.last);
        }
      }
    }
  }
  return out;
}

function appsOf(proto: string, port: number, software: ReturnType<typeof softwareOf>, tlsDecrypted: boolean): string[] {
  const apps = new Set<string>();
  if (software) {
    if (software.app === 'http' && TLS_PORTS.has(port)) {
      apps.add('tls');
      if (tlsDecrypted) apps.add('http');
    } else apps.add(software.app);
  }
  for (const a of appsOfPort(proto, port)) apps.add(a);
  if (tlsDecrypted && apps.has('tls') && (port === 443 || port === 8443)) apps.add('http');
  return [...apps];
}

const iso = (us: number) => new Date(Math.floor(us / 1000)).toISOString();

/** The facts a VM is judged on, from its inventory record and the partitions' evidence. */
export function buildFacts(vm: VmInventory, parts: readonly PartitionEvidence[], opts: FactsOptions): VmFacts {
  let snap: SnapshotEvidence | null = null;
  for (const p of parts) {
    const s = p.snapshots.get(vm.id);
    if (s && (!snap || s.ts_us > snap.ts_us)) snap = s;
  }
  const addresses = [...new Set([...vm.ips, ...(snap?.addresses ?? [])])]
    .filter((a) => !isLoopback(a) && !isLinkLocal(a) && parseIp(a))
    .sort();
  const ips = addresses.map((a) => parseIp(a)!);
  const ignored: string[] = [];
  const services = new Map<string, Service>();

  for (const l of [...(snap?.listening ?? [])].sort(
    (a, b) => a.proto.localeCompare(b.proto) || a.port - b.port || a.address.localeCompare(b.address),
  )) {
    const proto = l.proto.startsWith('tcp') ? 'tcp' : l.proto.startsWith('udp') ? 'udp' : null;
    if (!proto) continue;
    const key = `${proto}/${l.port}`;
    if (isLoopback(l.address)) {
      ignored.push(`${key} on ${l.address}${l.process ? ` (${l.process})` : ''}: listens on loopback only`);
      continue;
    }
    if (services.has(key)) continue;
    const sw = softwareOf(l.process);
    services.set(key, {
      proto,
      port: l.port,
      app: appsOf(proto, l.port, sw, opts.tlsDecrypted),
      software: sw?.name ?? null,
      products: [...(sw?.products ?? [])],
      process: l.process,
      listen: l.address,
      fromNetconf: true,
      flows: 0,
      first: null,
      last: null,
      summary: '',
    });
  }

  const newest = Math.max(0, ...parts.map((p) => p.newestFlowUs));
  const horizon = newest - opts.maxAgeS * 1_000_000;
  for (const [key, s] of [...sumPorts(parts, vm.ips, 'inbound')].sort(([a], [b]) => a.localeCompare(b))) {
    const [proto, portText] = key.split('/') as ['tcp' | 'udp', string];
    const port = Number(portText);
    const svc = services.get(key);
    if (svc) {
      Object.assign(svc, { flows: s.flows, first: s.first, last: s.last });
      continue;
    }
    if (s.last < horizon) {
      ignored.push(`${key}: last answered flow ${iso(s.last)}, older than recommend.maxAgeS before the newest flow`);
      continue;
    }
    if (s.flows < opts.minFlows) {
      ignored.push(
        `${key}: ${s.flows} answered flow${s.flows === 1 ? '' : 's'}, fewer than recommend.minFlows (${opts.minFlows})`,
      );
      continue;
    }
    services.set(key, {
      proto,
      port,
      app: appsOf(proto, port, null, opts.tlsDecrypted),
      software: null,
      products: [],
      process: null,
      listen: null,
      fromNetconf: false,
      flows: s.flows,
      first: s.first,
      last: s.last,
      summary: '',
    });
  }
  for (const svc of services.values()) {
    const who = [
      svc.software ?? svc.process,
      svc.fromNetconf && svc.flows > 0 ? 'from netconf and flows' : svc.fromNetconf ? 'from netconf' : 'seen in flows',
    ]
      .filter(Boolean)
      .join(', ');
    const noun = softwareOf(svc.process)?.app === 'http' ? 'web server' : serviceNoun(svc.app);
    svc.summary = `${noun} on ${svc.proto}/${svc.port} (${who})`;
  }

  const outbound: Outbound[] = [];
  for (const [key, s] of sumPorts(parts, vm.ips, 'outbound')) {
    if (s.last < horizon || s.flows < opts.minFlows) continue;
    const [proto, portText] = key.split('/') as ['tcp' | 'udp', string];
    const port = Number(portText);
    outbound.push({ proto, port, app: [...appsOfPort(proto, port)], flows: s.flows, first: s.first, last: s.last });
  }

  return {
    vm: vm.id,
    name: vm.name,
    guestOs: vm.guestOs,
    os: classifyGuestOs(vm.guestOs),
    addresses,
    ips,
    agent: snap?.agent ?? null,
    netconfTs: snap?.ts_us ?? null,
    services: [...services.values()].sort(byKey),
    outbound: outbound.sort(byKey),
    ignored: ignored.sort(),
  };
}

/** What of the facts decides the recommendation (not counters, not times): equal keys, equal rules. */
export function decisionKey(f: VmFacts): string {
  return JSON.stringify({
    os: f.os,
    guestOs: f.guestOs,
    addresses: f.addresses,
    services: f.services.map((s) => [s.proto, s.port, s.app, s.software, s.products, s.summary]),
    outbound: f.outbound.map((o) => [o.proto, o.port, o.app]),
  });
}

const SOCKET_PROTOS = new Set(['tcp', 'tcp6', 'udp', 'udp6']);
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * A snapshot is the agent's word about its guest: bounded and well-formed, or it is not used
 * (CORDON_ERR_RECOMMEND_SNAPSHOT, to the DLQ) and the VM keeps its previous evidence.
 */
export function checkSnapshot(s: NetSnapshot, maxSockets: number): string | null {
  if (!s.vm || s.vm.length > 256 || CONTROL.test(s.vm))
    return 'the vm is empty, longer than 256 characters or has control characters';
  if (s.listening.length > maxSockets)
    return `${s.listening.length} listening sockets, more than recommend.maxSocketsPerSnapshot (${maxSockets})`;
  if (s.interfaces.length > 1024 || s.interfaces.some((i) => i.addresses.length > 1024))
    return 'more than 1024 interfaces or addresses on one';
  for (const l of s.listening) {
    if (!SOCKET_PROTOS.has(l.proto))
      return `listening socket protocol "${l.proto.slice(0, 20)}" is not tcp, tcp6, udp or udp6`;
    if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) return `listening port ${l.port} is out of range`;
    if (!parseIp(l.address)) return `listening address "${l.address.slice(0, 64)}" is not an IP address`;
    if (l.process !== null && (l.process.length > 256 || CONTROL.test(l.process)))
      return 'a process name is longer than 256 characters or has control characters';
  }
  return null;
}
