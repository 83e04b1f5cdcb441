/**
 * A small data center in namespaces: hypervisor hosts (a namespace each, with a Linux bridge
 * `br0`, the host's virtual switch) joined by a fabric (a namespace with the bridge `fab0`,
 * the physical network) through an uplink each; VMs (a namespace each, `eth0` with the MAC
 * the inventory names) plugged into a port of their host's bridge; an attacker on the
 * fabric. A VM can be powered off and on (its port goes down and up) and migrated (its port
 * moves to the other host's bridge: the switchover is an instant the lab knows, as a
 * hypervisor does). Everything lives in namespaces the lab creates and `destroy()` removes;
 * the 10.213.x addresses exist only inside them. Needs root (see `canUseNetns`).
 */
import { execFileSync } from 'node:child_process';

export interface HostsLabVm {
  name: string;
  ns: string;
  ip: string;
  mac: string;
  /** Its port on the host bridge (the host side of its veth). */
  port: string;
  /** The host whose bridge it is plugged into now. */
  host: string;
  on: boolean;
}

export interface HostsLabHost {
  name: string;
  ns: string;
  bridge: string;
}

export interface HostsLab {
  tag: string;
  hosts: Record<string, HostsLabHost>;
  vms: Record<string, HostsLabVm>;
  fabric: string;
  attacker: { ns: string; ip: string; mac: string };
  exec(ns: string, args: string[]): string;
  /** Bring the VM's port up; returns the instant (µs, the kernel's clock) from which its frames flow. */
  powerOn(vm: string): number;
  /** Bring its port down; returns the instant after which no frame of it flows. */
  powerOff(vm: string): number;
  /**
   * Move the VM's port to `host`'s bridge. Returns the switchover instant (µs): its port had
   * left the old bridge before it, and joins the new one after it.
   */
  migrate(vm: string, host: string): number;
  destroy(): void;
}

export interface HostsLabOptions {
  /** 1-6 lower-case letters or digits: namespace names derive from it. */
  tag: string;
  hosts?: string[];
  /** VM name → its host (the first host by default). */
  vms?: Record<string, string>;
  /** Third octet of the lab subnet 10.213.<subnet>.0/24. */
  subnet?: number;
}

/** Wall-clock µs, the clock the kernel stamps captured frames with. */
export const wallUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function delNs(ns: string): void {
  try {
    ip(['netns', 'del', ns]);
  } catch {
    // not there: fine
  }
}

