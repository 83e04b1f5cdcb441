import type { LogEvent } from './decode.js';

/**
 * What `cordon logtest` tells a user about their log after the detections: how many lines
 * each decoder read, which programs wrote them, and the lines no decoder understood, grouped
 * by shape (addresses, numbers and hex runs folded) so the top unknown shapes show what Cordon
 * cannot read yet. Bounded: at most MAX_SHAPES shapes are kept.
 */
const MAX_SHAPES = 10_000;
const TOP = 10;

export class Coverage {
  lines = 0;
  readonly decoders = new Map<string, number>();
  readonly programs = new Map<string, number>();
  readonly shapes = new Map<string, { count: number; example: string }>();

  add(ev: LogEvent): void {
    this.lines++;
    const d = ev.decoder ?? 'text';
    this.decoders.set(d, (this.decoders.get(d) ?? 0) + 1);
    if (ev.program) this.programs.set(ev.program, (this.programs.get(ev.program) ?? 0) + 1);
    if (d === 'text' || d === 'stamped-text') {
      const shape = shapeOf(ev.raw);
      const s = this.shapes.get(shape);
      if (s) s.count++;
      else if (this.shapes.size < MAX_SHAPES) this.shapes.set(shape, { count: 1, example: ev.raw });
    }
  }

  summary(): string {
    const unknown = (this.decoders.get('text') ?? 0) + (this.decoders.get('stamped-text') ?? 0);
    const out = [
      `logtest coverage: ${this.lines} lines read; ${this.lines - unknown} decoded, ${unknown} not understood by any decoder`,
    ];
    out.push('  lines per decoder:');
    for (const [d, n] of sorted(this.decoders)) out.push(`    ${String(n).padStart(8)}  ${d}`);
    if (this.programs.size) {
      out.push(`  programs (top ${Math.min(TOP, this.programs.size)} of ${this.programs.size}):`);
      for (const [p, n] of sorted(this.programs).slice(0, TOP)) out.push(`    ${String(n).padStart(8)}  ${p}`);
    }
    if (this.shapes.size) {
      out.push(`  top unknown shapes (of ${this.shapes.size}; <ip>, <hex>, 0 stand for addresses, hex runs, numbers):`);
      const top = [...this.shapes].sort((a, b) => b[1].count - a[1].count).slice(0, TOP);
      for (const [shape, s] of top)
        out.push(`    ${String(s.count).padStart(8)}  ${clip(shape, 140)}\n              e.g. ${clip(s.example, 140)}`);
    }
    return `${out.join('\n')}\n`;
  }
}

function sorted(m: Map<string, number>): [string, number][] {
  return [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

const IPV4 = /\b\d{1,3}(?:\.\d{1,3}){3}\b/g;
const IPV6 = /\b[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}\b/g;
const HEXRUN = /\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{6,}\b/g;
const NUM = /\d+/g;

/** A line with its variable parts folded: `Mar 10 08:01:02 x[12]: from 1.2.3.4` → `Mar 0 0:0:0 x[0]: from <ip>`. */
export function shapeOf(raw: string): string {
  return raw
    .slice(0, 200)
    .replace(IPV4, '<ip>')
    .replace(IPV6, (m) => (m.includes('::') || m.split(':').length > 4 ? '<ip>' : m))
    .replace(HEXRUN, '<hex>')
    .replace(NUM, '0')
    .replace(/\s+/g, ' ');
}
