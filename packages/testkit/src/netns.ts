/**
 * Two network namespaces joined by a veth pair — an attacker and a guest VM — created and
 * removed by the test itself. Nothing leaves them: 10.213.x addresses exist only inside.
 * Needs root; `canUseNetns()` says whether the tests can run (they skip cleanly otherwise).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export function canUseNetns(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and nftables)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 and nftables (scripts/setup.sh installs them)';
  }
  return null;
}

export interface Pair {
  vm: string;
  attacker: string;
  vmIp: string;
  attackerIp: string;
  exec(ns: string, args: string[]): string;
  /** Can the attacker open a TCP connection to the VM's port? */
  canConnect(port: number, timeoutMs?: number): Promise<boolean>;
  listen(port: number): ChildProcess;
  destroy(): void;
}

export function makePair(tag: string): Pair {
  const vm = `cdn-${tag}-vm`;
  const attacker = `cdn-${tag}-at`;
  const run = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  for (const ns of [vm, attacker]) {
    try {
      run(['netns', 'del', ns]);
    } catch {
      // not there: fine
    }
    run(['netns', 'add', ns]);
    run(['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  run(['link', 'add', `${tag}v0`, 'netns', vm, 'type', 'veth', 'peer', 'name', `${tag}a0`, 'netns', attacker]);
  run(['-n', vm, 'addr', 'add', '10.213.0.2/24', 'dev', `${tag}v0`]);
  run(['-n', attacker, 'addr', 'add', '10.213.0.66/24', 'dev', `${tag}a0`]);
  run(['-n', vm, 'link', 'set', `${tag}v0`, 'up']);
  run(['-n', attacker, 'link', 'set', `${tag}a0`, 'up']);
  const pair: Pair = {
    vm,
    attacker,
    vmIp: '10.213.0.2',
    attackerIp: '10.213.0.66',
    exec: (ns, args) =>
      execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString(),
    listen: (port) =>
      spawn(
        'ip',
        [
          'netns',
          'exec',
          vm,
          process.execPath,
          '-e',
          `require('net').createServer((s) => s.end('hi')).listen(${port}, '10.213.0.2')`,
        ],
        { stdio: 'ignore' },
      ),
    canConnect: (port, timeoutMs = 1500) =>
      new Promise((resolve) => {
        const code = `const s = require('net').connect(${port}, '10.213.0.2'); s.setTimeout(${timeoutMs}, () => process.exit(2)); s.on('data', () => process.exit(0)); s.on('error', () => process.exit(1));`;
        const c = spawn('ip', ['netns', 'exec', attacker, process.execPath, '-e', code], { stdio: 'ignore' });
        c.on('exit', (status) => resolve(status === 0));
      }),
    destroy: () => {
      for (const ns of [vm, attacker]) {
        try {
          run(['netns', 'del', ns]);
        } catch {
          // already gone
        }
      }
    },
  };
  return pair;
}
