import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import { fimPolicySchema } from '@cordon/fim-scan';
import { malwarePolicySchema } from '@cordon/malware';
import { readRuleSet, readYaraRuleSet, SET_NAME } from '@cordon/rulesets';
import { CordonError } from '@cordon/runtime';
import type { PolicyRecord } from '@cordon/schemas';
import { ERR_POLICY_FILE, ERR_POLICY_READ, ERR_POLICY_RECORD } from './errors.js';
import { processPolicySchema } from './process-policy.js';
import { parseYamlWith } from './yaml-file.js';

/**
 * The policy file (`cordon policy apply FILE`), until the manager writes policies itself.
 *
 * Mode resolution (what makes an alert a block) — the most specific setting wins:
 *   vms.<vm>.rules.<sid>  >  vms.<vm>.mode  >  rules.<sid>  >  mode
 * A VM's own setting beats a global rule setting because the VM's owner decides for the VM
 * (a fragile VM set to `detect` is IDS-only whatever the global rules say). When nothing is
 * set at any level, the rule's own action decides (Suricata inline semantics: `drop` and
 * `reject` rules block, `alert` rules only alert). `detect` never blocks (IDS), `prevent`
 * blocks on every alert of the rule (IPS), with the rule's action when it is drop/reject
 * and `blocks.action` otherwise. `pass` never blocks.
 */
const mode = z.enum(['detect', 'prevent']);
export type Mode = z.infer<typeof mode>;
const sid = z.string().regex(/^[0-9]{1,10}$/, 'a rule is named by its numeric sid');
const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'letters, digits, "_", ".", ":" and "-" only (up to 128)');
const ruleSetName = z.string().regex(SET_NAME, 'a rule set name (as "cordon rules list" shows it)');

/**
 * What an in-guest agent watches, set centrally: each field given replaces the agent's own
 * configuration of it (`vms.<vm>` over `default` over the agent's file). Enrollment token,
 * state directory and enforcement stay local: they are the guest's, not the policy's.
 */
export const agentPolicySchema = z
  .object({
    /** Absolute paths; an agent reads only those below its own logRoots. */
    logs: z
      .array(
        z
          .object({
            path: z
              .string()
              .min(1)
              .refine((p) => isAbsolute(p), { message: 'must be an absolute path' }),
            format: z.string().optional(),
          })
          .strict(),
      )
      .optional(),
    logStartAt: z.enum(['beginning', 'end']).optional(),
    fim: fimPolicySchema.optional(),
    /** Anti-malware (YARA): its `ruleSets` are published with the policy for the agents. */
    malware: malwarePolicySchema.optional(),
    netconf: z
      .object({ enabled: z.boolean().default(true), intervalS: z.number().positive().default(30) })
      .strict()
      .optional(),
    /** Process monitoring (process-policy.ts). */
    processes: processPolicySchema.optional(),
  })
  .strict();
export type AgentPolicy = z.infer<typeof agentPolicySchema>;

/**
 * The longest block a policy may ask for (a year): every enforcer writes TTLs up to it in
 * nft's units, and clamps a decision that asks for more.
 */
export const MAX_BLOCK_TTL_S = 365 * 86_400;

