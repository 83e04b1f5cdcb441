import { Worker } from 'node:worker_threads';
import { ERR_FIM_WORKER } from './errors.js';
import type { ProbeOptions, ProbeRequest, ProbeResult } from './probe.js';

/**
 * A small pool of hashing threads. Why threads and sync calls: a full check is ~6 syscalls
 * per file (lstat, open, fstat, read, close, lstat); through libuv's async fs each one is a
 * round trip to its thread pool plus a promise, several times the syscall itself for small
 * files. A worker issuing them synchronously in a batch of paths is what lets a check of a
 * 100k-file tree keep up with AIDE's C loop, and it keeps the agent's event loop free.
 */
export interface ProbePool {
  probe(reqs: ProbeRequest[]): Promise<ProbeResult[]>;
  close(): Promise<void>;
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (r: ProbeResult[]) => void; reject: (e: Error) => void }>;
}

const WORKER_URL = new URL('./probe-worker.js', import.meta.url);

export function createProbePool(size: number, opts: Omit<ProbeOptions, 'onChunk'>): ProbePool {
  const slots: Slot[] = [];
  let nextId = 0;
  let closed = false;

  const spawn = (): Slot => {
    const worker = new Worker(WORKER_URL, { workerData: opts, execArgv: [] }); // the host's flags (--eval, --input-type…) are not the worker's
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (m: { id: number; results: ProbeResult[] }) => {
      const p = slot.pending.get(m.id);
      slot.pending.delete(m.id);
      p?.resolve(m.results);
    });
    const fail = (detail: string) => {
      const err = ERR_FIM_WORKER(detail);
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      // A dead worker is replaced on the next request; the scan that lost it fails and is retried.
      const i = slots.indexOf(slot);
      if (i >= 0) slots.splice(i, 1);
    };
    worker.on('error', (err) => fail(err.message));
    worker.on('exit', (code) => {
      if (!closed) fail(`exited with code ${code}`);
    });
    worker.unref(); // an idle pool must not keep the process alive
    return slot;
  };

  return {
    probe(reqs: ProbeRequest[]): Promise<ProbeResult[]> {
      if (closed) return Promise.reject(ERR_FIM_WORKER('the pool is closed'));
      while (slots.length < size) slots.push(spawn());
      // least busy worker: batches are similar in size, so pending count is a fair load measure
      let slot = slots[0]!;
      for (const s of slots) if (s.pending.size < slot.pending.size) slot = s;
      const id = nextId++;
      return new Promise((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.worker.ref(); // keep the process alive while work is outstanding
        slot.worker.postMessage({ id, reqs });
      }).finally(() => {
        if (slot.pending.size === 0) slot.worker.unref();
      }) as Promise<ProbeResult[]>;
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.all(slots.splice(0).map((s) => s.worker.terminate()));
    },
  };
}
