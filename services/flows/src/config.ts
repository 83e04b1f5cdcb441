import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_FLOWS_CONFIG } from './errors.js';

/**
 * Idle timeouts are measured in *packet time* (capture timestamps of the same sensor), not
 * wall-clock time, so replaying a year-old capture gives the same flows as watching it live.
 */
export const flowTableConfigSchema = z
  .object({
    /** TCP flow whose handshake has not been seen both ways (only one side has sent). */
    tcpNewTimeoutS: z.number().positive().default(60),
    /** TCP flow with traffic both ways. */
    tcpEstablishedTimeoutS: z.number().positive().default(300),
    /** TCP flow after a FIN: waiting for the rest of the close. */
    tcpClosingTimeoutS: z.number().positive().default(60),
    udpTimeoutS: z.number().positive().default(60),
    /** ICMP, ICMPv6 and every other IP protocol. */
    otherTimeoutS: z.number().positive().default(60),
    /** How often (packet time) a sensor's idle flows are looked for. */
    sweepIntervalS: z.number().positive().default(10),
    /** Cap per input partition; beyond it the oldest flow is closed (end_reason timeout) and counted. */
    maxFlows: z.number().int().positive().default(1_000_000),
  })
  .strict();

export type FlowTableConfig = z.infer<typeof flowTableConfigSchema>;

export const flowsServiceConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-flows'),
    inputTopic: z.string().min(1).default('cordon.packets.v1'),
    outputTopic: z.string().min(1).default('cordon.flows.v1'),
    dlqTopic: z.string().min(1).default('cordon.dlq.v1'),
    stateTopic: z.string().min(1).default('cordon.state.v1'),
    /** Checkpoint a partition after this many input batches … */
    checkpointEveryBatches: z.number().int().positive().default(100),
    /** … or this many wall-clock seconds since its last checkpoint, whichever comes first. */
    checkpointEverySeconds: z.number().positive().default(10),
    maxBatchRecords: z.number().int().positive().default(500),
    table: flowTableConfigSchema.default({}),
  })
  .strict();

export type FlowsServiceConfig = z.infer<typeof flowsServiceConfigSchema>;
export type FlowsServiceConfigInput = z.input<typeof flowsServiceConfigSchema>;

function parseWith<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, input: unknown): T {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const detail = describeConfigIssues(r.error.issues);
  throw ERR_FLOWS_CONFIG.withCause(r.error, detail);
}

/** Parse once at the edge: defaults filled in, unknown keys rejected by name. */
export function parseFlowsConfig(input: unknown): FlowsServiceConfig {
  return parseWith(flowsServiceConfigSchema, input);
}

export function parseFlowTableConfig(input: unknown): FlowTableConfig {
  return parseWith(flowTableConfigSchema, input);
}