export const policyFileSchema = z
  .object({
    id: name.default('default'),
    mode: mode.optional(),
    /** Suricata rule files, relative to the policy file; each becomes `ruleset` records. */
    ruleFiles: z.array(z.string().min(1)).default([]),
    /**
     * Rule sets installed by `cordon rules update`, by name: all of a set's `.rules` files, or
     * only those listed. Read from the data dir when the policy is applied, and published like
     * rule files (as `<set>/<file>`).
     */
    ruleSets: z
      .array(
        z.union([
          ruleSetName,
          z
            .object({
              name: ruleSetName,
              files: z.array(z.string().regex(/^[^/\\]+\.rules$/, 'a .rules file name of the set')).min(1),
            })
            .strict(),
        ]),
      )
      .default([]),
    rules: z.record(sid, mode).default({}),
    /**
     * Rules the administrator keeps whatever a recommendation says: never dropped from a VM's
     * rule selection (`cordon recommend`, recommend.autoApply). Rules named in `rules` are
     * pinned too.
     */
    pinned: z.array(sid).default([]),
    vms: z
      .record(
        name,
        z
          .object({
            mode: mode.optional(),
            rules: z.record(sid, mode).default({}),
            /** Pinned for this VM (with the top-level `pinned` and the sids its `rules` name). */
            pinned: z.array(sid).default([]),
            /** The coordinator alerts when such a VM runs without a current agent. */
            requireAgent: z.boolean().default(false),
            /** Hold the VM's traffic on its host bridge until its protection is current (over coordination.gate). */
            gate: z.boolean().optional(),
          })
          .strict(),
      )
      .default({}),
    blocks: z
      .object({
        /** For alerts of `alert`-action rules blocked because the mode says prevent. */
        action: z.enum(['drop', 'reject']).default('drop'),
        ttlS: z.number().int().positive().max(MAX_BLOCK_TTL_S).default(600),
        /** A target blocked again within this window of its previous block is a repeat offender… */
        repeatWindowS: z.number().int().nonnegative().default(86_400),
        /** …and gets the previous block's TTL times this… */
        repeatMultiplier: z.number().min(1).max(100).default(2),
        /** …up to this. */
        maxTtlS: z.number().int().positive().max(MAX_BLOCK_TTL_S).default(86_400),
      })
      .strict()
      .default({})
      .refine((b) => b.maxTtlS >= b.ttlS, { message: 'maxTtlS must be at least ttlS', path: ['maxTtlS'] }),
    /** How the coordinator hands VMs between the watchdog and agents. */
    coordination: z
      .object({
        /** How often agents heartbeat… */
        heartbeatIntervalMs: z.number().int().min(50).max(600_000).default(1000),
        /** …and how long a silent agent keeps its VM before the watchdog takes it back. */
        heartbeatTimeoutMs: z.number().int().min(100).max(3_600_000).default(5000),
        /** An older agent is told to upgrade and does not protect its VM meanwhile. */
        requiredAgentVersion: z
          .string()
          .regex(/^\d+\.\d+\.\d+$/, 'a version: MAJOR.MINOR.PATCH')
          .default('0.1.0'),
        /** Watchdog → agent: the agent takes over this long after the decision, so both know the boundary first. */
        handoffDelayMs: z.number().int().min(0).max(60_000).default(300),
        /** Hold every VM's traffic until its protection is current (vms.<vm>.gate overrides). */
        gate: z.boolean().default(false),
        /**
         * An agent whose clock is further than this from its host's watchdog's does not protect
         * its VM (the watchdog does): a hand-off splits traffic by time, so a clock off by s
         * leaves up to s of it to nobody or to both. Taking a VM over needs half of it.
         */
        maxClockOffsetMs: z.number().int().min(1).max(3_600_000).default(50),
      })
      .strict()
      .default({})
      .refine((c) => c.heartbeatTimeoutMs > c.heartbeatIntervalMs, {
        message: 'heartbeatTimeoutMs must be longer than heartbeatIntervalMs',
        path: ['heartbeatTimeoutMs'],
      }),
    /** Agents' watch lists: for every agent, and per VM. */
    agents: z
      .object({ default: agentPolicySchema.default({}), vms: z.record(name, agentPolicySchema).default({}) })
      .strict()
      .default({}),
  })
  .strict();

/** The agent policy for a VM: its own section's fields over the default's. */
export function agentPolicyFor(doc: Pick<PolicyFile, 'agents'>, vm: string): AgentPolicy {
  return { ...doc.agents.default, ...doc.agents.vms[vm] };
}

export type PolicyFile = z.infer<typeof policyFileSchema>;

/** What goes on the topic as the policy's JSON document: the file, rule files and sets replaced by their rulesets. */
export interface PolicyDocument extends Omit<PolicyFile, 'ruleFiles' | 'ruleSets'> {
  rulesets: Array<{ name: string; sha256: string; parts: number }>;
  /**
   * The YARA files of the rule sets the agents' `malware.ruleSets` name, published as rulesets
   * of their own (`yara/<set>/<file>`): the dpi never loads them, the agents do.
   */
  yaraRulesets?: Array<{ name: string; set: string; sha256: string; parts: number }>;
}

