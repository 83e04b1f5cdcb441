import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { loadKafkaClientConfig } from '@cordon/bus';
import { describeConfigIssues } from '@cordon/runtime';
import { DEFAULT_METRICS_ADDR, parseMetricsAddr, stageSections, type StageModule } from '@cordon/stage';
import { ERR_CONFIG } from './errors.js';
import { readSecretFile } from './secrets.js';
import { BUILTIN_STAGES } from './stages.js';

/** What every process has, whatever stages it runs. */
const base = {
  dataDir: z.string().min(1).default('./data'),
  bus: z
    .discriminatedUnion('kind', [
      z.object({ kind: z.literal('embedded') }).strict(),
      z
        .object({
          kind: z.literal('kafka'),
          brokers: z.array(z.string().min(1)).min(1),
          clientId: z.string().default('cordon'),
          /**
           * A client configuration (librdkafka properties: security.protocol, sasl.*, ssl.*; mode
           * 0600) for TLS and SASL, e.g. one infra/kafka/start.sh --secure wrote (CORDON_KAFKA_CLIENT_CONFIG).
           */
          clientConfig: z.string().min(1).optional(),
          /**
           * Linger and fetch settings of the control path (alerts, blocks, policy, commands, …)
           * and the bulk path (packets, flows, logs, fim, siem), apart; defaults in
           * packages/bus/src/kafka/tuning.ts. Checked by the bus (CORDON_ERR_BUS_KAFKA_TUNING).
           */
          tuning: z
            .object({
              control: z
                .object({ lingerMs: z.number(), fetchMaxWaitMs: z.number(), fetchMinBytes: z.number() })
                .partial()
                .strict()
                .optional(),
              bulk: z
                .object({ lingerMs: z.number(), fetchMaxWaitMs: z.number(), fetchMinBytes: z.number() })
                .partial()
                .strict()
                .optional(),
              bulkTopics: z.array(z.string()).optional(),
            })
            .strict()
            .optional(),
        })
        .strict(),
    ])
    .default({ kind: 'embedded' }),
  store: z
    .object({
      url: z.string().url().optional(),
      database: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
        .default('cordon'),
      /** The ClickHouse user (CORDON_CLICKHOUSE_USER); its password from `passwordFile` or CORDON_CLICKHOUSE_PASSWORD. */
      user: z.string().min(1).optional(),
      /** A file (mode 0600) holding the password (CORDON_CLICKHOUSE_PASSWORD_FILE). */
      passwordFile: z.string().min(1).optional(),
      /** Set from CORDON_CLICKHOUSE_PASSWORD or `passwordFile`, never written in a file or flag. */
      password: z.string().optional(),
    })
    .strict()
    .default({}),
  trust: z
    .object({
      /**
       * Records on the topics agents and watchdogs write (logs, fim, netconf; packets and
       * alerts when signed) must be signed by an enrolled producer and name only its VM or host.
       * `auto`: required on Kafka, where any client that reaches the brokers may write; off on
       * the embedded bus, whose only writers are the stages of this one process
       * (docs/security.md).
       */
      signedRecords: z.enum(['auto', 'required', 'off']).default('auto'),
      /**
       * Topics other stages may write as well, checked only when signed by default, on which an
       * unsigned record is refused too (when records are checked at all): `packets` once every
       * watchdog enrolls with a host token and no unsigned replay writes to the bus,
       * `block-status` once every enforcer signs. An unsigned record naming a sensor or
       * enforcer whose key is registered is refused anyway.
       */
      requireSigned: z.array(z.enum(['packets', 'block-status'])).default([]),
    })
    .strict()
    .default({}),
  /** Prometheus text format at http://ADDR/metrics; "off" disables. */
  metricsAddr: z
    .string()
    .default(DEFAULT_METRICS_ADDR)
    .superRefine((s, ctx) => {
      try {
        parseMetricsAddr(s);
      } catch (err) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
      }
    }),
};

/**
 * Cordon's runtime configuration, parsed once at the edge: the process's own keys and one
 * section per stage (each validated by the stage's own schema). Sources, later wins: defaults,
 * a YAML file (--config), environment (CORDON_*), command-line flags. Unknown keys — at the
 * top or in any section — are errors that name the key with its section.
 */
export function configSchema(stages: readonly StageModule[] = BUILTIN_STAGES) {
  return z.object({ ...base, ...stageSections(stages) }).strict();
}

type Base = z.infer<z.ZodObject<typeof base>>;
/** The validated configuration: the process's keys, and each stage's section by its name. */
export type CordonConfig = Base & { readonly [stage: string]: unknown };

export interface ConfigSources {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: {
    dataDir?: string;
    brokers?: string;
    kafkaClientConfig?: string;
    clickhouseUrl?: string;
    metricsAddr?: string;
  };
  /** The stages whose sections are allowed (default: the built-in ones). */
  stages?: readonly StageModule[];
}

