/**
 * Syslog targets against a real rsyslog (Debian's package), started by the test on 127.0.0.1
 * with a private configuration: UDP, TCP and TLS inputs (the TLS one with a CA and server
 * certificate the test makes with openssl), everything received written to a file that the
 * test parses. Each of the six targets (CEF and LEEF over each transport) names itself in the
 * HOSTNAME field, so the file tells which arrived how.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { notifyStage } from '../src/index.js';
import { alert } from './fixtures.js';

const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p));
const GTLS = [
  '/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so',
  '/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so',
  '/usr/lib/rsyslog/lmnsd_gtls.so',
].some((p) => existsSync(p));
const skip = !RSYSLOGD
  ? 'rsyslogd is not installed (scripts/setup.sh installs rsyslog and rsyslog-gnutls with CORDON_SETUP_TEST=1)'
  : !GTLS
    ? 'rsyslog-gnutls is not installed'
    : false;

async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const { port } = s.address();
    s.close();
    return port;
  }
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const listening = (port: number) =>
  new Promise<boolean>((res) => {
    const c = connect({ host: '127.0.0.1', port }, () => {
      c.destroy();
      res(true);
    });
    c.on('error', () => res(false));
  });

test('rsyslog receives CEF and LEEF over UDP, TCP and TLS', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-rsyslog-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=cordon-test-ca',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
  );
  const [udp, tcp, tls] = [await freePort('udp'), await freePort('tcp'), await freePort('tcp')];
  const out = join(dir, 'received.log');
  writeFileSync(
    join(dir, 'rsyslog.conf'),
    [
      `global(workDirectory="${dir}" defaultNetstreamDriverCAFile="${dir}/ca.pem" defaultNetstreamDriverCertFile="${dir}/server.pem" defaultNetstreamDriverKeyFile="${dir}/server.key" maxMessageSize="64k")`,
      'module(load="imudp")',
      'module(load="imtcp" maxSessions="100")',
      `input(type="imudp" address="127.0.0.1" port="${udp}")`,
      `input(type="imtcp" address="127.0.0.1" port="${tcp}")`,
      `input(type="imtcp" address="127.0.0.1" port="${tls}" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")`,
      `action(type="omfile" file="${out}" template="RSYSLOG_SyslogProtocol23Format")`,
      '',
    ].join('\n'),
  );
  const rsyslog = spawn(RSYSLOGD!, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslogd.pid')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  rsyslog.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  let stage: Awaited<ReturnType<typeof runStage>> | undefined;
  try {
    await waitFor(
      `rsyslog listening on ${tcp} and ${tls} (${stderr})`,
      async () => (await listening(tcp)) && (await listening(tls)),
      20_000,
      100,
    );
    await bus.admin.ensureTopics(allTopicSpecs());
    const targets = (['udp', 'tcp', 'tls'] as const).flatMap((transport) =>
      (['cef', 'leef'] as const).map((format) => ({
        name: `${transport}-${format}`,
        hostname: `${transport}-${format}`,
        transport,
        format,
        host: '127.0.0.1',
        port: { udp, tcp, tls }[transport],
        ...(transport === 'tls' ? { caFile: join(dir, 'ca.pem'), servername: 'localhost' } : {}),
        fromBeginning: true,
        retry: { maxAttempts: 50, initialMs: 50, maxMs: 500 },
      })),
    );
    stage = await runStage(notifyStage, {
      bus,
      ctx,
      config: { siem: { enabled: false }, silence: { enabled: false }, syslog: targets },
    });
    const codec = codecFor(TOPICS.alerts);
    const alerts = Array.from({ length: 5 }, (_, i) =>
      alert(i, { signature: `Attack number ${i} | with = signs`, severity: 1 + (i % 4) }),
    );
    await bus.producer().send(
      TOPICS.alerts,
      alerts.map((a) => ({ key: Buffer.from(a.vm ?? ''), value: codec.encode(a) })),
    );

    const lines = await waitFor(
      '30 messages in the file rsyslog writes',
      () => {
        const l = existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : [];
        return l.length >= 30 ? l : null;
      },
      60_000,
      100,
    );
    const seen = new Map<string, number>();
    for (const line of lines) {
      // RFC 5424 as rsyslog re-renders it: <PRI>1 TS HOST APP PROCID MSGID SD MSG
      const m = /^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[cordon@32473 alert_id="(a\d+)"[^\]]*\]) (.*)$/.exec(line);
      assert.ok(m, `an RFC 5424 message: ${line}`);
      const [, pri, , host, app, , msgid, , id, msg] = m;
      assert.equal(app, 'cordon');
      const a = alerts.find((x) => x.alert_id === id)!;
      assert.equal(Number(pri), 16 * 8 + Math.min(5, a.severity + 1), 'facility local0, severity from the alert');
      const format = host!.split('-')[1];
      assert.equal(msgid, format!.toUpperCase());
      if (format === 'cef') {
        assert.ok(msg!.startsWith('CEF:0|Cordon|Cordon|0.1.0|sid:1900001|Attack number '), msg);
        const ext = msg!.split('|').slice(7).join('|');
        assert.match(ext, /(^| )src=203\.0\.113\.66( |$)/);
        assert.match(ext, new RegExp(`externalId=${id}( |$)`));
        assert.match(msg!, /\\\| with = signs\|/, 'the pipe in the name is escaped');
      } else {
        assert.ok(msg!.startsWith('LEEF:2.0|Cordon|Cordon|0.1.0|sid:1900001|^|'), msg);
        const attrs = Object.fromEntries(
          msg!
            .split('|')
            .slice(6)
            .join('|')
            .split('^')
            .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        );
        assert.equal(attrs.src, '203.0.113.66');
        assert.equal(attrs.externalId, id);
        assert.equal(attrs.communityId, '1:LQU9qZlK+B5F3KDmev6m5PMibrg=');
      }
      seen.set(`${host}|${id}`, (seen.get(`${host}|${id}`) ?? 0) + 1);
    }
    for (const t of targets)
      for (const a of alerts) assert.equal(seen.get(`${t.name}|${a.alert_id}`), 1, `${a.alert_id} once over ${t.name}`);
  } finally {
    await stage?.stop();
    await bus.close();
    rsyslog.kill('SIGTERM');
    await new Promise((r) => rsyslog.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
