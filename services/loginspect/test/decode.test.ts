import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLine, KIND, kindNames, normalizeAddress, parseCidr, cidrContains } from '../src/index.js';
import { seededInts } from './seeded.js';

const REF = Date.UTC(2024, 2, 10, 12, 0, 0); // 10 March 2024

test('RFC 3164 syslog: year inferred from the reference, program, pid, auth kinds', () => {
  const ev = decodeLine(
    'Feb 25 14:34:10 belka sshd[31602]: Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2',
    { refMs: REF },
  );
  assert.equal(ev.ts, Date.UTC(2024, 1, 25, 14, 34, 10));
  assert.equal(ev.host, 'belka');
  assert.equal(ev.program, 'sshd');
  assert.equal(ev.pid, '31602');
  assert.ok(ev.kinds & KIND.sshd && ev.kinds & KIND.auth && ev.kinds & KIND.syslog, kindNames(ev.kinds).join());
  assert.equal(ev.message, 'Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2');
  assert.equal(ev.fields['keywords'], ev.raw);
  // December read in March: last year, not nine months in the future
  assert.equal(decodeLine('Dec 31 23:59:59 h cron[1]: x', { refMs: REF }).ts, Date.UTC(2023, 11, 31, 23, 59, 59));
  // with priority, no host, single-digit day
  const p = decodeLine(
    '<38>Mar  3 00:17:22 sudo[12]: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls',
    { refMs: REF },
  );
  assert.equal(p.program, 'sudo');
  assert.equal(p.host, null);
  assert.equal(p.fields['USER'], 'root');
  assert.equal(p.fields['COMMAND'], '/bin/ls');
  assert.ok(p.kinds & KIND.sudo);
});

test('RFC 5424 with structured data holding brackets, ISO stamps, journal lines without a stamp', () => {
  const ev = decodeLine(
    '<38>1 2019-07-08T17:40:17.954167-04:00 host.example.com sshd 55555 - [tq a="1"][x@1 t="[b]"] Failed unknown for root from 192.0.2.1 port 1 ssh2',
    { refMs: REF },
  );
  assert.equal(ev.program, 'sshd');
  assert.equal(ev.pid, '55555');
  assert.equal(ev.host, 'host.example.com');
  assert.equal(ev.message, 'Failed unknown for root from 192.0.2.1 port 1 ssh2');
  assert.equal(ev.ts, Date.UTC(2019, 6, 8, 21, 40, 17, 954));
  const iso = decodeLine(
    '2015-04-16T18:02:50.321974+00:00 host sshd[2716]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.112  user=root',
    { refMs: REF },
  );
  assert.equal(iso.fields['pam_rhost'], '192.0.2.112');
  assert.equal(iso.fields['pam_user'], 'root');
  assert.equal(iso.fields['pam_message'], 'authentication failure');
  assert.equal(iso.fields['pam_service'], 'sshd');
  assert.equal(iso.addr, '192.0.2.112');
  const j = decodeLine('srv sshd[13709]: error: PAM: Authentication failure for x from 192.0.2.6', { refMs: REF });
  assert.equal(j.program, 'sshd');
  assert.equal(j.ts, null);
  // a sentence is not a journal header
  assert.ok(
    decodeLine('WARNING: Authentication attempt from 192.0.2.0 for user "x" failed.', { refMs: REF }).kinds & KIND.text,
  );
});

