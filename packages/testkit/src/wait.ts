/**
 * Poll `cond` until it holds (truthy) or `ms` pass; then throw naming `what`. Tests on a
 * loaded 2-core machine wait for conditions, never for fixed times.
 */
export async function waitFor<T>(
  what: string,
  cond: () => T | Promise<T>,
  ms = 20_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
