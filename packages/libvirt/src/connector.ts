/**
 * The libvirt PlatformConnector: one sidecar process per libvirt URI (one connection each),
 * restarted with capped, jittered exponential backoff whenever it ends — a libvirtd restart, a
 * network cut and a crashed or misbehaving sidecar all look the same from here, and all end
 * in a resync. Handlers run one at a time, in order, across all hosts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { childContext, createContext, describeError, serialized, type Context } from '@cordon/runtime';
import { z } from 'zod';
import { ERR_LIBVIRT_CONFIG, ERR_LIBVIRT_PROTOCOL, ERR_LIBVIRT_TIMEOUT } from './errors.js';
import { hostIdFor, powerOf, powerOfListed, toPlatformVm } from './normalize.js';
import type {
  ConnectorCursor,
  ConnectorHandlers,
  PlatformConnector,
  PlatformHost,
  PlatformState,
  PlatformVm,
} from '@cordon/platform';
import { DEFAULT_MAX_LINE_BYTES, type SidecarEventMessage, type SidecarSyncMessage } from './protocol.js';
import { checkSidecar, DEFAULT_SIDECAR_PATH, Sidecar } from './sidecar.js';
import { Tracker, type RawEvent } from './tracker.js';

const optionsSchema = z
  .object({
    /** libvirt URIs, one per host: qemu:///system, qemu+ssh://user@host/system, qemu+tcp://host/system. */
    uris: z.array(z.string().min(1)).min(1),
    sidecarPath: z.string().min(1).default(DEFAULT_SIDECAR_PATH),
    backoff: z
      .object({
        initialMs: z.number().int().min(1).default(500),
        maxMs: z.number().int().min(1).default(30_000),
        factor: z.number().min(1).default(2),
      })
      .strict()
      .default({}),
    /** How often the sidecar pings libvirt to notice a silently dead connection. */
    pingSeconds: z.number().int().min(1).max(3600).default(15),
    maxLineBytes: z.number().int().min(1024).default(DEFAULT_MAX_LINE_BYTES),
    snapshotTimeoutMs: z.number().int().min(1).default(30_000),
  })
  .strict();

export type LibvirtConnectorOptions = z.input<typeof optionsSchema> & {
  ctx?: Context;
  /** [0,1) source for the backoff jitter; tests pass a fixed one. */
  random?: () => number;
};
type Resolved = z.output<typeof optionsSchema>;

/** Parses options once, at the edge: unknown keys and bad values are errors that name the key. */
export function parseLibvirtOptions(input: unknown): Resolved {
  const r = optionsSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const key = i?.path.join('.') || 'options';
    const what =
      i?.code === 'unrecognized_keys'
        ? `unknown option ${i.keys.map((k) => `"${k}"`).join(', ')}`
        : `${key}: ${i?.message ?? 'invalid'}`;
    throw ERR_LIBVIRT_CONFIG(what);
  }
  for (const u of r.data.uris) {
    if (!/^[a-z][a-z0-9+]*:\/\//.test(u))
      throw ERR_LIBVIRT_CONFIG(`"${redactUri(u)}" is not a libvirt URI (qemu:///system, qemu+ssh://host/system, …)`);
  }
  return r.data;
}

/**
 * A connector from Cordon's source URL(s): "libvirt+qemu:///system", "libvirt+qemu+ssh://kvm1/system".
 * Several URLs: several hosts, one connection each.
 */
export function fromUrl(url: string | string[], opts: Omit<LibvirtConnectorOptions, 'uris'> = {}): LibvirtConnector {
  const urls = Array.isArray(url) ? url : [url];
  const uris = urls.map((u) => {
    if (!u.startsWith('libvirt+'))
      throw ERR_LIBVIRT_CONFIG(`"${redactUri(u)}" does not start with "libvirt+" (e.g. libvirt+qemu:///system)`);
    return u.slice('libvirt+'.length);
  });
  return new LibvirtConnector({ ...opts, uris });
}

/** A URI without the password of its user info or query parameters that look like secrets. */
export function redactUri(uri: string): string {
  try {
    const u = new URL(uri);
    u.password = '';
    for (const k of [...u.searchParams.keys()]) if (/pass|secret|token/i.test(k)) u.searchParams.set(k, 'redacted');
    return u.toString();
  } catch {
    return uri.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1@');
  }
}

interface HostSession {
  uri: string;
  source: string;
  hostId: string | null;
  connected: boolean;
  /** The latest known domains of this host (kept while disconnected: last known state). */
  vms: Map<string, PlatformVm> | null;
}

/** A handler threw: run() stops and rejects with the handler's own error. */
class HandlerFailure extends Error {
  constructor(readonly original: unknown) {
    super('handler failed');
  }
}

export class LibvirtConnector implements PlatformConnector {
  readonly kind = 'libvirt' as const;
  readonly source: string;
  private readonly opts: Resolved;
  private readonly ctx: Context;
  private readonly random: () => number;
  private running: { abort: AbortController; sidecars: Set<Sidecar>; done: Promise<void> } | null = null;

