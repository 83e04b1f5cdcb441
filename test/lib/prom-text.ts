/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every sample
 * belongs to a family declared with # TYPE, names and labels are well-formed, values are
 * numbers, counters end in _total, histograms have their buckets (ending at +Inf), _sum and
 * _count. Throws naming the line on anything else.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(s: string, line: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`not a number "${s}" in: ${line}`);
  return Number(s);
}

function parseLabels(body: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const eq = body.indexOf('=', i);
    if (eq < 0) throw new Error(`bad labels in: ${line}`);
    const k = body.slice(i, eq);
    if (!LABEL.test(k)) throw new Error(`bad label name "${k}" in: ${line}`);
    if (body[eq + 1] !== '"') throw new Error(`unquoted label value in: ${line}`);
    let j = eq + 2;
    let v = '';
    for (; j < body.length && body[j] !== '"'; j++) {
      if (body[j] === '\\') {
        const n = body[++j];
        v += n === 'n' ? '\n' : n;
      } else v += body[j];
    }
    if (body[j] !== '"') throw new Error(`unterminated label value in: ${line}`);
    if (k in labels) throw new Error(`label ${k} twice in: ${line}`);
    labels[k] = v;
    i = j + 1;
    if (body[i] === ',') i++;
    else if (i < body.length) throw new Error(`junk after label ${k} in: ${line}`);
  }
  return labels;
}

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) continue; // other comments are allowed
      if (!NAME.test(m[2]!)) throw new Error(`bad metric name in: ${line}`);
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3] ?? ''))
          throw new Error(`bad type in: ${line}`);
        if (types.has(m[2]!)) throw new Error(`TYPE twice for ${m[2]}`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const name = m[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(family);
    if (!type) throw new Error(`sample of an undeclared family: ${line}`);
    if (type === 'counter' && !family.endsWith('_total')) throw new Error(`counter ${family} does not end in _total`);
    samples.push({ name, labels: m[2] ? parseLabels(m[2], line) : {}, value: parseValue(m[3]!, line) });
  }
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const buckets = samples.filter((s) => s.name === `${family}_bucket`);
    const series = new Set(buckets.map((b) => JSON.stringify({ ...b.labels, le: undefined })));
    for (const key of series) {
      const mine = buckets.filter((b) => JSON.stringify({ ...b.labels, le: undefined }) === key);
      if (mine.at(-1)?.labels.le !== '+Inf') throw new Error(`histogram ${family} ${key} does not end at +Inf`);
      for (let i = 1; i < mine.length; i++)
        if (mine[i]!.value < mine[i - 1]!.value) throw new Error(`histogram ${family} buckets are not cumulative`);
      const count = samples.find(
        (s) => s.name === `${family}_count` && JSON.stringify({ ...s.labels, le: undefined }) === key,
      );
      if (!count || count.value !== mine.at(-1)!.value)
        throw new Error(`histogram ${family} ${key}: _count is not the +Inf bucket`);
    }
  }
  return { types, samples };
}

export function sum(x: Exposition, name: string, labels: Record<string, string> = {}): number {
  return x.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
