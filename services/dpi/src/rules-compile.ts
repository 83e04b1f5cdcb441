import { CordonError, describeError, type Context } from '@cordon/runtime';
import { Rules, type RuleFailure, type RuleSource } from '@cordon/native';
import { ERR_DPI_RULE, ERR_DPI_RULES_COMPILE, ERR_DPI_RULES_TIMEOUT } from './errors.js';

export interface RuleCompilerOptions {
  /** How long a compilation may take before its result is given up. */
  timeLimitMs: number;
  /** Put a compiled set in force. */
  apply: (rules: Rules) => void;
}

/**
 * Rule sets compiled off the event loop (on a libuv pool thread), one at a time, each within a
 * time limit, while the set in force keeps inspecting packets. A policy record is hostile
 * input: a set that fails or takes longer than the limit is not applied (a coded error says
 * which), and the old set stays. Requests that arrive during a compilation wait, and only the
 * newest is compiled next. A compilation past its limit cannot be interrupted (it is native
 * code on its own thread): the next one starts only once it has ended, so a hostile set can
 * hold one pool thread at most, never the process.
 */
export class RuleCompiler {
  private running: Promise<void> | null = null;
  private pending: RuleSource[] | null = null;
  private closed = false;

  constructor(
    private readonly ctx: Context,
    private readonly opts: RuleCompilerOptions,
  ) {}

  /** Compile `sources` when the compilation in progress (if any) is over; a newer request replaces a waiting one. */
  request(sources: RuleSource[]): void {
    this.pending = sources;
    this.running ??= this.drain();
  }

  /** Resolves when nothing is compiling or waiting. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Results that land from now on are dropped (the stage stopped). */
  close(): void {
    this.closed = true;
    this.pending = null;
  }

  private async drain(): Promise<void> {
    while (this.pending && !this.closed) {
      const sources = this.pending;
      this.pending = null;
      await this.compileOne(sources);
    }
    this.running = null;
  }

  private async compileOne(sources: RuleSource[]): Promise<void> {
    const { log, metrics } = this.ctx;
    const started = performance.now();
    const job = Rules.compileAsync(sources);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(() => resolve('timeout'), this.opts.timeLimitMs)),
    );
    let result: Rules | 'timeout';
    try {
      result = await Promise.race([job, limit]);
    } catch (err) {
      metrics.inc('rules_compile_failed');
      log.error(
        { err: describeError(ERR_DPI_RULES_COMPILE.withCause(err, (err as Error).message)) },
        'A rule set could not be compiled; the rules in force stay.',
      );
      return;
    } finally {
      clearTimeout(timer);
    }
    if (result === 'timeout') {
      metrics.inc('rules_compile_timeouts');
      log.error(
        {
          err: describeError(
            ERR_DPI_RULES_TIMEOUT(this.opts.timeLimitMs / 1000, sources.map((s) => s.name).join(', ')),
          ),
        },
        'A rule set took too long to compile; the rules in force stay.',
      );
      await job.catch(() => undefined);
      log.info({ ms: Math.round(performance.now() - started) }, 'The abandoned rule set compilation has ended.');
      return;
    }
    metrics.set('rules_compile_ms', Math.round(performance.now() - started));
    if (this.closed) return;
    logReport(result, this.ctx);
    this.opts.apply(result);
  }
}

/** What a compiled set loaded, and each rule that failed as a coded error naming its sid. */
export function logReport(rules: Rules, ctx: Context): void {
  const r = rules.report();
  ctx.log.info({ rules: r.rules, loaded: r.loaded, failed: r.failed, matcher: rules.matcher() }, 'Rule set compiled.');
  ctx.metrics.set('rules_loaded', r.loaded);
  ctx.metrics.set('rules_failed', r.failed);
  for (const f of r.failures.slice(0, 20))
    ctx.log.warn({ err: describeError(ruleFailure(f)), sid: f.sid }, 'A rule could not be loaded.');
}

/** A failed rule as an error: the engine's own code when its reason starts with one (CORDON_ERR_RULE_CONTENT_TOO_LONG: …), else CORDON_ERR_DPI_RULE. */
export function ruleFailure(f: RuleFailure): CordonError {
  const m = /^(CORDON_ERR_[A-Z0-9_]+): (.*)$/s.exec(f.reason);
  const err = ERR_DPI_RULE(f.sid, f.file, f.line, m ? m[2]! : f.reason);
  return m ? new CordonError(m[1]!, err.message) : err;
}