  constructor(options: LibvirtConnectorOptions) {
    const { ctx, random, ...rest } = options;
    this.opts = parseLibvirtOptions(rest);
    this.ctx = childContext(ctx ?? createContext(), 'libvirt');
    this.random = random ?? Math.random;
    this.source = this.opts.uris.map((u) => `libvirt+${redactUri(u)}`).join(',');
  }

  /** The backoff before restart number `attempt` (0-based): exponential, capped, half of it jittered. */
  backoffMs(attempt: number): number {
    const { initialMs, maxMs, factor } = this.opts.backoff;
    const full = Math.min(maxMs, initialMs * factor ** Math.min(attempt, 64));
    return Math.round(full / 2 + (this.random() * full) / 2);
  }

  async run(handlers: ConnectorHandlers, from?: ConnectorCursor): Promise<void> {
    if (this.running) throw ERR_LIBVIRT_CONFIG('run() is already running; stop() it first');
    checkSidecar(this.opts.sidecarPath);
    const tracker = Tracker.fromCursor(from, this.opts.uris.length > 1);
    const sessions: HostSession[] = this.opts.uris.map((uri) => ({
      uri,
      source: `libvirt+${redactUri(uri)}`,
      hostId: null,
      connected: false,
      vms: null,
    }));
    const abort = new AbortController();
    const sidecars = new Set<Sidecar>();
    const queue = serialized();
    let failure: HandlerFailure | null = null;
    const call = async (fn: () => void | Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        throw new HandlerFailure(err);
      }
    };
    const stopAll = (): void => {
      abort.abort();
      for (const s of sidecars) void s.stop();
    };

    const follow = async (session: HostSession): Promise<void> => {
      let attempt = 0;
      while (!abort.signal.aborted) {
        const sidecar = new Sidecar({
          path: this.opts.sidecarPath,
          uri: session.uri,
          source: session.source,
          follow: true,
          pingSeconds: this.opts.pingSeconds,
          maxLineBytes: this.opts.maxLineBytes,
        });
        sidecars.add(sidecar);
        let error: { code: string; message: string } | undefined;
        let sawHost = false;
        try {
          for await (const msg of sidecar.messages()) {
            if (abort.signal.aborted) break;
            this.ctx.metrics.inc('received');
            if (msg.t !== 'host' && !sawHost)
              throw ERR_LIBVIRT_PROTOCOL(session.source, `a "${msg.t}" message came before the "host" message`);
            if (msg.t === 'host') {
              sawHost = true;
              session.hostId = hostIdFor(session.uri, msg.hostname);
            } else if (msg.t === 'sync') {
              await queue(() => this.deliverSync(session, sessions, msg, tracker, handlers, call));
              attempt = 0;
            } else if (msg.t === 'event') {
              await queue(() => this.deliverEvent(session, sessions, msg, tracker, handlers, call));
            }
          }
        } catch (err) {
          if (err instanceof HandlerFailure) {
            failure ??= err;
            stopAll();
          } else {
            error = describeError(err);
          }
        } finally {
          sidecars.delete(sidecar);
          await sidecar.stop();
        }
        if (abort.signal.aborted) break;
        error ??= {
          code: 'CORDON_ERR_LIBVIRT_SIDECAR_EXIT',
          message: `the libvirt sidecar for ${session.source} ended`,
        };
        this.ctx.metrics.inc('errors');
        this.ctx.metrics.inc('restarts');
        const delay = this.backoffMs(attempt++);
        this.ctx.log.warn({ source: session.source, code: error.code, retryInMs: delay }, `${error.message}`);
        try {
          await queue(async () => {
            const wasConnected = session.connected;
            session.connected = false;
            if (wasConnected && session.hostId) await call(() => handlers.onHost(hostView(session)));
            handlers.onStatus?.({ connected: false, error });
          });
        } catch (err) {
          if (err instanceof HandlerFailure) {
            failure ??= err;
            stopAll();
            break;
          }
          throw err;
        }
        try {
          await sleep(delay, undefined, { signal: abort.signal });
        } catch {
          break; // stopped
        }
      }
    };

