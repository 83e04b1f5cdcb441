import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeLine, LogInspector, parseInspectorConfig, type LogEvent } from '../src/index.js';
import type { CompiledRule } from '../src/detect-rules.js';
import type { LiteralPrefilter } from '../src/prefilter.js';
import { seededInts } from './seeded.js';

// The prefilter may run a rule that then does not match, never leave out one that would: over
// lines built from the rules' own literals (so rules meet some of their lists and not others),
// every rule that matches a line is among those the prefilter picked for it.

const SHARED = process.env.CORDON_SHARED ?? join(import.meta.dirname, '..', '..', '..', '..', '..', 'shared');
const SIGMA = join(SHARED, 'corpus', 'sigma', 'rules');
const REF = Date.UTC(2024, 2, 10);

test('the prefilter picks every rule that matches, from lines made of the rules’ literals', () => {
  const inspector = LogInspector.fromConfig(parseInspectorConfig({ sigmaDirs: existsSync(SIGMA) ? [SIGMA] : [] }));
  const lits = [
    ...new Set(inspector.rules.rules.flatMap((r) => (r.requirement ?? []).flatMap((list) => list.map((q) => q.lit)))),
  ].filter((l) => !/[\s"]/.test(l));
  assert.ok(lits.length > 100, `the rules' literals (${lits.length})`);
  const rnd = seededInts(7);
  const pick = (): string => {
    const l = lits[rnd(lits.length)]!;
    return rnd(3) === 0 ? l.toUpperCase() : l;
  };
  const pieces = (n: number): string => Array.from({ length: 1 + rnd(n) }, pick).join(rnd(2) ? '/' : '');
  const byKinds = (
    inspector as unknown as { rulesFor(k: number): { rules: CompiledRule[]; pre: LiteralPrefilter } }
  ).rulesFor.bind(inspector);
  let matched = 0;
  let picked = 0;
  let considered = 0;
  for (let n = 0; n < 4000; n++) {
    const status = ['200', '404', '400', '500', '301'][rnd(5)];
    const line =
      n % 2
        ? `203.0.113.9 - - [10/Mar/2024:08:01:02 +0000] "${rnd(2) ? 'GET' : 'POST'} /${pieces(4)}?${pieces(3)} HTTP/1.1" ${status} 12 "-" "${pieces(3)}"`
        : `Mar 10 08:01:02 host ${['sshd', 'sudo', 'su', 'vsftpd', 'dovecot'][rnd(5)]}[12]: ${pieces(5)} ${pieces(3)} from 203.0.113.9`;
    const meta = { refMs: REF };
    const ev = decodeLine(line, meta);
    const { rules, pre } = byKinds(ev.kinds);
    pre.select(ev);
    const chosen = new Set(Array.from(pre.order.subarray(0, pre.count), (k) => rules[k]!));
    // each rule asked about an event of its own: the scanner's state follows the event
    for (const rule of rules) {
      const fresh: LogEvent = decodeLine(line, meta);
      if (!rule.match(fresh)) continue;
      matched++;
      assert.ok(chosen.has(rule), `${rule.id} matches ${JSON.stringify(line)} but was not picked`);
    }
    picked += chosen.size;
    considered += rules.length;
  }
  assert.ok(matched > 500, `rules matched (${matched})`);
  assert.ok(picked < considered / 4, `the prefilter leaves most rules out (${picked} of ${considered})`);
});
