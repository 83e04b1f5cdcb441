/**
 * The CLI's side: `cordon users add` makes the first admin (password from stdin, hashed, an
 * audit event), and the write commands go through the manager's API with --manager, so they
 * are checked against the caller's role and audited under their name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEmbeddedBus, readAll, readTable } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { codecFor, TOPICS } from '@cordon/schemas';
import { waitFor } from '@cordon/testkit';
import { putBlock, putVm, startWorld } from './world.js';

const CLI = fileURLToPath(new URL('../../../cli/bin/cordon.js', import.meta.url));

function cordon(
  args: string[],
  o: { input?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_LOG_LEVEL: 'warn', ...o.env } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(o.input ?? '');
  });
}

test('cordon users add: the first admin from stdin, hashed, with an audit event; a short password is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-users-'));
  try {
    const short = await cordon(['users', 'add', 'alice', '--role', 'admin', '--data-dir', dir], { input: 'short\n' });
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /at least 12 characters/);
    const ok = await cordon(['users', 'add', 'alice', '--role', 'admin', '--data-dir', dir], {
      input: 'a long enough passphrase\n',
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /user alice created with role admin/);
    const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
    try {
      const rec = [...(await readTable(bus, TOPICS.policy)).values()]
        .map((r) => codecFor(TOPICS.policy).decode(r.value!))
        .find((r) => r.kind === 'user');
      assert.equal(rec?.id, 'alice');
      assert.match(JSON.parse(rec!.document).passwordHash, /^scrypt\$/);
      assert.ok(!rec!.document.includes('a long enough passphrase'));
      const audit = (await readAll(bus, TOPICS.audit)).map((r) => codecFor(TOPICS.audit).decode(r.value!));
      assert.deepEqual(
        audit.map((a) => [a.action, a.object, a.auth]),
        [['user.create', 'user:alice', 'cli']],
      );
    } finally {
      await bus.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cordon blocks lift --manager: refused with an analyst token, done with an operator token, audited under their names', async () => {
  const w = await startWorld();
  const files = mkdtempSync(join(tmpdir(), 'cordon-tokens-'));
  try {
    await putVm(w, 'web-1', 'hv1');
    await putBlock(w, 'watchdog:hv1', '203.0.113.66', 'web-1');
    const analyst = await w.userWithToken('analyst', { name: 'ana' });
    const operator = await w.userWithToken('operator', { name: 'olga' });
    writeFileSync(join(files, 'analyst'), analyst.token, { mode: 0o600 });
    await waitFor('the block', () => w.manager.views.blocks.size === 1);
    const url = w.manager.url;
    const no = await cordon([
      'blocks',
      'lift',
      '203.0.113.66',
      '--reason',
      'pentest',
      '--manager',
      url,
      '--token-file',
      join(files, 'analyst'),
    ]);
    assert.notEqual(no.code, 0);
    assert.match(no.stderr, /CORDON_ERR_MANAGER_FORBIDDEN/);
    const yes = await cordon(['blocks', 'lift', '203.0.113.66', '--reason', 'pentest', '--manager', url], {
      env: { CORDON_MANAGER_TOKEN: operator.token },
    });
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /lifted: 203\.0\.113\.66 on watchdog:hv1/);
    const rows = await waitFor('audit rows', async () => {
      const r = await w.store.query<{ actor: string; result: string }>(
        "SELECT actor, result FROM audit WHERE action = 'block.lift' ORDER BY ts",
      );
      return r.length >= 2 ? r : null;
    });
    assert.deepEqual(rows, [
      { actor: 'ana', result: 'denied' },
      { actor: 'olga', result: 'ok' },
    ]);
    for (const out of [no, yes])
      assert.ok(
        !`${out.stdout}${out.stderr}`.includes(operator.token) && !`${out.stdout}${out.stderr}`.includes(analyst.token),
      );
  } finally {
    rmSync(files, { recursive: true, force: true });
    await w.close();
  }
});

test('cordon policy apply --manager: the file and its rule files through the API, the same records as a local apply, audited', async () => {
  const w = await startWorld();
  const files = mkdtempSync(join(tmpdir(), 'cordon-tokens-'));
  try {
    const editor = await w.userWithToken('policy-editor', { name: 'pete' });
    const analyst = await w.userWithToken('analyst', { name: 'ana' });
    const file = fileURLToPath(new URL('../../../../rules/demo/policy.yaml', import.meta.url));
    const no = await cordon(['policy', 'apply', file, '--manager', w.manager.url], {
      env: { CORDON_MANAGER_TOKEN: analyst.token },
    });
    assert.notEqual(no.code, 0);
    assert.match(no.stderr, /CORDON_ERR_MANAGER_FORBIDDEN/);
    const yes = await cordon(['policy', 'apply', file, '--manager', w.manager.url], {
      env: { CORDON_MANAGER_TOKEN: editor.token },
    });
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /policy default: version 1, written by the manager as pete/);
    // what a local `cordon policy apply` writes: the policy and its rule file as a ruleset
    const p = w.manager.state.policy.policies.get('default')!;
    assert.deepEqual(
      p.doc.rulesets.map((r) => r.name),
      ['demo.rules'],
    );
    assert.equal(p.doc.rules['1900001'], 'prevent');
    assert.equal(p.doc.blocks.ttlS, 3600);
    assert.ok(w.manager.state.policy.rulesetParts('demo.rules').length > 0);
    assert.equal(w.manager.state.policyRecords.get('policy:default')!.updated_by, 'pete');
    const rows = await waitFor('policy audit rows', async () => {
      const r = await w.store.query<{ actor: string; result: string; object: string }>(
        "SELECT actor, result, object FROM audit WHERE action = 'policy.put' ORDER BY ts",
      );
      return r.length >= 2 ? r : null;
    });
    assert.deepEqual(rows, [
      { actor: 'ana', result: 'denied', object: 'policy:default' },
      { actor: 'pete', result: 'ok', object: 'policy:default' },
    ]);
  } finally {
    rmSync(files, { recursive: true, force: true });
    await w.close();
  }
});
