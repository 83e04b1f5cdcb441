import { FimProber } from '@cordon/native';
import { ERR_FIM_WORKER } from './errors.js';
import {
  decodeProbeBatch,
  prevArray,
  splitBadPaths,
  type ProbeOptions,
  type ProbeRequest,
  type ProbeResult,
} from './probe.js';

/**
 * The hashing threads: native ones in the host addon (see native/capture/src/fim.rs for why),
 * `size` of them, taking batches in order. A batch is one call and one result of arrays; the
 * event loop stays free while they run, and a pending batch keeps the process alive.
 */
export interface ProbePool {
  probe(reqs: ProbeRequest[]): Promise<ProbeResult[]>;
  close(): Promise<void>;
}

export function createProbePool(size: number, opts: Omit<ProbeOptions, 'onChunk'>): ProbePool {
  let native: FimProber | null = null;
  let closed = false;
  return {
    async probe(reqs: ProbeRequest[]): Promise<ProbeResult[]> {
      if (closed) throw ERR_FIM_WORKER('the pool is closed');
      const { rest, bad } = splitBadPaths(reqs);
      let res: ProbeResult[];
      try {
        native ??= FimProber.open({
          threads: size,
          hash: opts.hash,
          maxHashBytes: opts.maxHashBytes,
          trustStat: opts.trustStat,
          attempts: opts.attempts,
        });
        const b = await native.probe(
          rest.map((r) => r.path),
          opts.trustStat ? prevArray(rest) : undefined,
        );
        res = decodeProbeBatch(rest, b, opts);
      } catch (err) {
        throw ERR_FIM_WORKER.withCause(err, (err as Error).message);
      }
      if (!bad) return res;
      const out: ProbeResult[] = [];
      for (let i = 0, j = 0; i < reqs.length; i++) out.push(bad.get(i) ?? res[j++]!);
      return out;
    },
    async close(): Promise<void> {
      closed = true;
      native?.close();
      native = null;
    },
  };
}
