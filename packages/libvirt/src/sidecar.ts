/**
 * One sidecar process serving one libvirt URI: spawned, handed its configuration on stdin,
 * read line by line (bounded, validated) until it ends. The process is the only thing that
 * touches libvirt; everything it says is checked before the connector believes it.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import type { CordonError } from '@cordon/runtime';
import {
  ERR_LIBVIRT_CONNECT,
  ERR_LIBVIRT_DISCONNECTED,
  ERR_LIBVIRT_PROTOCOL,
  ERR_LIBVIRT_SIDECAR_EXIT,
  ERR_LIBVIRT_SIDECAR_MISSING,
} from './errors.js';
import { LineSplitter, parseMessage, ProtocolViolation, type SidecarMessage } from './protocol.js';

/** Where build.sh puts the sidecar, relative to this module (dist/src/sidecar.js). */
export const DEFAULT_SIDECAR_PATH = fileURLToPath(new URL('../../bin/cordon-libvirt-sidecar', import.meta.url));
const STDERR_KEEP = 4096;

export interface SidecarOptions {
  path: string;
  /** The libvirt URI (without "libvirt+"). Sent on stdin, never on the command line. */
  uri: string;
  /** The URI without credentials, for messages. */
  source: string;
  follow: boolean;
  pingSeconds: number;
  maxLineBytes: number;
}

export function checkSidecar(path: string): void {
  try {
    accessSync(path, constants.X_OK);
  } catch (err) {
    throw ERR_LIBVIRT_SIDECAR_MISSING.withCause(err, path);
  }
}

export class Sidecar {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrTail = '';
  private spawnError: Error | null = null;
  private killed = false;

  constructor(private readonly opts: SidecarOptions) {
    this.child = spawn(opts.path, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => resolve({ code, signal }));
      // A process that could not be spawned may never emit 'close'.
      this.child.once('error', (err) => {
        this.spawnError = err;
        if (this.child.pid === undefined) resolve({ code: null, signal: null });
      });
    });
    this.child.stderr.on('data', (b: Buffer) => {
      this.stderrTail = (this.stderrTail + b.toString('utf8')).slice(-STDERR_KEEP);
    });
    // A sidecar that exits before reading its configuration makes this write fail: the exit
    // itself is what gets reported.
    this.child.stdin.on('error', () => undefined);
    this.child.stdin.write(
      `${JSON.stringify({ uri: opts.uri, follow: opts.follow, pingSeconds: opts.pingSeconds })}\n`,
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * The sidecar's messages, in order, until it ends. `error` and `disconnected` messages are not
   * yielded: they end the iteration with the matching coded error, as does any protocol
   * violation (after which the process is killed). A clean end (follow=false) just returns.
   */
  async *messages(): AsyncGenerator<SidecarMessage, void, undefined> {
    const splitter = new LineSplitter(this.opts.maxLineBytes);
    let ending: CordonError | null = null;
    try {
      for await (const chunk of this.child.stdout as AsyncIterable<Buffer>) {
        for (const line of splitter.push(chunk)) {
          const msg = parseMessage(line);
          if (msg.t === 'error') {
            ending =
              msg.code === 'connect'
                ? ERR_LIBVIRT_CONNECT(this.opts.source, msg.message)
                : ERR_LIBVIRT_SIDECAR_EXIT(this.opts.source, `${msg.code}: ${msg.message}`);
          } else if (msg.t === 'disconnected') {
            ending = ERR_LIBVIRT_DISCONNECTED(this.opts.source, msg.message);
          } else if (ending === null) {
            yield msg;
          }
        }
      }
    } catch (err) {
      this.kill();
      if (err instanceof ProtocolViolation) throw ERR_LIBVIRT_PROTOCOL.withCause(err, this.opts.source, err.message);
      throw err;
    }
    const { code, signal } = await this.exited;
    if (ending) throw ending;
    if (this.spawnError)
      throw ERR_LIBVIRT_SIDECAR_EXIT.withCause(this.spawnError, this.opts.source, this.spawnError.message);
    if (splitter.rest > 0)
      throw ERR_LIBVIRT_PROTOCOL(this.opts.source, `it ended in the middle of a line (${splitter.rest} bytes)`);
    if (code !== 0 && !this.killed) {
      const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
      throw ERR_LIBVIRT_SIDECAR_EXIT(this.opts.source, `exit ${code ?? signal}${tail ? `: ${tail}` : ''}`);
    }
  }

  /** Ends the process: stdin closes (it exits by itself), SIGKILL after `graceMs`. */
  async stop(graceMs = 2000): Promise<void> {
    this.killed = true;
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private kill(): void {
    this.killed = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
