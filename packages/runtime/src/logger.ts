import { pino, destination, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

const REDACT = ['password', 'secret', 'token', '*.password', '*.secret', '*.token', 'sasl.password'];

/** `json`: one JSON object a line (for machines); `pretty`: coloured lines for people; `auto`: pretty on a terminal. */
export type LogFormat = 'auto' | 'pretty' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'pretty', 'json'];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface LoggerOptions {
  level?: string;
  /** Default: CORDON_LOG_FORMAT, else auto. */
  format?: LogFormat;
  /** Whether stderr is a terminal (default: process.stderr.isTTY). */
  tty?: boolean;
}

/** The format `auto` resolves to: pretty on a terminal, JSON on a pipe or a file. */
export function resolveLogFormat(
  format: LogFormat | undefined,
  tty: boolean = process.stderr.isTTY === true,
): 'pretty' | 'json' {
  const f = format ?? (process.env.CORDON_LOG_FORMAT as LogFormat | undefined) ?? 'auto';
  if (f === 'pretty' || f === 'json') return f;
  return tty ? 'pretty' : 'json';
}

/**
 * Structured logs on stderr (stdout is for results); secrets redacted. Level from
 * CORDON_LOG_LEVEL (default info). On a terminal the lines are human-readable and coloured
 * (pino-pretty, written synchronously so nothing is lost when the process exits); on a pipe,
 * or with CORDON_LOG_FORMAT=json, they are JSON, one object a line.
 */
export function createLogger(name = 'cordon', levelOrOptions: string | LoggerOptions = {}): Logger {
  const opts = typeof levelOrOptions === 'string' ? { level: levelOrOptions } : levelOrOptions;
  const level = opts.level ?? process.env.CORDON_LOG_LEVEL ?? 'info';
  const tty = opts.tty ?? process.stderr.isTTY === true;
  const base = { name, level, redact: { paths: REDACT, censor: '[redacted]' } };
  if (resolveLogFormat(opts.format, tty) === 'json') return pino(base, destination(2));
  const colorize = tty && !process.env.NO_COLOR;
  return pino(
    base,
    pretty({
      destination: 2,
      sync: true,
      colorize,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      singleLine: true,
    }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
