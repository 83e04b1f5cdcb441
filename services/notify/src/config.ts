import { z } from 'zod';
import { TOPICS } from '@cordon/schemas';
import { FACILITY_NAMES } from './syslog.js';

const retry = (maxAttempts: number) =>
  z
    .object({
      maxAttempts: z.number().int().min(1).default(maxAttempts),
      initialMs: z.number().int().min(1).default(500),
      maxMs: z.number().int().min(1).default(60_000),
    })
    .strict()
    .default({});

/** Which alerts a target receives; every condition given must hold. */
const filter = z
  .object({
    /** Only alerts at least this severe (1 = most severe .. 4). */
    maxSeverity: z.number().int().min(1).max(4).optional(),
    /** Only these rules (`sid:2010935`, `cordon:…`); a trailing `*` matches a prefix. */
    rules: z.array(z.string().min(1)).optional(),
    /** Only alerts about VMs of these groups (notify.vmGroups) or these VM names. */
    vmGroups: z.array(z.string().min(1)).optional(),
    vms: z.array(z.string().min(1)).optional(),
    /** Only alerts of these stages (dpi, loginspect, fim, netconf, notify). */
    stages: z.array(z.string().min(1)).optional(),
  })
  .strict()
  .default({});

const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)');

export const webhookTargetSchema = z
  .object({
    name,
    url: z.string().url(),
    format: z.enum(['cordon', 'ocsf', 'slack']).default('cordon'),
    /** The HMAC key, from this environment variable (preferred) … */
    secretEnv: z.string().min(1).optional(),
    /** … or given here (it is never logged). */
    secret: z.string().min(16).optional(),
    filter,
    /** At most this many deliveries a second to the target. */
    ratePerS: z.number().positive().default(20),
    timeoutMs: z.number().int().min(100).default(10_000),
    /** Attempts before an alert goes to the DLQ; sized so a target down for hours still gets every alert. */
    retry: retry(60),
    /** A new target starts with the alerts published from now on (true: with every alert on the topic). */
    fromBeginning: z.boolean().default(false),
    headers: z.record(z.string()).default({}),
  })
  .strict();

export const syslogTargetSchema = z
  .object({
    name,
    transport: z.enum(['udp', 'tcp', 'tls']).default('udp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(514),
    format: z.enum(['cef', 'leef']).default('cef'),
    facility: z.enum(FACILITY_NAMES as [string, ...string[]]).default('local0'),
    /** The HOSTNAME field (default: this machine's name). */
    hostname: z.string().min(1).optional(),
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    servername: z.string().min(1).optional(),
    filter,
    retry: retry(30),
    fromBeginning: z.boolean().default(false),
  })
  .strict();

export const notifyConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-notify'),
    alertsTopic: z.string().min(1).default(TOPICS.alerts),
    dlqTopic: z.string().min(1).default(TOPICS.dlq),
    /** OCSF on cordon.siem.v1 from alerts, flows, file events and audit events. */
    siem: z
      .object({
        enabled: z.boolean().default(true),
        outputTopic: z.string().min(1).default(TOPICS.siem),
        topics: z
          .array(z.enum([TOPICS.alerts, TOPICS.flows, TOPICS.fim, TOPICS.audit]))
          .default([TOPICS.alerts, TOPICS.flows, TOPICS.fim, TOPICS.audit]),
      })
      .strict()
      .default({}),
    webhooks: z.array(webhookTargetSchema).default([]),
    syslog: z.array(syslogTargetSchema).default([]),
    /** VM groups for target filters: group name → VM names. */
    vmGroups: z.record(z.array(z.string().min(1))).default({}),
    /** Silent sources: how long each kind may stay quiet before it is an alert. */
    silence: z
      .object({
        enabled: z.boolean().default(true),
        checkEveryS: z.number().positive().default(30),
        /** Agents heartbeat every 30 s by default. */
        agentS: z.number().positive().default(180),
        logS: z.number().positive().default(3600),
        sensorS: z.number().positive().default(600),
        /** Per source: `agent:<id>`, `log:<vm>|<path>`, `sensor:<name>` → seconds (0: never alert). */
        expect: z.record(z.number().min(0)).default({}),
        /** Watch captures (the packets topic) too; off when nothing captures live. */
        sensors: z.boolean().default(true),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = [...c.webhooks.map((w) => w.name), ...c.syslog.map((s) => s.name)];
    for (const n of names.filter((x, i) => names.indexOf(x) !== i))
      ctx.addIssue({ code: 'custom', message: `target name "${n}" is used twice` });
    for (const w of c.webhooks) {
      if (!w.secret && !w.secretEnv)
        ctx.addIssue({
          code: 'custom',
          path: ['webhooks', w.name],
          message: 'a webhook needs secretEnv (or secret) to sign its requests',
        });
      for (const g of w.filter.vmGroups ?? [])
        if (!c.vmGroups[g])
          ctx.addIssue({
            code: 'custom',
            path: ['webhooks', w.name, 'filter', 'vmGroups'],
            message: `VM group "${g}" is not in notify.vmGroups`,
          });
    }
  });

export type NotifyConfig = z.infer<typeof notifyConfigSchema>;
export type NotifyConfigInput = z.input<typeof notifyConfigSchema>;
export type WebhookTarget = NotifyConfig['webhooks'][number];
export type SyslogTarget = NotifyConfig['syslog'][number];
export type TargetFilter = WebhookTarget['filter'];