/** One part of a rule file on the topic (large files are split: a Kafka record is limited to ~1 MB). */
export interface RulesetDocument {
  name: string;
  /** Of the whole file. */
  sha256: string;
  part: number;
  parts: number;
  encoding: 'gzip-base64';
  data: string;
}

/** Raw bytes per part before gzip: rule text compresses ~5×, so a part stays well under 1 MB. */
export const RULESET_PART_BYTES = 1_500_000;

export interface CompiledPolicy {
  document: PolicyDocument;
  rulesets: RulesetDocument[];
}

export function parsePolicyText(text: string, file: string): PolicyFile {
  return parseYamlWith(text, file, policyFileSchema);
}

export interface CompileOptions {
  /** Where `cordon rules update` installed the sets that `ruleSets` names (the CLI's data dir). */
  dataDir?: string;
}

/** Read and validate a policy file and the rule files and installed rule sets it names. */
export function compilePolicyFile(file: string, opts: CompileOptions = {}): CompiledPolicy {
  const text = readText(file);
  const policy = parsePolicyText(text, file);
  const rulesets: RulesetDocument[] = [];
  const index: PolicyDocument['rulesets'] = [];
  const seen = new Set<string>();
  const add = (rsName: string, body: string) => {
    const parts = splitRuleset(rsName, body);
    rulesets.push(...parts);
    index.push({ name: rsName, sha256: parts[0]!.sha256, parts: parts.length });
  };
  policy.ruleFiles.forEach((rel, i) => {
    const path = resolve(dirname(file), rel);
    const rsName = basename(path);
    if (seen.has(rsName))
      throw ERR_POLICY_FILE(
        `${file}:${lineOfListItem(text, 'ruleFiles', i)}`,
        `two rule files are named ${rsName}; rule files are published by file name, which must be unique`,
      );
    seen.add(rsName);
    let body: string;
    try {
      body = readFileSync(path, 'utf8');
    } catch (err) {
      throw ERR_POLICY_FILE.withCause(
        err,
        `${file}:${lineOfListItem(text, 'ruleFiles', i)}`,
        `rule file ${rel} cannot be read (${(err as Error).message})`,
      );
    }
    add(rsName, body);
  });
  policy.ruleSets.forEach((entry, i) => {
    const setName = typeof entry === 'string' ? entry : entry.name;
    const where = `${file}:${lineOfListItem(text, 'ruleSets', i)}`;
    if (opts.dataDir === undefined)
      throw ERR_POLICY_FILE(
        where,
        `rule set "${setName}" needs the data dir it was installed in (run "cordon policy apply" with --data-dir)`,
      );
    let texts;
    try {
      texts = readRuleSet(opts.dataDir, setName, typeof entry === 'string' ? undefined : entry.files);
    } catch (err) {
      // CORDON_ERR_RULES_NOT_INSTALLED / _CORRUPT keep their code; the message gains the line
      if (err instanceof CordonError) throw new CordonError(err.code, `${where}: ${err.message}`, { cause: err });
      throw err;
    }
    for (const rs of texts) {
      if (seen.has(rs.name)) throw ERR_POLICY_FILE(where, `rule set ${setName} is listed twice (${rs.name})`);
      seen.add(rs.name);
      add(rs.name, rs.text);
    }
  });
  // YARA sets the agents' malware sections name: published once each, indexed apart from
  // the Suricata rulesets so that no dpi tries to load them
  const yaraIndex: NonNullable<PolicyDocument['yaraRulesets']> = [];
  const yaraSets = [policy.agents.default, ...Object.values(policy.agents.vms)].flatMap(
    (a) => a.malware?.ruleSets ?? [],
  );
  for (const setName of [...new Set(yaraSets)]) {
    if (opts.dataDir === undefined)
      throw ERR_POLICY_FILE(
        file,
        `YARA rule set "${setName}" needs the data dir it was installed in (run "cordon policy apply" with --data-dir)`,
      );
    let texts;
    try {
      texts = readYaraRuleSet(opts.dataDir, setName);
    } catch (err) {
      if (err instanceof CordonError) throw new CordonError(err.code, `${file}: ${err.message}`, { cause: err });
      throw err;
    }
    for (const rs of texts) {
      const parts = splitRuleset(`yara/${rs.name}`, rs.text);
      rulesets.push(...parts);
      yaraIndex.push({ name: `yara/${rs.name}`, set: setName, sha256: parts[0]!.sha256, parts: parts.length });
    }
  }
  const { ruleFiles: _files, ruleSets: _sets, ...rest } = policy;
  return { document: { ...rest, rulesets: index, yaraRulesets: yaraIndex }, rulesets };
}

