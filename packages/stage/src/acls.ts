import { TOPICS } from '@cordon/schemas';
import type { StageModule } from './module.js';
import { SIGNED_TOPICS } from './record-trust.js';

/**
 * One Kafka ACL (allow) of a stage's principal, as `kafka-acls.sh` names its parts. The
 * principal is the stage's name; a stage with one process per machine (agent, watchdog) is a
 * role whose principals are `agent-<id>`, `watchdog-<host>` (infra/kafka expands them).
 */
export interface StageAcl {
  /** The stage's name, or `*` for what every principal of Cordon gets. */
  role: string;
  resource: 'topic' | 'group';
  pattern: 'literal' | 'prefixed';
  name: string;
  operation: 'READ' | 'WRITE' | 'DESCRIBE';
}

/** Where topic names and group ids begin: what every principal may describe, and readers' groups. */
export const TOPIC_PREFIX = 'cordon.';
/** `readRange`/`readTable` read under a throwaway group with this prefix (packages/bus table.ts). */
export const READER_GROUP_PREFIX = 'cordon-reader-';
/** `stage.follow` follows under `cordon-<stage>-follow-<uuid>`; agents' command groups are `cordon-agent-<id>-…`. */
export const stageGroupPrefix = (stage: string): string => `cordon-${stage}-`;

/**
 * What a stage's Kafka principal is allowed, derived from what its module declares and
 * nothing else: READ on its inputs and reads, WRITE on its outputs, READ on its input groups,
 * on its own group prefix (followers, per-machine groups) and on readers' groups. Anything the
 * module does not declare is refused by the broker (allow.everyone.if.no.acl.found=false).
 */
export function stageAcls<Cfg>(module: StageModule<Cfg>, config: Cfg): StageAcl[] {
  const role = module.name;
  const out: StageAcl[] = [];
  const seen = new Set<string>();
  const add = (a: Omit<StageAcl, 'role'>) => {
    const k = `${a.resource} ${a.pattern} ${a.name} ${a.operation}`;
    if (seen.has(k)) return;
    seen.add(k);
    out.push({ role, ...a });
  };
  const inputs = module.inputs(config);
  const reads = [...inputs.map((i) => i.topic), ...(module.reads?.(config) ?? [])];
  // the runtime checks signed topics, consumed or followed, against the registered producer
  // keys, which it follows
  if (reads.some((t) => Object.hasOwn(SIGNED_TOPICS, t))) reads.push(TOPICS.producers);
  for (const t of [...new Set(reads)].sort())
    add({ resource: 'topic', pattern: 'literal', name: t, operation: 'READ' });
  for (const t of [...new Set(module.outputs(config))].sort())
    add({ resource: 'topic', pattern: 'literal', name: t, operation: 'WRITE' });
  for (const g of [...new Set(inputs.map((i) => i.group))].sort())
    add({ resource: 'group', pattern: 'literal', name: g, operation: 'READ' });
  add({ resource: 'group', pattern: 'prefixed', name: stageGroupPrefix(role), operation: 'READ' });
  if (reads.length > 0) add({ resource: 'group', pattern: 'prefixed', name: READER_GROUP_PREFIX, operation: 'READ' });
  return out;
}

/** What every principal gets: to see that Cordon's topics exist (metadata, `cordon topics apply` finding them made). */
export const COMMON_ACLS: readonly StageAcl[] = [
  { role: '*', resource: 'topic', pattern: 'prefixed', name: TOPIC_PREFIX, operation: 'DESCRIBE' },
];

/** The ACL table of a stage list, one line per ACL: `role resource pattern name operation`. */
export function aclTable(stages: ReadonlyArray<{ module: StageModule; config: unknown }>): string {
  const rows = [...COMMON_ACLS, ...stages.flatMap((s) => stageAcls(s.module, s.config))];
  const width = (f: (a: StageAcl) => string) => Math.max(...rows.map((a) => f(a).length));
  const w = [width((a) => a.role), width((a) => a.resource), width((a) => a.pattern), width((a) => a.name)];
  return rows
    .map((a) =>
      [a.role.padEnd(w[0]!), a.resource.padEnd(w[1]!), a.pattern.padEnd(w[2]!), a.name.padEnd(w[3]!), a.operation].join(
        '  ',
      ),
    )
    .join('\n');
}
