import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Metrics } from '@cordon/runtime';

/** One partition's distance behind the end of its topic. */
export interface LagSample {
  stage: string;
  topic: string;
  partition: number;
  lag: number;
}

export type LagSource = () => Promise<LagSample[]>;

/** What the runtime counts for one stage. */
export interface StageCounters {
  records(topic: string, outcome: 'in' | 'out' | 'dlq', n: number): void;
  error(code: string): void;
  batch(seconds: number): void;
}

/** Counters every stage keeps in its context (for tests and logs), exported under the stage series instead. */
const STAGE_COUNTS = new Set(['received', 'sent', 'dropped']);

const BATCH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The Prometheus side of every stage in a process: one registry, the same series for every
 * stage (records in/out/DLQ per topic, errors by code, batch duration, consumer lag per
 * partition), the components' own counters from the context's `Metrics`, and — for the
 * process that serves `/metrics` — memory and event-loop lag.
 */
export class StageTelemetry {
  readonly registry = new Registry();
  private readonly recordsTotal: Counter<'stage' | 'topic' | 'outcome'>;
  private readonly errorsTotal: Counter<'stage' | 'code'>;
  private readonly batchSeconds: Histogram<'stage'>;
  private readonly lagSources = new Set<LagSource>();
  private readonly components = new Set<Metrics>();

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.recordsTotal = new Counter({
      name: 'cordon_stage_records_total',
      help: 'Records a stage consumed (outcome "in", by input topic), produced ("out", by output topic) and dead-lettered ("dlq", by source topic).',
      labelNames: ['stage', 'topic', 'outcome'],
      registers,
    });
    this.errorsTotal = new Counter({
      name: 'cordon_stage_errors_total',
      help: 'Errors of a stage by stable error code (a dead-lettered record counts once, with its code).',
      labelNames: ['stage', 'code'],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'cordon_stage_batch_duration_seconds',
      help: 'Time from a batch handed to a stage to its outputs acknowledged.',
      labelNames: ['stage'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    const sources = this.lagSources;
    new Gauge({
      name: 'cordon_consumer_lag',
      help: "Records between a stage's position and the end of each partition it owns.",
      labelNames: ['stage', 'topic', 'partition'],
      registers,
      async collect() {
        this.reset();
        const all = await Promise.allSettled([...sources].map((s) => s()));
        for (const r of all) {
          if (r.status !== 'fulfilled') continue;
          for (const s of r.value) this.set({ stage: s.stage, topic: s.topic, partition: String(s.partition) }, s.lag);
        }
      },
    });
    const components = this.components;
    new Counter({
      name: 'cordon_component_events_total',
      help: 'Component counters (e.g. flows evicted, blocks applied), by component and event.',
      labelNames: ['component', 'event'],
      registers,
      collect() {
        this.reset();
        for (const m of components) {
          for (const [k, v] of m.counters()) {
            const labels = splitKey(k, 'event');
            // the runtime's own counts are cordon_stage_records_total and _errors_total already
            if (!STAGE_COUNTS.has(labels.event)) this.inc(labels, v);
          }
        }
      },
    });
    new Gauge({
      name: 'cordon_component_value',
      help: 'Component gauges (e.g. open flows, active blocks), by component and name.',
      labelNames: ['component', 'name'],
      registers,
      collect() {
        this.reset();
        for (const m of components) for (const [k, v] of m.gauges()) this.set(splitKey(k, 'name'), v);
      },
    });
    if (opts.processMetrics) {
      collectDefaultMetrics({ register: this.registry });
      // gauges named like counters (prom-client's naming, refused by `promtool check metrics`)
      for (const name of [
        'nodejs_active_handles_total',
        'nodejs_active_requests_total',
        'nodejs_active_resources_total',
      ])
        this.registry.removeSingleMetric(name);
    }
  }

  forStage(stage: string): StageCounters {
    return {
      records: (topic, outcome, n) => {
        if (n > 0) this.recordsTotal.inc({ stage, topic, outcome }, n);
      },
      error: (code) => this.errorsTotal.inc({ stage, code }),
      batch: (seconds) => this.batchSeconds.observe({ stage }, seconds),
    };
  }

  /** Report lag from this source at each scrape; the returned function removes it. */
  addLagSource(source: LagSource): () => void {
    this.lagSources.add(source);
    return () => this.lagSources.delete(source);
  }

  /** Export a context's counters and gauges (the same registry may be added twice: it is a set). */
  addComponents(metrics: Metrics): void {
    this.components.add(metrics);
  }

  /** The sum of a metric's samples whose labels include `labels` (tests, `cordon status`). */
  async sample(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) return 0;
    const got = await metric.get();
    let sum = 0;
    for (const v of got.values) {
      const l = v.labels as Record<string, string | number | undefined>;
      if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
    }
    return sum;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** "flows.flows_emitted" → component "flows", event "flows_emitted"; deeper keys keep their path in the component. */
function splitKey<L extends 'event' | 'name'>(key: string, label: L): { component: string } & Record<L, string> {
  const i = key.lastIndexOf('.');
  const component = i < 0 ? 'cordon' : key.slice(0, i);
  return { component, [label]: i < 0 ? key : key.slice(i + 1) } as { component: string } & Record<L, string>;
}