/** A URL with a user or password in it (http://user:password@host). */
function hasCredentials(url: string): boolean {
  try {
    const u = new URL(url);
    return u.username !== '' || u.password !== '';
  } catch {
    return /\/\/[^/]*@/.test(url);
  }
}

/** The store's URL with its user and password put in (from the environment or a file, never argv). */
export function storeUrl(store: {
  url?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
}): string | undefined {
  if (!store.url || (store.user === undefined && store.password === undefined)) return store.url;
  const u = new URL(store.url);
  if (store.user !== undefined) u.username = store.user;
  if (store.password !== undefined) {
    if (!u.username) u.username = 'default';
    u.password = store.password;
  }
  return u.toString();
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[path[path.length - 1]!] = value;
}

export function loadConfig(src: ConfigSources = {}): CordonConfig {
  const schema = configSchema(src.stages);
  const formatIssues = (err: z.ZodError): string => describeConfigIssues(err.issues);
  let raw: Record<string, unknown> = {};
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (err) {
      throw ERR_CONFIG.withCause(err, src.file, (err as Error).message);
    }
    try {
      const doc: unknown = parseYaml(text, { maxAliasCount: 100 });
      if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc)))
        throw new Error('the file is not a mapping of keys to values');
      raw = (doc as Record<string, unknown> | null) ?? {};
    } catch (err) {
      throw ERR_CONFIG.withCause(err, src.file, (err as Error).message);
    }
    const fromFile = schema.safeParse(raw);
    if (!fromFile.success) throw ERR_CONFIG(src.file, formatIssues(fromFile.error));
  }
  const env = src.env ?? process.env;
  const brokers = src.flags?.brokers ?? env.CORDON_KAFKA_BROKERS;
  if (brokers)
    setPath(raw, ['bus'], {
      ...((raw.bus as object) ?? {}),
      kind: 'kafka',
      brokers: brokers
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean),
    });
  const clientConfig = src.flags?.kafkaClientConfig ?? env.CORDON_KAFKA_CLIENT_CONFIG;
  if (clientConfig) {
    const bus = (raw.bus ?? {}) as { kind?: string; brokers?: unknown };
    // the file's bootstrap.servers name the brokers when nothing else does
    const fromFile = bus.kind === 'kafka' || brokers ? undefined : loadKafkaClientConfig(clientConfig).brokers;
    if (bus.kind !== 'kafka' && !brokers && !fromFile) {
      throw ERR_CONFIG(
        clientConfig,
        'a Kafka client configuration is given but no brokers: name them with --brokers, CORDON_KAFKA_BROKERS, bus.brokers or bootstrap.servers in the file',
      );
    }
    setPath(raw, ['bus'], {
      ...(bus as object),
      kind: 'kafka',
      ...(fromFile ? { brokers: fromFile } : {}),
      clientConfig,
    });
  }
  if (src.flags?.clickhouseUrl && hasCredentials(src.flags.clickhouseUrl)) {
    throw ERR_CONFIG(
      '--clickhouse-url',
      "the URL carries a user or password, and a process's arguments are visible to every local user (ps); give the URL without them, " +
        'the user in CORDON_CLICKHOUSE_USER and the password in CORDON_CLICKHOUSE_PASSWORD or in a 0600 file named by CORDON_CLICKHOUSE_PASSWORD_FILE',
    );
  }
  const url = src.flags?.clickhouseUrl ?? env.CORDON_CLICKHOUSE_URL;
  if (url) setPath(raw, ['store', 'url'], url);
  if (env.CORDON_CLICKHOUSE_USER) setPath(raw, ['store', 'user'], env.CORDON_CLICKHOUSE_USER);
  if (env.CORDON_CLICKHOUSE_PASSWORD_FILE) setPath(raw, ['store', 'passwordFile'], env.CORDON_CLICKHOUSE_PASSWORD_FILE);
  const store = (raw.store ?? {}) as { password?: unknown; passwordFile?: unknown };
  if (store.password !== undefined)
    throw ERR_CONFIG(
      src.file ?? 'the configuration',
      'store.password is not read from a file or a flag; use store.passwordFile (mode 0600) or CORDON_CLICKHOUSE_PASSWORD',
    );
  if (env.CORDON_CLICKHOUSE_PASSWORD) setPath(raw, ['store', 'password'], env.CORDON_CLICKHOUSE_PASSWORD);
  else if (typeof store.passwordFile === 'string')
    setPath(raw, ['store', 'password'], readSecretFile(store.passwordFile).replace(/\r?\n$/, ''));
  const dataDir = src.flags?.dataDir ?? env.CORDON_DATA_DIR;
  if (dataDir) raw.dataDir = dataDir;
  const metricsAddr = src.flags?.metricsAddr ?? env.CORDON_METRICS_ADDR;
  if (metricsAddr) raw.metricsAddr = metricsAddr;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw ERR_CONFIG(src.file ?? 'flags and environment', formatIssues(parsed.error));
  const data = parsed.data as CordonConfig;
  return { ...data, dataDir: resolve(data.dataDir) };
}
