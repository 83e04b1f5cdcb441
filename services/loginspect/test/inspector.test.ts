import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';
import { LogInspector, parseInspectorConfig } from '../src/index.js';

/** fail2ban's own test lines, each labelled with whether (and which address) its filters must match. */
const F2B = join(corpusPath('logs'), 'fail2ban', 'logs');
const REF = Date.UTC(2024, 5, 1);

const inspector = LogInspector.fromConfig(
  parseInspectorConfig({ blocks: { baseTtlS: 600, repeatFactor: 4, ignore: [] } }),
);

test('the built-in rules all compile', () => {
  assert.deepEqual(inspector.rules.refused, []);
  assert.ok(inspector.rules.rules.length >= 25);
});

test('an SSH brute force crosses the threshold in log time and repeat offenders get longer blocks', () => {
  const st = inspector.newState();
  const blocks: { ip: string; ttlMs: number; offense: number; line: number }[] = [];
  const lines: string[] = [];
  for (let i = 0; i < 12; i++)
    lines.push(
      `Jun  1 10:00:${String(i).padStart(2, '0')} h sshd[${100 + i}]: Failed password for root from 203.0.113.9 port ${4000 + i} ssh2`,
    );
  // an innocent typo from another address, and the attacker again two hours later
  lines.push('Jun  1 10:01:00 h sshd[300]: Failed password for alice from 198.51.100.1 port 5000 ssh2');
  for (let i = 0; i < 5; i++)
    lines.push(`Jun  1 12:00:0${i} h sshd[${400 + i}]: Invalid user admin${i} from 203.0.113.9 port ${6000 + i}`);
  lines.forEach((l, n) => {
    const r = inspector.inspect(st, l, { refMs: REF });
    assert.equal(r.detections.length > 0, true, l);
    assert.equal(r.detections[0]!.srcIp, l.includes('198.51') ? '198.51.100.1' : '203.0.113.9');
    for (const b of r.blocks) blocks.push({ ip: b.ip, ttlMs: b.ttlMs, offense: b.offense, line: n + 1 });
  });
  assert.deepEqual(blocks, [
    { ip: '203.0.113.9', ttlMs: 600_000, offense: 1, line: 5 },
    { ip: '203.0.113.9', ttlMs: 2_400_000, offense: 2, line: 10 },
    { ip: '203.0.113.9', ttlMs: 9_600_000, offense: 3, line: 18 },
  ]);
});

test('failures spread wider than the window never block; replay gives the same output', () => {
  const run = () => {
    const st = inspector.newState();
    const out: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = inspector.inspect(
        st,
        `Jun  1 ${String(i).padStart(2, '0')}:00:00 h sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2`,
        { refMs: REF },
      );
      out.push(JSON.stringify([r.detections.map((d) => [d.rule.id, d.srcIp]), r.blocks.length]));
    }
    return out;
  };
  const a = run();
  assert.ok(
    a.every((x) => x.endsWith(',0]')),
    'one failure an hour is below 5 in 10 minutes',
  );
  assert.deepEqual(run(), a);
});

test('the sshd session memory attributes lines that do not name the client', () => {
  const st = inspector.newState();
  inspector.inspect(st, 'Jun  1 10:00:00 h sshd[77]: Connection from 192.0.2.44 port 5000 on 10.0.0.1 port 22', {
    refMs: REF,
  });
  const r = inspector.inspect(
    st,
    'Jun  1 10:00:05 h sshd[77]: Disconnecting: Too many authentication failures [preauth]',
    { refMs: REF },
  );
  assert.equal(r.detections[0]?.srcIp, '192.0.2.44');
  // unknown session: no address, so nothing to report
  assert.equal(
    inspector.inspect(st, 'Jun  1 10:00:05 h sshd[78]: Disconnecting: Too many authentication failures [preauth]', {
      refMs: REF,
    }).detections.length,
    0,
  );
});

test('web attacks in access logs name the client; benign requests stay quiet', () => {
  const st = inspector.newState();
  const at = (req: string, status = 200, ua = 'Mozilla/5.0') =>
    inspector
      .inspect(st, `203.0.113.5 - - [01/Jun/2024:10:00:00 +0000] "${req}" ${status} 10 "-" "${ua}"`, { refMs: REF })
      .detections.map((d) => d.rule.id);
  assert.ok(
    at('GET /item.php?id=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1').includes('cordon-web-sqli'),
  );
  assert.ok(at('GET /search?q=%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1').includes('cordon-web-xss'));
  assert.ok(at('GET /download?f=..%252f..%252f..%252fetc%252fpasswd HTTP/1.1').includes('cordon-web-traversal'));
  assert.ok(at('GET /scripts/..%c0%af../winnt/system32/cmd.exe?/c+dir HTTP/1.0', 404).length >= 2);
  assert.ok(at('GET / HTTP/1.1', 200, 'sqlmap/1.7').includes('cordon-web-scanner-agent'));
  assert.ok(at('GET /.git/config HTTP/1.1', 404).includes('cordon-web-sensitive-probe'));
  assert.deepEqual(at('GET /blog/2015/05/vim-tips.html?utm_source=x&page=2 HTTP/1.1'), []);
  assert.deepEqual(at('GET /search?q=select+a+laptop+from+our+store HTTP/1.1'), []);
  assert.deepEqual(at('POST /api/v1/items HTTP/1.1', 201), []);
});

test(
  'fail2ban labelled lines: recall with the right address and false positives',
  { skip: skipWithoutCorpus('logs') },
  () => {
    let truth = 0;
    let right = 0;
    let negatives = 0;
    let fps = 0;
    for (const name of readdirSync(F2B)) {
      const st = inspector.newState();
      let label: { match?: boolean; host?: string } | null = null;
      for (const raw of readFileSync(join(F2B, name), 'utf8').split('\n')) {
        if (raw.startsWith('# failJSON:')) {
          try {
            label = JSON.parse(raw.slice(raw.indexOf(':') + 1)) as { match?: boolean; host?: string };
          } catch {
            label = null;
          }
          continue;
        }
        if (raw.startsWith('#') || !raw.trim()) continue;
        const ips = inspector.inspect(st, raw, { refMs: REF }).detections.map((d) => d.srcIp);
        if (label?.match) {
          truth++;
          if (ips.includes(String(label.host))) right++;
        } else if (label) {
          negatives++;
          if (ips.length) fps++;
        }
        label = null;
      }
    }
    assert.ok(right / truth >= 0.85, `recall ${right}/${truth}`);
    assert.ok(fps / negatives <= 0.05, `false positives ${fps}/${negatives}`);
  },
);
