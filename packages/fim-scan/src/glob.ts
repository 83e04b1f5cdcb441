/**
 * Glob patterns of FIM policies, compiled once to regular expressions.
 *
 * - `*` any run of characters except `/`; `?` one character except `/`; `[abc]`, `[a-z]`,
 *   `[!x]` classes; `{a,b}` alternatives; `**` as a whole segment: any number of segments.
 * - A pattern with a `/` matches the whole absolute path; one without matches the base name
 *   (as .gitignore does), so `*.log` excludes log files anywhere below the watched paths.
 */
export interface GlobMatcher {
  readonly source: string;
  matches(absPath: string): boolean;
}

export function compileGlob(pattern: string): GlobMatcher {
  const onBase = !pattern.includes('/');
  const re = new RegExp(`^${translate(pattern)}$`, 's');
  return {
    source: pattern,
    matches(absPath: string): boolean {
      return re.test(onBase ? absPath.slice(absPath.lastIndexOf('/') + 1) : absPath);
    },
  };
}

/** Throws a SyntaxError naming the problem for a pattern that cannot be compiled. */
function translate(p: string): string {
  let out = '';
  let depth = 0; // inside {…}
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      if (p[i + 1] === '*') {
        const segStart = i === 0 || p[i - 1] === '/';
        const segEnd = i + 2 === p.length || p[i + 2] === '/';
        if (segStart && segEnd) {
          if (p[i + 2] === '/') {
            out += '(?:.*/)?'; // "**/" : zero or more whole segments
            i += 2;
          } else {
            out += '.*';
            i += 1;
          }
          continue;
        }
      }
      out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const close = p.indexOf(']', i + 2);
      if (close < 0) throw new SyntaxError(`unclosed "[" in glob ${JSON.stringify(p)}`);
      let body = p.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else if (c === '{') {
      depth++;
      out += '(?:';
    } else if (c === '}' && depth > 0) {
      depth--;
      out += ')';
    } else if (c === ',' && depth > 0) out += '|';
    else if (c === '\\' && i + 1 < p.length) out += escape(p[++i]!);
    else out += escape(c);
  }
  if (depth !== 0) throw new SyntaxError(`unclosed "{" in glob ${JSON.stringify(p)}`);
  return out;
}

function escape(c: string): string {
  return /[.+^$()|[\]{}\\*?]/.test(c) ? `\\${c}` : c;
}
