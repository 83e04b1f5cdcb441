/**
 * Row checks done in JS before a batch leaves the process. ClickHouse would reject most of these
 * too, but with a parser message about byte offsets; here the error names the row, the column and
 * what was expected. Some mistakes ClickHouse would NOT reject: with its default settings an
 * unknown key is skipped, a missing column silently becomes its default and an out-of-range
 * integer wraps — each of those is a silent data loss, so they are errors here.
 */

/** A column as system.columns describes it. */
export interface ColumnInfo {
  readonly name: string;
  readonly type: string;
  /** '' (no default), DEFAULT, MATERIALIZED, ALIAS or EPHEMERAL. */
  readonly default_kind: string;
}

type Check = (v: unknown) => string | undefined;

interface ColumnSpec {
  readonly name: string;
  /** Must be present and non-null. */
  readonly required: boolean;
  readonly nullable: boolean;
  readonly check: Check | undefined;
}

export interface TableSpec {
  readonly table: string;
  readonly columns: ReadonlyMap<string, ColumnSpec>;
  /** The same columns as an array: the per-row loop walks this, not the row's keys. */
  readonly list: readonly ColumnSpec[];
}

export function compileTableSpec(table: string, cols: readonly ColumnInfo[]): TableSpec {
  const columns = new Map<string, ColumnSpec>();
  for (const c of cols) {
    // MATERIALIZED and ALIAS columns are computed by ClickHouse; inserting them is an error.
    if (c.default_kind === 'MATERIALIZED' || c.default_kind === 'ALIAS') continue;
    let type = c.type;
    type = unwrap(type, 'LowCardinality');
    const nullable = type.startsWith('Nullable(');
    type = unwrap(type, 'Nullable');
    columns.set(c.name, {
      name: c.name,
      required: c.default_kind === '' && !nullable,
      nullable,
      check: checkFor(type),
    });
  }
  return { table, columns, list: [...columns.values()] };
}

function unwrap(type: string, wrapper: string): string {
  return type.startsWith(`${wrapper}(`) && type.endsWith(')') ? type.slice(wrapper.length + 1, -1) : type;
}

const INT_RANGES: Record<string, [number, number]> = {
  UInt8: [0, 0xff],
  UInt16: [0, 0xffff],
  UInt32: [0, 0xffffffff],
  Int8: [-0x80, 0x7f],
  Int16: [-0x8000, 0x7fff],
  Int32: [-0x80000000, 0x7fffffff],
};

function checkFor(type: string): Check | undefined {
  const range = INT_RANGES[type];
  if (range) {
    const [lo, hi] = range;
    return (v) =>
      typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi ? undefined : `an integer in ${lo}..${hi}`;
  }
  if (type === 'UInt64' || type === 'Int64') {
    const unsigned = type === 'UInt64';
    const digits = unsigned ? /^\d+$/ : /^-?\d+$/;
    return (v) => {
      if (typeof v === 'number')
        return Number.isSafeInteger(v) && (!unsigned || v >= 0)
          ? undefined
          : `a ${unsigned ? 'non-negative ' : ''}safe integer, a bigint or a decimal string`;
      if (typeof v === 'bigint') return !unsigned || v >= 0n ? undefined : 'a non-negative integer';
      if (typeof v === 'string') return digits.test(v) ? undefined : 'an integer as a decimal string';
      return 'an integer (number, bigint or decimal string)';
    };
  }
  if (type.startsWith('Float')) return (v) => (typeof v === 'number' ? undefined : 'a number');
  if (
    type === 'String' ||
    type.startsWith('FixedString(') ||
    type === 'IPv4' ||
    type === 'IPv6' ||
    type === 'UUID' ||
    type.startsWith('Enum')
  ) {
    return (v) => (typeof v === 'string' ? undefined : 'a string');
  }
  if (type.startsWith('DateTime') || type.startsWith('Date')) {
    // Numbers are refused: an epoch number is ambiguous (seconds? microseconds?) and ClickHouse
    // would read it as seconds. Use a Date, an ISO-8601 string, or microsToDateTime64().
    return (v) =>
      typeof v === 'string' || v instanceof Date
        ? undefined
        : 'a Date or a date-time string (see microsToDateTime64())';
  }
  return undefined;
}

/** The outcome of checking a batch: the first problem found, if any. */
export type RowProblem = { row: number; message: string };

export interface EncodedBatch {
  readonly body: string;
  readonly bytes: number;
}

/**
 * Check every row against the table and encode the batch as JSONEachRow.
 * Returns the first problem instead of throwing, so the caller decides how to report it.
 */
export function encodeRows(spec: TableSpec, rows: readonly object[]): EncodedBatch | RowProblem {
  const lines: string[] = new Array<string>(rows.length);
  const list = spec.list;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as Record<string, unknown> | null | undefined;
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      return {
        row: r,
        message: `rows[${r}] is ${Array.isArray(row) ? 'an array' : String(row)}, expected an object of column values`,
      };
    }
    // Walk the table's columns (a fixed, monomorphic loop), then compare how many keys the row has
    // with how many it matched: only a row with an unknown key pays for finding which one.
    let hasBigint = false;
    let matched = 0;
    for (let c = 0; c < list.length; c++) {
      const col = list[c]!;
      const v = row[col.name];
      if (v === undefined) {
        if (col.required) {
          return {
            row: r,
            message:
              col.name in row
                ? `rows[${r}] column "${col.name}" is undefined but the column is required`
                : `rows[${r}] is missing required column "${col.name}"`,
          };
        }
        if (col.name in row) matched++;
        continue;
      }
      matched++;
      if (v === null) {
        if (col.required)
          return { row: r, message: `rows[${r}] column "${col.name}" is null but the column is required` };
        continue;
      }
      if (typeof v === 'bigint') hasBigint = true;
      const want = col.check?.(v);
      if (want !== undefined)
        return { row: r, message: `rows[${r}] column "${col.name}" must be ${want}, got ${describe(v)}` };
    }
    let keys = 0;
    for (const k in row) if (Object.hasOwn(row, k)) keys++;
    if (keys !== matched) {
      const unknown = Object.keys(row).find((k) => !spec.columns.has(k)) ?? '?';
      return {
        row: r,
        message: `rows[${r}] has unknown column "${unknown}" (columns: ${[...spec.columns.keys()].join(', ')})`,
      };
    }
    lines[r] = hasBigint ? JSON.stringify(row, bigintAsString) : JSON.stringify(row);
  }
  const body = lines.join('\n') + '\n';
  return { body, bytes: Buffer.byteLength(body) };
}

export function isProblem(x: EncodedBatch | RowProblem): x is RowProblem {
  return (x as RowProblem).message !== undefined;
}

function bigintAsString(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return `${typeof v} ${String(v)}`;
}

/**
 * Format epoch microseconds as the exact `seconds.micros` text ClickHouse reads into
 * DateTime64(6). (A float number of seconds would lose the last microsecond digits.)
 */
export function microsToDateTime64(us: number | bigint): string {
  const v = BigInt(us);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const s = abs / 1_000_000n;
  const frac = (abs % 1_000_000n).toString().padStart(6, '0');
  if (neg)
    throw new RangeError(`microsToDateTime64: negative timestamp ${v} is before 1970 and not storable in DateTime64`);
  // Calendar text, not "<epoch>.<frac>": best_effort parsing reads a small epoch such as
  // "6.000000" (crafted captures start at 1970) as a day of month and rejects the row.
  const iso = new Date(Number(s) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${frac}`;
}
