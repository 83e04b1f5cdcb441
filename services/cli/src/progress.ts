/**
 * A progress bar with rate and ETA on stderr, for work that takes more than a second (replays,
 * rule downloads). Only on a terminal: on a pipe or a file it prints nothing, so scripts and
 * logs stay clean. It appears after `delayMs`, so quick work shows none.
 */
export interface ProgressOptions {
  unit?: 'bytes' | 'items';
  delayMs?: number;
  stream?: NodeJS.WriteStream;
  now?: () => number;
}

const KB = 1024;
function amount(n: number, unit: 'bytes' | 'items'): string {
  if (unit === 'items')
    return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));
  if (n >= KB * KB * KB) return `${(n / KB / KB / KB).toFixed(1)} GiB`;
  if (n >= KB * KB) return `${(n / KB / KB).toFixed(1)} MiB`;
  if (n >= KB) return `${(n / KB).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

function clock(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const mm = String(Math.floor((t % 3600) / 60)).padStart(h ? 2 : 1, '0');
  const ss = String(t % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class ProgressBar {
  private readonly unit: 'bytes' | 'items';
  private readonly stream: NodeJS.WriteStream;
  private readonly now: () => number;
  private readonly started: number;
  private readonly delayMs: number;
  private readonly enabled: boolean;
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly label: string,
    opts: ProgressOptions = {},
  ) {
    this.unit = opts.unit ?? 'bytes';
    this.stream = opts.stream ?? process.stderr;
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    this.delayMs = opts.delayMs ?? 1000;
    this.enabled = this.stream.isTTY === true;
  }

  /** The line as it would be drawn (exported for tests). */
  render(done: number, total: number | undefined, width = 80): string {
    const secs = Math.max((this.now() - this.started) / 1000, 1e-3);
    const rate = done / secs;
    const head = `${this.label} `;
    if (!total) return `${head}${amount(done, this.unit)}  ${amount(rate, this.unit)}/s  ${clock(secs)}`;
    const frac = Math.min(1, done / total);
    const tail = ` ${String(Math.floor(frac * 100)).padStart(3)}%  ${amount(done, this.unit)}/${amount(total, this.unit)}  ${amount(rate, this.unit)}/s  ETA ${clock(rate > 0 ? (total - done) / rate : NaN)}`;
    // the bar takes what room is left, and goes when too little is
    const barWidth = Math.min(40, width - 1 - head.length - tail.length - 2);
    if (barWidth < 10) return `${head}${tail.trimStart()}`;
    const full = Math.round(frac * barWidth);
    return `${head}[${'#'.repeat(full)}${'-'.repeat(barWidth - full)}]${tail}`;
  }

  update(done: number, total?: number): void {
    if (!this.enabled) return;
    const t = this.now();
    if (t - this.started < this.delayMs || t - this.lastDraw < 100) return;
    this.lastDraw = t;
    const width = this.stream.columns || 80;
    this.stream.write(`\r\x1b[2K${this.render(done, total, width).slice(0, width - 1)}`);
    this.drawn = true;
  }

  /** Take the bar off the screen (the result is printed by the caller). */
  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }
}