function lineOfListItem(text: string, key: string, i: number): number {
  // cheap and good enough for an error message: the i-th list item after "<key>:"
  const lines = text.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^${key}\\s*:`).test(l));
  let n = -1;
  for (let j = start + 1; start >= 0 && j < lines.length; j++) {
    if (/^\s*-\s/.test(lines[j]!) && ++n === i) return j + 1;
  }
  return start + 1;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw ERR_POLICY_READ.withCause(err, file, (err as Error).message);
  }
}

export function splitRuleset(rsName: string, text: string): RulesetDocument[] {
  const sha256 = createHash('sha256').update(text).digest('hex');
  const chunks: string[] = [];
  let start = 0;
  while (start < text.length || chunks.length === 0) {
    let end = Math.min(text.length, start + RULESET_PART_BYTES);
    // cut at a line end so no rule is split across records
    if (end < text.length) {
      const nl = text.lastIndexOf('\n', end);
      if (nl > start) end = nl + 1;
    }
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks.map((c, part) => ({
    name: rsName,
    sha256,
    part,
    parts: chunks.length,
    encoding: 'gzip-base64',
    data: gzipSync(c).toString('base64'),
  }));
}

/** The rule text of a ruleset from its part documents (what a dpi instance loads), or an error naming what is missing. */
export function assembleRuleset(parts: RulesetDocument[]): string {
  const first = parts[0];
  if (!first) throw ERR_POLICY_RECORD('ruleset', 'no parts');
  const byPart = new Map(parts.filter((p) => p.sha256 === first.sha256).map((p) => [p.part, p]));
  const texts: string[] = [];
  for (let i = 0; i < first.parts; i++) {
    const p = byPart.get(i);
    if (!p)
      throw ERR_POLICY_RECORD(rulesetId(first.name, i), `part ${i + 1} of ${first.parts} of ${first.name} is missing`);
    texts.push(gunzipSync(Buffer.from(p.data, 'base64')).toString('utf8'));
  }
  const text = texts.join('');
  if (createHash('sha256').update(text).digest('hex') !== first.sha256)
    throw ERR_POLICY_RECORD(first.name, 'its parts do not add up to its sha256');
  return text;
}

export const rulesetId = (rsName: string, part: number): string => `${rsName}#${part}`;
/** PolicyRecord key: '<kind>:<id>'. */
export const policyRecordKey = (kind: PolicyRecord['kind'], id: string): string => `${kind}:${id}`;

// ---- deciding ----------------------------------------------------------------------

export type AlertActionName = 'alert' | 'drop' | 'reject' | 'pass';

/** The block an alert calls for under a policy, or null (detect, pass, or an alert-only rule with no mode set). */
export function blockActionFor(
  policy: Pick<PolicyDocument, 'mode' | 'rules' | 'vms' | 'blocks'>,
  ruleSid: string | null,
  vm: string | null,
  action: AlertActionName,
): 'drop' | 'reject' | null {
  if (action === 'pass') return null;
  const v = vm === null ? undefined : policy.vms[vm];
  const m =
    (ruleSid !== null ? v?.rules[ruleSid] : undefined) ??
    v?.mode ??
    (ruleSid !== null ? policy.rules[ruleSid] : undefined) ??
    policy.mode;
  if (m === 'detect') return null;
  if (action === 'drop' || action === 'reject') return action;
  return m === 'prevent' ? policy.blocks.action : null;
}