test('access logs: combined, vhost first, escaped and empty requests', () => {
  const ev = decodeLine(
    '1.2.3.4 - bob [05/Mar/2007:14:39:21 +0100] "GET /a/b.php?id=1%27 HTTP/1.1" 404 459 "http://r/" "curl/7.1"',
    { refMs: REF },
  );
  assert.equal(ev.kinds, KIND.webAccess);
  assert.equal(ev.ts, Date.UTC(2007, 2, 5, 13, 39, 21));
  assert.deepEqual(
    [
      'c-ip',
      'cs-method',
      'cs-uri-stem',
      'cs-uri-query',
      'cs-query',
      'sc-status',
      'cs-referer',
      'cs-user-agent',
      'cs-username',
      'cordon-uri',
    ].map((f) => ev.fields[f]),
    [
      '1.2.3.4',
      'GET',
      '/a/b.php',
      '/a/b.php?id=1%27',
      'id=1%27',
      '404',
      'http://r/',
      'curl/7.1',
      'bob',
      "/a/b.php?id=1'",
    ],
  );
  const vhost = decodeLine(
    'www.example.com 192.0.2.222 - - [18/Aug/2024:21:08:39 +0100] "GET / HTTP/1.1" 403 332 "-" "x"',
    { refMs: REF },
  );
  assert.equal(vhost.addr, '192.0.2.222');
  assert.equal(vhost.fields['cs-host'], 'www.example.com');
  const bin = decodeLine('12.34.56.78 - - [20/Jan/2015:19:53:28 +0100] "\\x03\\x00\\x00/*\\xE0" 400 47 "-" "-"', {
    refMs: REF,
  });
  assert.equal(bin.fields['sc-status'], '400');
  assert.equal(bin.fields['cs-method'], '\\x03\\x00\\x00/*\\xE0');
  assert.equal(
    decodeLine('12.34.56.78 - - [20/Jan/2015:19:53:28 +0100] "" 400 47 "-" "-"', { refMs: REF }).fields['cs-request'],
    '',
  );
  // backslash escapes inside quotes, and a quote ending the field right after one
  const esc = decodeLine(
    '1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] "GET /a\\"b\\\\ HTTP/1.0" 200 5 "r\\\\" "ua \\"x\\""',
    { refMs: REF },
  );
  assert.deepEqual(
    ['cs-request', 'cs-uri', 'cs-referer', 'cs-user-agent', 'cordon-uri'].map((f) => esc.fields[f]),
    ['GET /a\\"b\\\\ HTTP/1.0', '/a\\"b\\\\', 'r\\\\', 'ua \\"x\\"', '/a\\"b\\\\'],
  );
  // fields are cut from the line when read: absent ones stay absent
  const short = decodeLine('1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] "PROPFIND" 405 0', { refMs: REF });
  assert.deepEqual(
    [
      'cs-method',
      'cs-uri',
      'cs-uri-stem',
      'cs-query',
      'cs-version',
      'cs-referer',
      'cs-user-agent',
      'cs-username',
      'cs-host',
      'cordon-uri',
      'c-ip',
    ].map((f) => short.fields[f]),
    [
      'PROPFIND',
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      '1.2.3.4',
    ],
  );
  assert.equal(
    decodeLine('www.example.com 192.0.2.1 - - [18/Aug/2024:21:08:39 +0100] "GET /%41+B HTTP/1.1" 200 1', { refMs: REF })
      .fields['cordon-uri'],
    '/a b',
  );
  assert.equal(
    decodeLine('192.0.2.1 - - [18/Aug/2024:21:08:39 +0100] site.example "GET / HTTP/1.1" 200 1', { refMs: REF }).fields[
      'cs-host'
    ],
    'site.example',
  );
});

test('web server error logs and auditd', () => {
  const a22 = decodeLine(
    '[Tue Jul 22 06:48:30 2008] [error] [client 198.51.100.86] script not found or unable to stat: /var/www/wp-login.php',
    { refMs: REF },
  );
  assert.equal(a22.kinds, KIND.apacheError);
  assert.equal(a22.addr, '198.51.100.86');
  assert.equal(a22.ts, Date.UTC(2008, 6, 22, 6, 48, 30));
  const a24 = decodeLine(
    '[Thu Jun 27 11:55:44.569531 2013] [core:info] [pid 4101:tid 2992634688] [client 2001:db8::1:46652] AH00128: File does not exist: /xxx/~',
    { refMs: REF },
  );
  assert.equal(a24.addr, '2001:db8::1');
  assert.equal(a24.message, 'AH00128: File does not exist: /xxx/~');
  const ng = decodeLine(
    '2015/10/29 20:01:02 [error] 256554#0: *99927 limiting requests, excess: 1.852 by zone "one", client: 1.2.3.4, server: example.com, request: "POST /index.htm HTTP/1.0", host: "x"',
    { refMs: REF },
  );
  assert.equal(ng.kinds, KIND.nginxError);
  assert.equal(ng.addr, '1.2.3.4');
  assert.equal(ng.fields['cs-method'], 'POST');
  // nginx's context read to the end of the line: a line cut inside its last value, stream's unquoted fields
  const ngCut = decodeLine(
    '2024/03/10 08:01:02 [error] 812#812: *5 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 1.2.3.5, server: example.com, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "example.com", referrer: "https://example.com/a-very-lo',
    { refMs: REF },
  );
  assert.equal(ngCut.addr, '1.2.3.5');
  const ngStream = decodeLine(
    '2024/03/10 08:01:02 [info] 812#812: *6 recv() failed (104: Connection reset by peer) while proxying connection, client: 2001:db8::6, server: [::]:443, upstream: "10.0.0.1:443", bytes from/to client:0/0, bytes from/to upstream:0/0',
    { refMs: REF },
  );
  assert.equal(ngStream.addr, '2001:db8::6');
  // the context is the one that reads to the end; a line no reading fits names nobody
  const ngForged = decodeLine(
    '2024/03/10 08:01:02 [error] 812#812: *7 open() "/x, client: 1.2.3.7, server: s" failed, client: 1.2.3.8, server: s',
    { refMs: REF },
  );
  assert.equal(ngForged.addr, '1.2.3.8');
  const ngNone = decodeLine(
    '2024/03/10 08:01:02 [error] 812#812: *8 open() "/x" failed, client: 1.2.3.9, server: s" and more',
    { refMs: REF },
  );
  assert.equal(ngNone.addr, null);
  const au = decodeLine('type=EXECVE msg=audit(1610000000.123:42): argc=2 a0="ls" a1=2D6C61 key="k"', { refMs: REF });
  assert.equal(au.kinds, KIND.auditd);
  assert.equal(au.fields['type'], 'EXECVE');
  assert.equal(au.fields['a1'], '-la');
  assert.equal(au.ts, 1610000000123);
});

