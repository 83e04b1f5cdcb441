import { createContext, createLogger, type Context, type LogFormat, type Logger } from '@cordon/runtime';
import { DEFAULT_METRICS_ADDR, type StageModule } from '@cordon/stage';
import { LOG_FORMATS, LOG_LEVELS } from '@cordon/runtime';
import type { FlagSpec, Invocation } from './args.js';
import { loadConfig, type CordonConfig } from './config.js';
import { BUILTIN_STAGES, stageList, STAGE_MODULES_ENV } from './stages.js';

/** The flags many commands share, declared once (commands.ts picks what each command takes). */
export const FLAGS = {
  config: {
    name: 'config',
    type: 'string',
    value: 'FILE',
    help: 'YAML configuration; sources, later wins: defaults, this file, environment, flags; unknown keys are errors',
  },
  dataDir: {
    name: 'data-dir',
    type: 'string',
    value: 'DIR',
    env: 'CORDON_DATA_DIR',
    defaultText: "./data, or the configuration's dataDir",
    help: 'embedded bus and ClickHouse data, installed rule sets, the control socket of a running instance',
  },
  brokers: {
    name: 'brokers',
    type: 'string',
    value: 'HOST:PORT,…',
    env: 'CORDON_KAFKA_BROKERS',
    defaultText: 'none: the embedded bus',
    help: 'use Kafka instead of the embedded bus',
  },
  kafkaClientConfig: {
    name: 'kafka-client-config',
    type: 'string',
    value: 'FILE',
    env: 'CORDON_KAFKA_CLIENT_CONFIG',
    defaultText: 'none: plaintext, no SASL',
    help: 'TLS and SASL for Kafka from a client configuration (librdkafka properties, mode 0600; infra/kafka/start.sh --secure writes one per principal)',
  },
  clickhouseUrl: {
    name: 'clickhouse-url',
    type: 'string',
    value: 'URL',
    env: 'CORDON_CLICKHOUSE_URL',
    defaultText: 'none: the embedded engine',
    help: 'use a ClickHouse server instead of the embedded engine; no credentials in it (ps shows flags): CORDON_CLICKHOUSE_USER, CORDON_CLICKHOUSE_PASSWORD or CORDON_CLICKHOUSE_PASSWORD_FILE',
  },
  metricsAddr: {
    name: 'metrics-addr',
    type: 'string',
    value: 'HOST:PORT|off',
    env: 'CORDON_METRICS_ADDR',
    default: DEFAULT_METRICS_ADDR,
    help: 'serve Prometheus /metrics there ("off": not at all); a port in use is logged and skipped',
  },
  stageModule: {
    name: 'stage-module',
    type: 'string',
    value: 'FILE',
    multiple: true,
    env: STAGE_MODULES_ENV,
    envSeparator: ':',
    envAppends: true,
    help: 'also load this out-of-tree stage module (the variable holds FILE:FILE…, and the flags add to it)',
  },
  wait: {
    name: 'wait',
    type: 'duration',
    env: 'CORDON_CONTROL_WAIT',
    default: '2m',
    help: 'while a "cordon up" on this data dir is still starting, or another cordon process holds it, wait this long for it',
  },
  logFormat: {
    name: 'log-format',
    type: 'string',
    choices: LOG_FORMATS,
    env: 'CORDON_LOG_FORMAT',
    default: 'auto',
    help: 'logs on stderr: auto = coloured lines on a terminal and JSON otherwise; pretty; json',
  },
  logLevel: {
    name: 'log-level',
    type: 'string',
    choices: LOG_LEVELS,
    env: 'CORDON_LOG_LEVEL',
    default: 'info',
    help: 'the least severe log level written',
  },
  format: {
    name: 'format',
    type: 'string',
    choices: ['table', 'json'],
    default: 'table',
    help: 'table: aligned columns for people; json: one JSON object a line',
  },
} as const satisfies Record<string, FlagSpec>;

export const LOG_FLAGS: readonly FlagSpec[] = [FLAGS.logFormat, FLAGS.logLevel];
/** The flags of a command that works on the data: where it is, and how long to wait for its instance. */
export const DATA_FLAGS: readonly FlagSpec[] = [
  FLAGS.config,
  FLAGS.dataDir,
  FLAGS.brokers,
  FLAGS.kafkaClientConfig,
  FLAGS.clickhouseUrl,
  FLAGS.wait,
  ...LOG_FLAGS,
];

export const out = (s: string): void => void process.stdout.write(`${s}\n`);

/** The configuration of this invocation: a flag or variable the user gave overrides the file. */
export function configFrom(inv: Invocation, stages: readonly StageModule[] = BUILTIN_STAGES): CordonConfig {
  const has = (name: string) => inv.spec.flags?.some((f) => f.name === name) ?? false;
  const pick = (name: string) => (has(name) ? (inv.explicit(name) as string | undefined) : undefined);
  // a URL from the command line may not carry credentials (ps shows it); from the environment it may
  const chUrl = pick('clickhouse-url');
  const fromArgv = chUrl !== undefined && inv.source('clickhouse-url') === 'flag';
  const env = process.env;
  return loadConfig({
    ...(has('config') && inv.str('config') ? { file: inv.str('config')! } : {}),
    stages,
    // the parser has read the declared variables already (flag > variable): loadConfig gets the
    // result, and the ClickHouse credentials, which are never flags
    env: {
      ...(chUrl !== undefined && !fromArgv ? { CORDON_CLICKHOUSE_URL: chUrl } : {}),
      ...(env.CORDON_CLICKHOUSE_USER ? { CORDON_CLICKHOUSE_USER: env.CORDON_CLICKHOUSE_USER } : {}),
      ...(env.CORDON_CLICKHOUSE_PASSWORD ? { CORDON_CLICKHOUSE_PASSWORD: env.CORDON_CLICKHOUSE_PASSWORD } : {}),
      ...(env.CORDON_CLICKHOUSE_PASSWORD_FILE
        ? { CORDON_CLICKHOUSE_PASSWORD_FILE: env.CORDON_CLICKHOUSE_PASSWORD_FILE }
        : {}),
    },
    flags: {
      ...(pick('data-dir') ? { dataDir: pick('data-dir')! } : {}),
      ...(pick('brokers') ? { brokers: pick('brokers')! } : {}),
      ...(pick('kafka-client-config') ? { kafkaClientConfig: pick('kafka-client-config')! } : {}),
      ...(fromArgv ? { clickhouseUrl: chUrl } : {}),
      ...(pick('metrics-addr') ? { metricsAddr: pick('metrics-addr')! } : {}),
    },
  });
}

/** The stage list of this invocation: built-in, plus --stage-module and CORDON_STAGE_MODULES. */
export const stagesFrom = (inv: Invocation): Promise<StageModule[]> => stageList(inv.list('stage-module'), {});

export function loggerFrom(inv: Invocation, name = 'cordon'): Logger {
  const has = (n: string) => inv.spec.flags?.some((f) => f.name === n) ?? false;
  return createLogger(name, {
    ...(has('log-level') ? { level: inv.str('log-level')! } : {}),
    ...(has('log-format') ? { format: inv.str('log-format') as LogFormat } : {}),
  });
}

export const contextFrom = (inv: Invocation, name = 'cordon'): Context => createContext({ log: loggerFrom(inv, name) });
