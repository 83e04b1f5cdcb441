/**
 * The README's first command: `cordon up` on the embedded defaults and a fresh data dir runs
 * the demo — everyday traffic with attacks in it, an SSH brute force in an agent's auth log —
 * and prints from ClickHouse its flows, the alerts by rule and severity, and the block
 * decisions with their TTLs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');

/** The rows of the text table printed under `title` (columns cut where its dashes are). */
function table(stdout: string, title: string): Array<Record<string, string>> {
  const lines = stdout.split('\n');
  const at = lines.findIndex((l) => l.startsWith(title));
  assert.ok(at >= 0, `a "${title}" table in:\n${stdout}`);
  const [head, dashes] = [lines[at + 1]!, lines[at + 2]!];
  const cols: Array<[number, number]> = [];
  for (const m of dashes.matchAll(/-+/g)) cols.push([m.index, m.index + m[0].length]);
  const names = cols.map(([a, b]) => head.slice(a, b).trim());
  const rows: Array<Record<string, string>> = [];
  for (const l of lines.slice(at + 3)) {
    if (l.trim() === '' || l.startsWith('(')) break; // the end, or a note under the table
    // the last column runs to the end of the line
    rows.push(
      Object.fromEntries(
        cols.map(([a, b], i) => [names[i]!, (i === cols.length - 1 ? l.slice(a) : l.slice(a, b)).trim()]),
      ),
    );
  }
  return rows;
}

test(
  'cordon up shows the demo: flows, alerts by rule and severity, and blocks with their TTLs, from ClickHouse',
  { timeout: 180_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-up-'));
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'up', '--exit'], {
        cwd: dir,
        env: { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_LOG_LEVEL: 'warn' },
      });

      const totals = table(stdout, 'Flows from replay:demo.pcap');
      // 20 web sessions (DNS + TCP), a ping, a 12-port scan; then two exploit connections, a C2 lookup and the call to it
      assert.equal(Number(totals[0]!.flows), 20 * 2 + 1 + 12 + 4);
      const top = table(stdout, 'Top conversations:');
      assert.ok(
        top.some((r) => r.src === '203.0.113.66' && r.dst === '10.0.0.10' && r.port === '80' && r.flows === '2'),
        "the web attacker's two connections",
      );

      const alerts = table(stdout, 'Alerts by rule and severity');
      const byRule = new Map(alerts.map((r) => [r.rule!, r]));
      for (const [rule, what] of [
        ['sid:1900001', 'path traversal'],
        ['sid:1900002', 'command injection'],
        ['sid:1900003', 'C2 lookup'],
        ['sid:1900004', 'port scan'],
        ['cordon:cordon-auth-sshd-failed', 'SSH brute force'],
      ] as const) {
        const r = byRule.get(rule);
        assert.ok(r && Number(r.alerts) > 0, `${what} (${rule}) alerted:\n${stdout}`);
        assert.match(r.severity!, /^[1-4]$/, `${rule} has a severity`);
      }
      assert.equal(byRule.get('sid:1900001')!.stage, 'dpi');
      assert.equal(byRule.get('sid:1900001')!.severity, '1', 'classtype web-application-attack is priority 1');
      assert.equal(byRule.get('sid:1900004')!.severity, '2', 'classtype attempted-recon is priority 2');
      assert.equal(byRule.get('cordon:cordon-auth-sshd-failed')!.stage, 'loginspect');

      const blocks = table(stdout, 'Blocks in force');
      // prevent mode (policy) → the responder blocks the web attacker on the watchdog of web-1's host, for an hour
      const web = blocks.find((b) => b.target === '203.0.113.66');
      assert.ok(web, `a block of the web attacker:\n${stdout}`);
      assert.equal(web.enforcer, 'watchdog:hv1');
      assert.equal(web.ttl_s, '3600');
      assert.equal(web.rule, 'sid:1900001');
      assert.match(web.state!, /^in (59|60) min$/, 'still in force');
      // the SSH brute force → loginspect asks db-1's agent to block the address
      const ssh = blocks.find((b) => b.target === '198.51.100.23');
      assert.ok(ssh, `a block of the SSH attacker:\n${stdout}`);
      assert.match(ssh.enforcer!, /^agent:agt-[0-9a-f]{16}$/);
      assert.ok(Number(ssh.ttl_s) > 0);
      assert.match(ssh.state!, /^in \d+ min$/);
      assert.equal(blocks.length, 2, 'one block per attacker: the detect-mode rules block nothing');

      assert.match(stdout, /Next, ask ClickHouse yourself:\n {2}\.\/cordon query "SELECT/);
      assert.match(stdout, /\.\/cordon rules update installs Emerging Threats Open/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
