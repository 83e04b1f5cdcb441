/**
 * Every Cordon error carries a stable code (CORDON_ERR_…), a message that says what to do,
 * and the underlying cause. Packages declare their errors once, in their own errors.ts,
 * with `defineError`.
 */
export class CordonError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'CordonError';
  }
}

export interface ErrorFactory<A extends unknown[]> {
  readonly code: string;
  (...args: A): CordonError;
  is(err: unknown): err is CordonError;
}

/** Declare an error once: `const ERR_X = defineError('CORDON_ERR_X', (k: string) => \`…${k}\`)`. */
export function defineError<A extends unknown[]>(
  code: string,
  message: (...args: A) => string,
): ErrorFactory<A> & { withCause(cause: unknown, ...args: A): CordonError } {
  const make = ((...args: A) => new CordonError(code, message(...args))) as ErrorFactory<A> & {
    withCause(cause: unknown, ...args: A): CordonError;
  };
  Object.defineProperty(make, 'code', { value: code });
  make.is = (err: unknown): err is CordonError => err instanceof CordonError && err.code === code;
  make.withCause = (cause: unknown, ...args: A) => new CordonError(code, message(...args), { cause });
  return make;
}

/** A short, single-line description of any thrown value, for DLQ records and logs. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof CordonError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: 'CORDON_ERR_UNEXPECTED', message: err.message };
  return { code: 'CORDON_ERR_UNEXPECTED', message: String(err) };
}
