import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ERR_POLICY_FILE } from './errors.js';

/**
 * YAML in, a validated value out — or an error that names the line. Administrators edit
 * these files by hand; "rules.2010935: invalid enum value" is far less useful than
 * "policy.yaml:14: …", so every zod issue path is mapped back to the node it came from.
 */
export interface YamlIssue {
  line: number;
  message: string;
}

type Path = ReadonlyArray<string | number>;

/** Alias expansions a file may need (what the yaml library allows by default, but caught and coded here). */
const MAX_ALIAS_COUNT = 100;

/** Parse `text` (from `file`) with `schema`; throws CORDON_ERR_POLICY_FILE naming file:line of the first issues. */
export function parseYamlWith<T>(text: string, file: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>): T {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0].line ?? lc.linePos(e.pos[0]).line;
    throw ERR_POLICY_FILE(`${file}:${line}`, e.message.split('\n')[0]!);
  }
  let value: unknown;
  try {
    // an alias expanded more than this many times is a resource exhaustion attack ("billion laughs")
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (err) {
    throw ERR_POLICY_FILE.withCause(
      err,
      file,
      `${(err as Error).message.split('\n')[0]!} (at most ${MAX_ALIAS_COUNT} alias expansions; write the values out)`,
    );
  }
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => issueAt(doc, lc, i));
  issues.sort((a, b) => a.line - b.line);
  const first = issues[0]!;
  const more = issues.slice(1).map((i) => `line ${i.line}: ${i.message}`);
  throw ERR_POLICY_FILE.withCause(r.error, `${file}:${first.line}`, [first.message, ...more].join('; '));
}

function issueAt(doc: Document, lc: LineCounter, issue: z.ZodIssue): YamlIssue {
  const path = issue.path;
  const where = path.join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    // point at the first unknown key itself, not at the map that holds it
    const map = nodeAt(doc, path);
    const key = issue.keys[0];
    if (isMap(map)) {
      for (const pair of map.items) {
        if (isPair(pair) && isScalar(pair.key) && String(pair.key.value) === key && pair.key.range) {
          return {
            line: lc.linePos(pair.key.range[0]).line,
            message: `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${[...path, k].join('.')}"`).join(', ')}`,
          };
        }
      }
    }
    return { line: lineOf(doc, lc, path), message: `unknown keys ${issue.keys.join(', ')} in ${where}` };
  }
  return { line: lineOf(doc, lc, path), message: `${where}: ${issue.message}` };
}

/** The line of the deepest node on `path` that exists (a missing key points at its parent). */
function lineOf(doc: Document, lc: LineCounter, path: Path): number {
  for (let n = path.length; n >= 0; n--) {
    const node = nodeAt(doc, path.slice(0, n));
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return 1;
}

function nodeAt(doc: Document, path: Path): unknown {
  let node: unknown = doc.contents;
  for (const seg of path) {
    if (isMap(node)) {
      // keys may be numbers in YAML (a sid) but strings in the zod path
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      node = pair?.value;
    } else if (isSeq(node)) {
      node = node.items[Number(seg)];
    } else return undefined;
  }
  return node;
}