test('binary and hostile lines decode to a best-effort event, never throw', () => {
  const junk = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x5b, 0x20, 0x22, 0xc3]).toString('utf8');
  for (const line of [
    junk,
    '',
    '[',
    ' [1',
    '"',
    `<999>1 ${'x'.repeat(10_000)}`,
    'type=',
    'a [01/x/2000:00:00:00] "',
    '2020/01/01 00:00:00 [error] 1#1: ',
  ]) {
    const ev = decodeLine(line, { refMs: REF });
    assert.equal(typeof ev.kinds, 'number');
    assert.equal(ev.raw, line);
  }
});

test('addresses: mapped IPv4, ports, CIDR membership', () => {
  assert.equal(normalizeAddress('::ffff:1.2.3.4'), '1.2.3.4');
  assert.equal(normalizeAddress('198.51.100.87:5543'), '198.51.100.87');
  assert.equal(normalizeAddress('[2001:db8::1]:443'), '2001:db8::1');
  assert.equal(normalizeAddress('example.com'), 'example.com');
  assert.ok(cidrContains(parseCidr('10.0.0.0/8')!, '10.2.3.4'));
  assert.ok(!cidrContains(parseCidr('10.0.0.0/8')!, '11.2.3.4'));
  assert.ok(cidrContains(parseCidr('2001:db8::/32')!, '2001:db8:ffff::1'));
  assert.ok(
    cidrContains(parseCidr('::ffff:0:0/96')!, '::ffff:10.0.0.1') === false,
    'mapped addresses are compared as IPv4',
  );
  assert.ok(!cidrContains(parseCidr('10.0.0.0/8')!, 'example.com'));
});

test('a BSD syslog stamp read without the regex reads as the regex reads it', () => {
  // the regex reads the same stamp after a priority (`<13>`); the fast path takes only lines
  // without one: both must give the same event, whatever the stamp's spacing, digits or tail
  const rnd = seededInts(5);
  const any = <T>(xs: T[]): T => xs[rnd(xs.length)]!;
  const digits = (n: number): string => Array.from({ length: n }, () => String(rnd(10))).join('');
  let fast = 0;
  for (let n = 0; n < 20000; n++) {
    const mon = any(['Mar', 'Dec', 'Jan', 'Oct', 'Feb', 'Xyz', 'mar', 'MAR', 'Ma']);
    const day = any([digits(1), digits(2), digits(1), digits(2), digits(3), 'x']);
    const time = `${any([digits(1), digits(2), digits(2), digits(3)])}:${digits(2)}:${any([digits(2), digits(2), digits(1), 'x1'])}`;
    const tail = any([
      ' ',
      ' ',
      '  ',
      '.123 ',
      ` ${digits(4)} `,
      ` ${digits(5)} `,
      `  ${digits(4)} `,
      '',
      'x ',
      ' 2024',
    ]);
    const line = `${mon}${any([' ', ' ', '  ', '   '])}${day}${any([' ', ' ', ' ', '_'])}${time}${tail}host sshd[${digits(3)}]: Failed password for root from 203.0.113.${rnd(250)} port 22 ssh2`;
    const a = decodeLine(line, { refMs: Date.UTC(2024, 5, 1) });
    const b = decodeLine(`<13>${line}`, { refMs: Date.UTC(2024, 5, 1) });
    if (a.decoder !== 'syslog' && b.decoder !== 'syslog') continue;
    if (a.decoder === 'syslog') fast++;
    const view = (e: typeof a): unknown => [e.decoder, e.ts, e.host, e.program, e.pid, e.message];
    assert.deepEqual(view(a), view(b), line);
  }
  assert.ok(fast > 500, `stamps read (${fast})`);
});

test('a syslog header is looked for on every line that can start one, whatever it wraps', () => {
  // an access line behind a syslog header: the header is read first (the access line's `[time]`
  // would otherwise make the header's `11:07:10` look like the client's address)
  const access = '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /x HTTP/1.1" 200 5';
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const headers = [
    ...months.map((m) => `${m} 10 11:07:10 web nginx: `),
    '<13>Mar 10 11:07:10 web nginx: ',
    '<190>1 2024-03-10T11:07:10Z web nginx - - - ',
    '2024-03-10T11:07:10Z web nginx: ',
    '2024-03-10 11:07:10.123+01:00 web nginx: ',
  ];
  for (const h of headers) {
    const ev = decodeLine(h + access, { refMs: REF });
    assert.equal(ev.host, 'web', h);
    assert.match(ev.decoder ?? '', /^syslog/, h);
    assert.ok(ev.kinds & KIND.syslog && ev.kinds & KIND.webAccess, `${h}: ${kindNames(ev.kinds).join()}`);
  }
  // a digit first is an access line's address, an nginx error's date (`yyyy/`) or an ISO stamp (`yyyy-`)
  assert.equal(decodeLine(access, { refMs: REF }).decoder, 'access');
  assert.equal(
    decodeLine('2024/03/10 08:01:02 [error] 812#812: *5 x, client: 1.2.3.5', { refMs: REF }).fields['level'],
    'error',
  );
  assert.equal(
    decodeLine('1.2.3.4/x - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5', { refMs: REF }).decoder,
    'access',
  );
});
