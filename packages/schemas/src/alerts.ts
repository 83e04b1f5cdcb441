import { createHash } from 'node:crypto';
import type { Alert } from './generated.js';

/**
 * The one alert id: a hash of the stage and what identifies the alert within it (never the
 * time it was computed), so a replayed input gives the same id and the sink counts it once.
 */
export function alertId(stage: string, ...parts: ReadonlyArray<string | number | bigint>): string {
  return createHash('sha256')
    .update([stage, ...parts.map(String)].join('\u0000'))
    .digest('hex')
    .slice(0, 32);
}

/** The network fields of an alert that is about a host, not a flow (file changes, listening sockets). */
export const NO_FLOW: Pick<Alert, 'src_ip' | 'src_port' | 'dst_ip' | 'dst_port' | 'proto' | 'flow_id'> = Object.freeze({
  src_ip: null,
  src_port: null,
  dst_ip: null,
  dst_port: null,
  proto: null,
  flow_id: null,
});

/** The rule-metadata fields of an Alert: what analysts sort and pivot by. */
export type RuleMetadataFields = Required<
  Pick<Alert, 'metadata' | 'mitre_tactic_ids' | 'mitre_technique_ids' | 'cves' | 'references'>
>;

const TACTIC = /^TA\d{4}$/i;
const TECHNIQUE = /^T\d{4}(?:\.\d{3})?$/i;
const CVE = /^(?:CVE[-_])?(\d{4})[-_](\d{4,})$/i;

/** `CVE_2021_44228`, `cve-2021-44228`, `2021-44228` → `CVE-2021-44228`; anything else → null. */
export function normalizeCve(text: string): string | null {
  const m = CVE.exec(text.trim());
  return m ? `CVE-${m[1]}-${m[2]}` : null;
}

/**
 * A rule's metadata (keys to lists of values, as Suricata's EVE prints `alert.metadata`; Sigma
 * tags map to the same keys) and references (`type,value`) as the Alert's columns: the whole
 * metadata kept as JSON, and the MITRE ATT&CK tactic and technique ids and CVE ids pulled out.
 * Values are deduplicated, in first-seen order.
 */
export function ruleMetadataFields(
  metadata: Record<string, unknown> | null | undefined,
  references: readonly string[] = [],
): RuleMetadataFields {
  const md: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) {
    const values = (Array.isArray(v) ? v : [v]).filter((x) => x !== null && x !== undefined).map(String);
    if (values.length) md[k] = values;
  }
  const tactics = new Set<string>();
  const techniques = new Set<string>();
  const cves = new Set<string>();
  for (const v of md.mitre_tactic_id ?? []) if (TACTIC.test(v)) tactics.add(v.toUpperCase());
  for (const v of md.mitre_technique_id ?? []) if (TECHNIQUE.test(v)) techniques.add(v.toUpperCase());
  for (const v of md.cve ?? []) {
    const c = normalizeCve(v);
    if (c) cves.add(c);
  }
  for (const r of references) {
    const [type, ...rest] = r.split(',');
    if (type?.trim().toLowerCase() !== 'cve') continue;
    const c = normalizeCve(rest.join(','));
    if (c) cves.add(c);
  }
  return {
    metadata: Object.keys(md).length ? JSON.stringify(md) : null,
    mitre_tactic_ids: [...tactics],
    mitre_technique_ids: [...techniques],
    cves: [...cves],
    references: [...new Set(references)],
  };
}

/** At most this many characters of payload travel on an alert. */
export const PAYLOAD_PRINTABLE_MAX = 4096;

/** Bytes as Suricata's `payload_printable`: printable ASCII kept, everything else a dot; bounded. */
export function printable(bytes: Buffer, max = PAYLOAD_PRINTABLE_MAX): string {
  let s = '';
  const n = Math.min(bytes.length, max);
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    s += (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09 ? String.fromCharCode(b) : '.';
  }
  return s;
}

/** A text bounded to `max` characters (what an engine already made printable). */
export function boundedText(s: string | null | undefined, max = PAYLOAD_PRINTABLE_MAX): string | null {
  if (s === null || s === undefined) return null;
  return s.length > max ? s.slice(0, max) : s;
}
