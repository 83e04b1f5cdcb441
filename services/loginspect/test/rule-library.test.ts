import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogInspector, normalizeAddress, parseInspectorConfig, type CompiledRule } from '../src/index.js';

/**
 * The rule library's own labelled examples (`cordon.examples` in each family file): every
 * `match` line must be matched by its rule with the address given, every `nomatch` line must be
 * left alone by it and by the whole library. A never-flag entry's `match` lines are benign lines
 * it must silence.
 */

const REF = Date.UTC(2024, 5, 1);
const inspector = LogInspector.fromConfig(parseInspectorConfig({ blocks: { ignore: [] } }));
const withExamples = inspector.rules.rules.filter((r) => r.examples);

test('the library loads whole and most rules carry examples', () => {
  assert.deepEqual(inspector.rules.refused, []);
  const files = new Set(inspector.rules.rules.map((r) => r.file));
  assert.ok(files.size >= 15, `${files.size} family files`);
  assert.ok(withExamples.length >= inspector.rules.rules.length * 0.8, `${withExamples.length} of ${inspector.rules.rules.length} rules carry examples`);
});

function explain(line: string): { rule: CompiledRule; srcIp: string | null }[] {
  return inspector.explain(inspector.newState(), line, { refMs: REF }).explanations;
}

for (const rule of withExamples) {
  test(`${rule.file} ${rule.id}: its examples`, () => {
    const ex = rule.examples!;
    for (const { line, ip } of ex.match) {
      if (rule.neverFlag) {
        const r = inspector.inspect(inspector.newState(), line, { refMs: REF });
        assert.equal(r.suppressedBy?.id, rule.id, `never-flag ${rule.id} must silence: ${line}`);
        continue;
      }
      const hit = explain(line).find((e) => e.rule === rule);
      assert.ok(hit, `${rule.id} must match: ${line}`);
      if (ip !== null) assert.equal(hit.srcIp, normalizeAddress(ip), `${rule.id} address in: ${line}`);
    }
    for (const line of ex.nomatch) {
      if (rule.neverFlag) {
        // a never-flag entry's nomatch lines are attacks it must leave to the rules
        const r = inspector.inspect(inspector.newState(), line, { refMs: REF });
        assert.equal(r.suppressedBy, null, `never-flag ${rule.id} must not silence: ${line}`);
        assert.ok(r.detections.length > 0, `the attack example of never-flag ${rule.id} must be detected: ${line}`);
        continue;
      }
      const all = explain(line);
      assert.ok(!all.some((e) => e.rule === rule), `${rule.id} must not match: ${line}`);
      const r = inspector.inspect(inspector.newState(), line, { refMs: REF });
      assert.deepEqual(
        r.detections.map((d) => d.rule.id),
        [],
        `benign example of ${rule.id} flagged by the library: ${line}`,
      );
    }
  });
}
