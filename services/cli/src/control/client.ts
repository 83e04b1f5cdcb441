import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { CordonError, type Logger } from '@cordon/runtime';
import { embeddedLockHolder } from '@cordon/store';
import { ERR_CONTROL_PROTOCOL, ERR_CONTROL_UNSAFE_SOCKET, ERR_CONTROL_WAIT_TIMEOUT } from '../errors.js';
import {
  controlSocketPath,
  PROTOCOL_PREFIX,
  type OpEvent,
  type OpInput,
  type OpName,
  type StatusReply,
} from './protocol.js';

/**
 * The client side of the control socket: is an instance running on this data dir, wait while
 * it starts, and send it an operation.
 */

/**
 * Talk only to a socket that the current user owns and nobody else can use: a socket planted
 * by someone else (in a data dir left open to them) would otherwise receive our requests and
 * could answer them with anything.
 */
export function checkSocket(path: string): void {
  const st = lstatSync(path);
  if (!st.isSocket()) throw ERR_CONTROL_UNSAFE_SOCKET(path, 'it is not a socket');
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw ERR_CONTROL_UNSAFE_SOCKET(path, `it belongs to uid ${st.uid}, not to this user (uid ${uid})`);
  if ((st.mode & 0o077) !== 0)
    throw ERR_CONTROL_UNSAFE_SOCKET(path, `its mode is ${(st.mode & 0o777).toString(8)}: others may use it`);
}

/** The instance's status, or null when nothing listens on the socket (a crashed instance's leftover). */
export function controlStatus(path: string, timeoutMs = 3_000): Promise<StatusReply | null> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: path, path: `${PROTOCOL_PREFIX}/status`, method: 'GET', timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as StatusReply;
            if (res.statusCode !== 200 || typeof body.pid !== 'number' || typeof body.state !== 'string')
              throw new Error(`status ${res.statusCode}`);
            resolve(body);
          } catch (err) {
            reject(ERR_CONTROL_PROTOCOL.withCause(err, `GET /status: ${(err as Error).message}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(null);
      else reject(err);
    });
    req.end();
  });
}

function alive(pid: number): boolean {
  if (!(pid > 0) || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live process that holds the data dir's embedded bus or ClickHouse, if any. */
export function dataDirHolder(dataDir: string): number | null {
  const lock = join(dataDir, 'bus', 'LOCK');
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    if (alive(pid)) return pid;
  }
  return embeddedLockHolder(join(dataDir, 'clickhouse'));
}

export type Owner =
  { kind: 'none' } | { kind: 'instance'; socket: string; status: StatusReply } | { kind: 'holder'; pid: number };

export async function dataDirOwner(dataDir: string): Promise<Owner> {
  const socket = controlSocketPath(dataDir);
  if (existsSync(socket)) {
    checkSocket(socket);
    const status = await controlStatus(socket);
    if (status) return { kind: 'instance', socket, status };
  }
  const pid = dataDirHolder(dataDir);
  return pid === null ? { kind: 'none' } : { kind: 'holder', pid };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The socket of the instance that runs on `dataDir` once it is ready, or null when nothing
 * holds the data dir (the command then opens it itself). An instance that is starting, or a
 * process that holds the data dir for a moment (another command), is waited for up to
 * `waitMs`; after that the error names the process and what to do.
 */
export async function awaitInstance(dataDir: string, waitMs: number, log: Logger): Promise<string | null> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const owner = await dataDirOwner(dataDir);
    if (owner.kind === 'none') return null;
    if (owner.kind === 'instance' && owner.status.state === 'ready') return owner.socket;
    const pid = owner.kind === 'instance' ? owner.status.pid : owner.pid;
    const state = owner.kind === 'instance' ? owner.status.state : 'holding it';
    if (Date.now() >= deadline) throw ERR_CONTROL_WAIT_TIMEOUT(dataDir, pid, Math.round(waitMs / 1000), state);
    if (!told) {
      log.info(
        { pid, dataDir, state, waitS: Math.round(waitMs / 1000) },
        owner.kind === 'instance'
          ? 'Cordon is starting on this data dir: waiting for it.'
          : 'Another cordon process holds this data dir: waiting for it.',
      );
      told = true;
    }
    await sleep(250);
  }
}

/**
 * Send one operation; `onEvent` gets every event line but the last, which is returned (done)
 * or thrown (error, with its code). Aborting the signal closes the connection, which the
 * instance takes as the end of the request.
 */
export function callOp<N extends OpName>(
  socket: string,
  name: N,
  input: OpInput<N>,
  onEvent: (ev: OpEvent) => void,
  signal?: AbortSignal,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    checkSocket(socket);
    const body = Buffer.from(JSON.stringify(input));
    let settled = false;
    const finish = (fn: () => void) => {
      if (!settled) {
        settled = true;
        fn();
      }
    };
    const req = request(
      {
        socketPath: socket,
        path: `${PROTOCOL_PREFIX}/op/${name}`,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': body.length },
        ...(signal ? { signal } : {}),
      },
      (res) => {
        let buf = '';
        const line = (text: string) => {
          if (!text.trim()) return;
          let ev: OpEvent;
          try {
            ev = JSON.parse(text) as OpEvent;
          } catch (err) {
            finish(() => reject(ERR_CONTROL_PROTOCOL.withCause(err, `a line that is not JSON: ${text.slice(0, 80)}`)));
            return;
          }
          if ('done' in ev) finish(() => resolve(ev.done));
          else if ('error' in ev) finish(() => reject(new CordonError(ev.error.code, ev.error.message)));
          else onEvent(ev);
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            line(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
          }
        });
        res.on('end', () => {
          line(buf);
          finish(() =>
            signal?.aborted
              ? resolve(null)
              : reject(ERR_CONTROL_PROTOCOL(`the response ended without a result (HTTP ${res.statusCode})`)),
          );
        });
        res.on('error', (err) => finish(() => (signal?.aborted ? resolve(null) : reject(err))));
      },
    );
    req.on('error', (err) => finish(() => (signal?.aborted ? resolve(null) : reject(err))));
    req.end(body);
  });
}
