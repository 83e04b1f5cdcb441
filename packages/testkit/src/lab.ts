/**
 * A hypervisor host in a box: a "host" network namespace holding a Linux bridge (the host's
 * virtual switch) and VM namespaces on veth pairs enslaved to it — a web-server victim, an
 * attacker and a bystander by default. Everything is created in namespaces the lab owns and
 * removed by `destroy()`; the 10.213.x addresses exist only inside them, so no packet leaves.
 * Needs root (see `canUseNetns`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export interface LabVm {
  name: string;
  /** Its network namespace. */
  ns: string;
  ip: string;
  mac: string;
  /** The bridge port (host side of its veth). */
  port: string;
}

export interface Lab {
  /** The host namespace, where the bridge and the watchdog's nft table live. */
  host: string;
  bridge: string;
  vms: Record<string, LabVm>;
  exec(ns: string, args: string[]): string;
  /** A TCP server in `vm` that answers "hi" to each connection; resolves once it listens. */
  listen(vm: string, port: number): Promise<ChildProcess>;
  /** Can `from` open a TCP connection to `to`:port and read the greeting within the timeout? */
  canConnect(from: string, to: string, port: number, timeoutMs?: number): Promise<boolean>;
  destroy(): void;
}

export interface LabOptions {
  /** Short, unique per test run: namespace names derive from it. */
  tag: string;
  /** VM names; default web (victim), attacker, bystander. Up to 200. */
  vms?: string[];
  /** Third octet of the lab subnet 10.213.<subnet>.0/24. */
  subnet?: number;
}

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function delNs(ns: string): void {
  try {
    ip(['netns', 'del', ns]);
  } catch {
    // not there: fine
  }
}

export function makeLab(opts: LabOptions): Lab {
  const { tag } = opts;
  if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new Error(`lab tag "${tag}" must be 1-8 lower-case letters or digits`);
  const subnet = opts.subnet ?? 7;
  const names = opts.vms ?? ['web', 'attacker', 'bystander'];
  const host = `cdn-${tag}-hv`;
  const bridge = 'br0';
  const vms: Record<string, LabVm> = {};
  const all = [host, ...names.map((n) => `cdn-${tag}-${n}`)];
  for (const ns of all) delNs(ns);
  try {
    for (const ns of all) {
      ip(['netns', 'add', ns]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    ip(['-n', host, 'link', 'add', bridge, 'type', 'bridge']);
    ip(['-n', host, 'link', 'set', bridge, 'up']);
    names.forEach((name, i) => {
      const n = i + 10;
      const ns = `cdn-${tag}-${name}`;
      const port = `vnet${i}`;
      const mac = `02:00:0a:d5:${subnet.toString(16).padStart(2, '0')}:${n.toString(16).padStart(2, '0')}`;
      const addr = `10.213.${subnet}.${n}`;
      // created directly inside the namespaces: no interface ever exists in the caller's
      ip(['link', 'add', 'eth0', 'netns', ns, 'address', mac, 'type', 'veth', 'peer', 'name', port, 'netns', host]);
      ip(['-n', host, 'link', 'set', port, 'master', bridge]);
      ip(['-n', host, 'link', 'set', port, 'up']);
      ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      vms[name] = { name, ns, ip: addr, mac, port };
    });
  } catch (err) {
    for (const ns of all) delNs(ns);
    throw err;
  }
  const vm = (name: string): LabVm => {
    const v = vms[name];
    if (!v) throw new Error(`no VM ${name} in the lab (${Object.keys(vms).join(', ')})`);
    return v;
  };
  return {
    host,
    bridge,
    vms,
    exec: (ns, args) =>
      execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString(),
    async listen(name, port) {
      const v = vm(name);
      const code = `require('net').createServer((s) => s.end('hi')).listen(${port}, '${v.ip}', () => console.log('listening'))`;
      const child = spawn('ip', ['netns', 'exec', v.ns, process.execPath, '-e', code], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await Promise.race([
        once(child.stdout!, 'data'),
        once(child, 'exit').then(([c]) => {
          throw new Error(`the server in ${name} exited (${String(c)})`);
        }),
      ]);
      return child;
    },
    canConnect(from, to, port, timeoutMs = 1500) {
      const src = vm(from);
      const dst = vm(to);
      const code = `const s = require('net').connect(${port}, '${dst.ip}'); s.setTimeout(${timeoutMs}, () => process.exit(2)); s.on('data', () => process.exit(0)); s.on('error', () => process.exit(1));`;
      return new Promise((resolve) => {
        const c = spawn('ip', ['netns', 'exec', src.ns, process.execPath, '-e', code], { stdio: 'ignore' });
        c.on('exit', (status) => resolve(status === 0));
      });
    },
    destroy: () => {
      for (const ns of all) delNs(ns);
    },
  };
}
