/**
 * The vSphere simulator for integration tests (infra/vcsim): one per test, with its own name,
 * port and CA, stopped when the test ends; the driver acts on it as an administrator would.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = `${ROOT}infra/vcsim/bin`;

/** Why the simulator cannot run here, or null when it can. */
export function skipReason(): string | null {
  if (!existsSync(`${BIN}/vcsim`) || !existsSync(`${BIN}/vcsim-driver`)) {
    let go = false;
    try {
      execFileSync('go', ['version'], { stdio: 'ignore' });
      go = true;
    } catch {
      // no Go
    }
    return go
      ? 'infra/vcsim/bin is not built: run infra/vcsim/build.sh (scripts/setup.sh does with CORDON_SETUP_TEST=1)'
      : 'Go is not installed and infra/vcsim/bin is not built: the vSphere simulator cannot run';
  }
  return null;
}

export interface VmRow {
  instanceUuid: string;
  name: string;
  moref: string;
  host: string;
  hostName: string;
  power: 'poweredOn' | 'poweredOff' | 'suspended';
  template: boolean;
}
export interface HostRow {
  moref: string;
  name: string;
  parent: string;
  parentType: string;
  connection: string;
  maintenance: boolean;
}

export interface Sim {
  url: string;
  ca: string;
  username: string;
  password: string;
  driver<T = Record<string, unknown>>(...args: string[]): Promise<T>;
  list(): Promise<VmRow[]>;
  hosts(): Promise<HostRow[]>;
}

let counter = 0;

/** Start a simulator for this test; it is stopped when the test ends, pass or fail. */
export async function startSim(t: TestContext, args: string[]): Promise<Sim> {
  const name = `test-${process.pid}-${++counter}`;
  const env = { ...process.env, VCSIM_NAME: name };
  t.after(async () => {
    await run('bash', [`${ROOT}infra/vcsim/stop.sh`], { env }).catch(() => undefined);
  });
  const { stdout } = await run('bash', [`${ROOT}infra/vcsim/start.sh`, ...args], { env, timeout: 180_000 });
  const vars = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const denv = {
    ...process.env,
    VCSIM_URL: vars.VCSIM_URL,
    VCSIM_CA: vars.VCSIM_CA,
    VCSIM_USERNAME: vars.VCSIM_USERNAME,
    VCSIM_PASSWORD: vars.VCSIM_PASSWORD,
  };
  const driver = async <T>(...a: string[]): Promise<T> => {
    const { stdout: out } = await run(`${BIN}/vcsim-driver`, a, { env: denv, timeout: 120_000, maxBuffer: 64 << 20 });
    return JSON.parse(out) as T;
  };
  return {
    url: vars.VCSIM_URL!,
    ca: vars.VCSIM_CA!,
    username: vars.VCSIM_USERNAME!,
    password: vars.VCSIM_PASSWORD!,
    driver,
    list: () => driver<VmRow[]>('list'),
    hosts: () => driver<HostRow[]>('hosts'),
  };
}
