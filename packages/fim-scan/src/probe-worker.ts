/** A hashing worker thread: probes batches of paths synchronously (see probe.ts, pool.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { createProber, type ProbeOptions, type ProbeRequest } from './probe.js';

const prober = createProber(workerData as ProbeOptions);
parentPort!.on('message', (msg: { id: number; reqs: ProbeRequest[] }) => {
  parentPort!.postMessage({ id: msg.id, results: msg.reqs.map((r) => prober.probe(r)) });
});
