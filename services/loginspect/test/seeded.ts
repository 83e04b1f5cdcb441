/**
 * Whole numbers below `n` from a seeded generator (a 31-bit linear congruential one): generated
 * test inputs that are the same in every run, so a failure reproduces.
 */
export function seededInts(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    // its high bits: the low ones of such a generator repeat with short periods (bit k every
    // 2^(k+1) draws), so `s % n` would never give some values in some call patterns
    return Math.floor((s / 0x80000000) * n);
  };
}
