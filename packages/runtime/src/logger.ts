import { pino, destination, type Logger } from 'pino';

export type { Logger };

const REDACT = ['password', 'secret', 'token', '*.password', '*.secret', '*.token', 'sasl.password'];

/** Structured logs; secrets redacted. Level from CORDON_LOG_LEVEL (default info, 'silent' in tests). */
export function createLogger(name = 'cordon', level = process.env.CORDON_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' } }, destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });
