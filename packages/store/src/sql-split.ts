/**
 * Split a migration file into statements. The ClickHouse HTTP interface runs one statement per
 * request, so files with several statements are split here, on `;` outside string literals,
 * quoted identifiers and comments. Statements that are only whitespace or comments are dropped.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let hasCode = false;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const ch = sql[i]!;
    const next = sql[i + 1];
    if (ch === '-' && next === '-') {
      i = endOfLine(sql, i);
    } else if (ch === '#') {
      i = endOfLine(sql, i);
    } else if (ch === '/' && next === '*') {
      const close = sql.indexOf('*/', i + 2);
      i = close === -1 ? n : close + 2;
    } else if (ch === "'" || ch === '"' || ch === '`') {
      i = endOfQuoted(sql, i, ch);
      hasCode = true;
    } else if (ch === ';') {
      if (hasCode) out.push(sql.slice(start, i).trim());
      start = i + 1;
      hasCode = false;
      i++;
    } else {
      if (!/\s/.test(ch)) hasCode = true;
      i++;
    }
  }
  if (hasCode) out.push(sql.slice(start).trim());
  return out;
}

function endOfLine(sql: string, i: number): number {
  const nl = sql.indexOf('\n', i);
  return nl === -1 ? sql.length : nl + 1;
}

/** ClickHouse quotes escape with a backslash or by doubling the quote character. */
function endOfQuoted(sql: string, i: number, quote: string): number {
  let j = i + 1;
  while (j < sql.length) {
    const c = sql[j];
    if (c === '\\') {
      j += 2;
    } else if (c === quote) {
      if (sql[j + 1] === quote) j += 2;
      else return j + 1;
    } else {
      j++;
    }
  }
  return sql.length;
}