    const done = Promise.all(sessions.map((s) => follow(s))).then(() => undefined);
    this.running = { abort, sidecars, done };
    try {
      await done;
    } finally {
      this.running = null;
    }
    if (failure) throw (failure as HandlerFailure).original;
  }

  async stop(): Promise<void> {
    const r = this.running;
    if (!r) return;
    r.abort.abort();
    await Promise.all([...r.sidecars].map((s) => s.stop()));
    await r.done.catch(() => undefined);
  }

  async snapshot(): Promise<PlatformState> {
    checkSidecar(this.opts.sidecarPath);
    const results = await Promise.all(
      this.opts.uris.map(async (uri) => {
        const source = `libvirt+${redactUri(uri)}`;
        const sidecar = new Sidecar({
          path: this.opts.sidecarPath,
          uri,
          source,
          follow: false,
          pingSeconds: this.opts.pingSeconds,
          maxLineBytes: this.opts.maxLineBytes,
        });
        const timer = setTimeout(() => void sidecar.stop(0), this.opts.snapshotTimeoutMs);
        try {
          let hostId: string | null = null;
          let sync: SidecarSyncMessage | null = null;
          for await (const msg of sidecar.messages()) {
            if (msg.t === 'host') hostId = hostIdFor(uri, msg.hostname);
            else if (msg.t === 'sync') sync = msg;
          }
          if (!hostId || !sync) throw ERR_LIBVIRT_TIMEOUT(source, this.opts.snapshotTimeoutMs);
          const host: PlatformHost = { id: hostId, name: hostId, cluster: null, connection: 'connected' };
          return { host, vms: sync.domains.map((d) => toPlatformVm(hostId as string, d)) };
        } finally {
          clearTimeout(timer);
          await sidecar.stop();
        }
      }),
    );
    const sessions: HostSession[] = results.map((r, i) => ({
      uri: this.opts.uris[i] as string,
      source: '',
      hostId: r.host.id,
      connected: true,
      vms: new Map(r.vms.map((v) => [v.id, v])),
    }));
    return mergedState(sessions, null);
  }

  private async deliverSync(
    session: HostSession,
    sessions: HostSession[],
    msg: SidecarSyncMessage,
    tracker: Tracker,
    h: ConnectorHandlers,
    call: (fn: () => void | Promise<void>) => Promise<void>,
  ): Promise<void> {
    const hostId = session.hostId as string;
    session.vms = new Map(msg.domains.map((d) => [d.uuid, toPlatformVm(hostId, d)]));
    session.connected = true;
    const elsewhere = (uuid: string): boolean =>
      sessions.some((s) => s !== session && s.hostId !== hostId && s.vms?.has(uuid) === true);
    const derived = tracker.resync(
      hostId,
      msg.domains.map((d) => ({ uuid: d.uuid, name: d.name, power: powerOfListed(d.state, d.reason) })),
      msg.ts,
      elsewhere,
    );
    await call(() => h.onHost(hostView(session)));
    await call(() => h.onSync(mergedState(sessions, tracker)));
    for (const d of derived) {
      await call(() => h.onEvent(d.event, d.cursor));
      this.ctx.metrics.inc('sent');
    }
    this.ctx.log.info(
      { source: session.source, host: hostId, domains: msg.domains.length, synthesized: derived.length },
      'libvirt host synced',
    );
    h.onStatus?.({ connected: true });
  }

  private async deliverEvent(
    session: HostSession,
    sessions: HostSession[],
    msg: SidecarEventMessage,
    tracker: Tracker,
    h: ConnectorHandlers,
    call: (fn: () => void | Promise<void>) => Promise<void>,
  ): Promise<void> {
    const hostId = session.hostId as string;
    const raw: RawEvent = { ts: msg.ts, uuid: msg.uuid, name: msg.name, event: msg.event, detail: msg.detail };
    if (msg.dom === null) raw.after = null;
    else if (msg.dom)
      raw.after = {
        power: powerOf(msg.dom.state),
        state: msg.dom.state,
        reason: msg.dom.reason,
        persistent: msg.dom.persistent,
        snapshot: msg.dom.snapshot ?? null,
      };
    const derived = tracker.apply(hostId, raw);
    const owner = tracker.hostOf(msg.uuid);
    if (msg.dom) {
      const vm = toPlatformVm(hostId, msg.dom);
      session.vms?.set(vm.id, vm);
      if (owner === null || owner === hostId) await call(() => h.onVm(vm));
    } else if (msg.dom === null) {
      const had = session.vms?.delete(msg.uuid) ?? false;
      if (had && !sessions.some((s) => s.vms?.has(msg.uuid))) await call(() => h.onVmRemoved(msg.uuid));
    }
    for (const d of derived) {
      await call(() => h.onEvent(d.event, d.cursor));
      this.ctx.metrics.inc('sent');
    }
  }
}

function hostView(s: HostSession): PlatformHost {
  const id = s.hostId as string;
  return { id, name: id, cluster: null, connection: s.connected ? 'connected' : 'disconnected' };
}

/**
 * All hosts' domains as one state. A domain listed by two hosts (defined on both, e.g. after a
 * migration without --undefinesource) is reported once: where the tracker places it, else
 * where it is active, else the first host that lists it.
 */
function mergedState(sessions: HostSession[], tracker: Tracker | null): PlatformState {
  const hosts = sessions.filter((s) => s.hostId !== null).map(hostView);
  const vms = new Map<string, PlatformVm>();
  for (const s of sessions) {
    for (const vm of s.vms?.values() ?? []) {
      const prev = vms.get(vm.id);
      if (!prev) {
        vms.set(vm.id, vm);
        continue;
      }
      const owner = tracker?.hostOf(vm.id) ?? null;
      if (owner === vm.host || (owner !== prev.host && prev.power === 'off' && vm.power !== 'off')) vms.set(vm.id, vm);
    }
  }
  return { hosts, vms: [...vms.values()] };
}