export function makeHostsLab(opts: HostsLabOptions): HostsLab {
  const { tag } = opts;
  if (!/^[a-z0-9]{1,6}$/.test(tag)) throw new Error(`lab tag "${tag}" must be 1-6 lower-case letters or digits`);
  const subnet = opts.subnet ?? 40;
  const hostNames = opts.hosts ?? ['hva', 'hvb'];
  const vmPlacement = opts.vms ?? { vm1: hostNames[0]! };
  for (const n of [...hostNames, ...Object.keys(vmPlacement)])
    if (!/^[a-z0-9]{1,6}$/.test(n)) throw new Error(`lab name "${n}" must be 1-6 lower-case letters or digits`);
  const fabric = `cdn-${tag}-fab`;
  const attackerNs = `cdn-${tag}-att`;
  const hosts: Record<string, HostsLabHost> = {};
  const vms: Record<string, HostsLabVm> = {};
  const all = [
    fabric,
    attackerNs,
    ...hostNames.map((h) => `cdn-${tag}-${h}`),
    ...Object.keys(vmPlacement).map((v) => `cdn-${tag}-${v}`),
  ];
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const attacker = { ns: attackerNs, ip: `10.213.${subnet}.200`, mac: `02:00:0a:d5:${hex(subnet)}:c8` };
  for (const ns of all) delNs(ns);
  try {
    for (const ns of all) {
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    ip(['-n', fabric, 'link', 'add', 'fab0', 'type', 'bridge']);
    ip(['-n', fabric, 'link', 'set', 'fab0', 'up']);
    hostNames.forEach((h, i) => {
      const ns = `cdn-${tag}-${h}`;
      ip(['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', ns, 'link', 'set', 'br0', 'up']);
      ip(['link', 'add', 'up0', 'netns', ns, 'type', 'veth', 'peer', 'name', `up${i}`, 'netns', fabric]);
      ip(['-n', ns, 'link', 'set', 'up0', 'master', 'br0', 'up']);
      ip(['-n', fabric, 'link', 'set', `up${i}`, 'master', 'fab0', 'up']);
      hosts[h] = { name: h, ns, bridge: 'br0' };
    });
    ip([
      'link',
      'add',
      'eth0',
      'netns',
      attackerNs,
      'address',
      attacker.mac,
      'type',
      'veth',
      'peer',
      'name',
      'att0',
      'netns',
      fabric,
    ]);
    ip(['-n', fabric, 'link', 'set', 'att0', 'master', 'fab0', 'up']);
    ip(['-n', attackerNs, 'addr', 'add', `${attacker.ip}/24`, 'dev', 'eth0']);
    ip(['-n', attackerNs, 'link', 'set', 'eth0', 'up']);
    Object.entries(vmPlacement).forEach(([name, host], i) => {
      const h = hosts[host];
      if (!h) throw new Error(`VM ${name} is placed on ${host}, which is not a lab host`);
      const ns = `cdn-${tag}-${name}`;
      const n = i + 10;
      const mac = `02:00:0a:d5:${hex(subnet)}:${hex(n)}`;
      const addr = `10.213.${subnet}.${n}`;
      const port = `v-${name}`;
      ip(['link', 'add', 'eth0', 'netns', ns, 'address', mac, 'type', 'veth', 'peer', 'name', port, 'netns', h.ns]);
      ip(['-n', h.ns, 'link', 'set', port, 'master', 'br0']);
      ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      // static neighbours: no ARP in the measurements (a gated VM's ARP would be held too)
      ip(['-n', ns, 'neigh', 'replace', attacker.ip, 'lladdr', attacker.mac, 'dev', 'eth0', 'nud', 'permanent']);
      ip(['-n', attackerNs, 'neigh', 'replace', addr, 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent']);
      vms[name] = { name, ns, ip: addr, mac, port, host, on: false };
    });
  } catch (err) {
    for (const ns of all) delNs(ns);
    throw err;
  }
  const vmOf = (name: string): HostsLabVm => {
    const v = vms[name];
    if (!v) throw new Error(`no VM ${name} in the lab (${Object.keys(vms).join(', ')})`);
    return v;
  };
  return {
    tag,
    hosts,
    vms,
    fabric,
    attacker,
    exec: (ns, args) =>
      execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString(),
    powerOn(name) {
      const v = vmOf(name);
      const before = wallUs();
      ip(['-n', hosts[v.host]!.ns, 'link', 'set', v.port, 'up']);
      v.on = true;
      return before;
    },
    powerOff(name) {
      const v = vmOf(name);
      ip(['-n', hosts[v.host]!.ns, 'link', 'set', v.port, 'down']);
      v.on = false;
      return wallUs();
    },
    migrate(name, to) {
      const v = vmOf(name);
      const dst = hosts[to];
      if (!dst) throw new Error(`no host ${to} in the lab`);
      if (v.host === to) throw new Error(`VM ${name} already runs on ${to}`);
      ip(['-n', hosts[v.host]!.ns, 'link', 'set', v.port, 'netns', dst.ns]);
      // a whole millisecond, as platforms and file times count: the port has left the old
      // bridge before it and joins the new one after it
      const switchover = Math.ceil((wallUs() + 1) / 1000) * 1000;
      while (wallUs() <= switchover) {
        // at most a millisecond
      }
      ip(['-n', dst.ns, 'link', 'set', v.port, 'master', 'br0']);
      if (v.on) ip(['-n', dst.ns, 'link', 'set', v.port, 'up']);
      v.host = to;
      return switchover;
    },
    destroy() {
      for (const ns of all) delNs(ns);
    },
  };
}
