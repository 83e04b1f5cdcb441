import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { describeConfigIssues } from '@cordon/runtime';
import { flowsServiceConfigSchema } from '@cordon/flows';
import { agentConfigSchema } from '@cordon/agent';
import { responderConfigSchema } from '@cordon/responder';
import { dpiServiceConfigSchema } from '@cordon/dpi';
import { watchdogConfigSchema } from '@cordon/watchdog';
import { ERR_CONFIG } from './errors.js';

/**
 * Cordon's runtime configuration, parsed once at the edge. Sources, later wins: defaults,
 * a YAML file (--config), environment (CORDON_*), command-line flags. Unknown keys are
 * errors that name the key.
 */
export const ConfigSchema = z
  .object({
    dataDir: z.string().min(1).default('./data'),
    bus: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('embedded') }).strict(),
        z.object({ kind: z.literal('kafka'), brokers: z.array(z.string().min(1)).min(1), clientId: z.string().default('cordon') }).strict(),
      ])
      .default({ kind: 'embedded' }),
    store: z
      .object({
        url: z.string().url().optional(),
        database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('cordon'),
      })
      .strict()
      .default({}),
    flows: flowsServiceConfigSchema.default({}),
    /** Only where an agent runs (`cordon run agent`). */
    agent: agentConfigSchema.optional(),
    responder: responderConfigSchema.default({}),
    /** dpi: rule files from disk instead of the policy topic, and engine options. */
    dpi: z
      .object({ ruleFiles: z.array(z.string().min(1)).optional(), service: dpiServiceConfigSchema.default({}) })
      .strict()
      .default({}),
    /** Only on a hypervisor host (`cordon run watchdog`). */
    watchdog: watchdogConfigSchema.optional(),
  })
  .strict();

export type CordonConfig = z.infer<typeof ConfigSchema>;

const formatIssues = (err: z.ZodError): string => describeConfigIssues(err.issues);

export interface ConfigSources {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: { dataDir?: string; brokers?: string; clickhouseUrl?: string };
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[path[path.length - 1]!] = value;
}

export function loadConfig(src: ConfigSources = {}): CordonConfig {
  let raw: Record<string, unknown> = {};
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (err) {
      throw ERR_CONFIG.withCause(err, src.file, (err as Error).message);
    }
    try {
      raw = (parseYaml(text) as Record<string, unknown> | null) ?? {};
    } catch (err) {
      throw ERR_CONFIG.withCause(err, src.file, (err as Error).message);
    }
    const fromFile = ConfigSchema.safeParse(raw);
    if (!fromFile.success) throw ERR_CONFIG(src.file, formatIssues(fromFile.error));
  }
  const env = src.env ?? process.env;
  const brokers = src.flags?.brokers ?? env.CORDON_KAFKA_BROKERS;
  if (brokers) setPath(raw, ['bus'], { ...((raw.bus as object) ?? {}), kind: 'kafka', brokers: brokers.split(',').map((b) => b.trim()).filter(Boolean) });
  const url = src.flags?.clickhouseUrl ?? env.CORDON_CLICKHOUSE_URL;
  if (url) setPath(raw, ['store', 'url'], url);
  const dataDir = src.flags?.dataDir ?? env.CORDON_DATA_DIR;
  if (dataDir) raw.dataDir = dataDir;
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) throw ERR_CONFIG(src.file ?? 'flags and environment', formatIssues(parsed.error));
  return { ...parsed.data, dataDir: resolve(parsed.data.dataDir) };
}
