/**
 * Log injection: an attacker chooses what part of a log line says (a user name, a request)
 * and writes an address into it, so that the extractor names that address as the attacker —
 * and loginspect blocks a victim of the attacker's choice (its gateway, its DNS server, a
 * customer). Each case sends the real attacker's failures with a user name carrying another
 * address, and checks that only the real attacker is ever named or blocked.
 *
 * What guards it (services/loginspect): where the text a client chose comes before the
 * address, the rule's pattern is anchored at the end of the line, so the address is the one
 * the daemon's own tail follows (sshd's `from <ip> port <n> ssh2`, courier's `ip=[…]`, vsftpd's
 * `Client "…"`, dovecot's `pam(user,<ip>,<session>): …`); where chosen text sits on both sides
 * of it, every chosen field must be one token, so the line's spaces are the daemon's and fix
 * where each field lies (sshd's "Change of username"). PAM's record is read by the decoder
 * (decode.ts pamRemote) as `ruser=R rhost=A  user=U`, whose names may hold anything: A is the
 * token between the two, which a name holding ` rhost=` or `  user=` cannot move. nginx's
 * error log is read by the decoder too (decode.ts nginxClient): the client is the `, client: A`
 * from which the rest of the line reads as nginx's context (`, server: S, request: "…", …`,
 * quoted values skipped whole) to its end, and the web-server-error rules name no <HOST> of their
 * own but take the decoder's address. Where the chosen text repeats on both sides of the address
 * and is free-form (Samba's user, workstation and mapped names, MongoDB's and Gitea's user echoed
 * in the error, PostgreSQL's %u/%d around %h, Roundcube's user and X-Forwarded-For, Asterisk's
 * caller name), the rule reads a line holding the marker once, and a forged second one names
 * nobody. The last case is the Sigma loader's: a YAML alias bomb refuses its file
 * (CORDON_ERR_LOGINSPECT_RULE_FILE).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuleDir, LogInspector, parseInspectorConfig } from '@cordon/loginspect';

const REF = Date.UTC(2024, 5, 1);
const ATTACKER = '203.0.113.9';
const VICTIM = '198.51.100.7';

/** What the inspector names and blocks for `lines`: every address, from detections and blocks. */
function named(lines: string[]): { detected: string[]; blocked: string[] } {
  const inspector = LogInspector.fromConfig(parseInspectorConfig({}));
  const st = inspector.newState();
  const detected = new Set<string>();
  const blocked = new Set<string>();
  for (const line of lines) {
    const r = inspector.inspect(st, line, { refMs: REF });
    for (const d of r.detections) if (d.srcIp) detected.add(d.srcIp);
    for (const b of r.blocks) blocked.add(b.ip);
  }
  return { detected: [...detected], blocked: [...blocked] };
}

const times = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i));
const ts = (i: number) => `Jun  1 10:00:${String(i).padStart(2, '0')}`;

/** The attack holds when the victim is named anywhere; the extractor holds when only the attacker is. */
function assertOnlyAttacker(lines: string[], mustBlock: boolean): void {
  const { detected, blocked } = named(lines);
  assert.ok(
    !detected.includes(VICTIM) && !blocked.includes(VICTIM),
    `the injected address was taken as the attacker: detected ${detected.join(', ') || '-'}, blocked ${blocked.join(', ') || '-'}`,
  );
  assert.deepEqual(detected, [ATTACKER], 'the lines are detected, with the real attacker');
  if (mustBlock) assert.deepEqual(blocked, [ATTACKER]);
}

test('vsftpd through PAM: a user name holding "rhost=<victim>" does not make the victim the attacker (the greedy rhost= of the issue)', () => {
  // pam_unix writes "ruser=<name> rhost=<address>  user=<name>": the name appears twice, the second after the real rhost=
  const user = `x rhost=${VICTIM}`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} ftp vsftpd[${900 + i}]: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=${user} rhost=${ATTACKER}  user=${user}`,
    ),
    true,
  );
});

test('any PAM service: the address the PAM fields name is the real rhost=, not one in the user name', () => {
  const user = `x rhost=${VICTIM}`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} mail dovecot[${900 + i}]: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=${user} rhost=${ATTACKER}  user=${user}`,
    ),
    false,
  );
});

test('sshd "Failed password": a user name ending in "from <victim> port 22 ssh2:" is not taken as the attacker', () => {
  const user = `x from ${VICTIM} port 22 ssh2:`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: Failed password for invalid user ${user} from ${ATTACKER} port ${40000 + i} ssh2`,
    ),
    true,
  );
});

test('sshd "maximum authentication attempts exceeded": a user name holding "from <victim> port 22" is not taken as the attacker', () => {
  const user = `x from ${VICTIM} port 22`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: error: maximum authentication attempts exceeded for invalid user ${user} from ${ATTACKER} port ${40000 + i} ssh2 [preauth]`,
    ),
    false,
  );
});

test('sshd "Connection closed by invalid user": a user name holding "<victim> port 22 [preauth]" is not taken as the attacker', () => {
  const user = `x ${VICTIM} port 22 [preauth]`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: Connection closed by invalid user ${user} ${ATTACKER} port ${40000 + i} [preauth]`,
    ),
    false,
  );
});

test('sshd "Change of username": user names on both sides of the address holding "<victim> port 22: Change of …" name nobody', () => {
  const c = 'Change of username or service not allowed';
  const { detected, blocked } = named(
    times(
      6,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: Disconnecting invalid user x ${VICTIM} port 22: ${c}: (x,y ${ATTACKER} port ${40000 + i}: ${c}: (x ${VICTIM} port 22: ${c}: (x,y,ssh-connection) -> (z,ssh-connection) [preauth]`,
    ),
  );
  assert.deepEqual({ detected, blocked }, { detected: [], blocked: [] });
  // the same line from names without spaces still names the attacker
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: Disconnecting invalid user x ${ATTACKER} port ${40000 + i}: ${c}: (x,ssh-connection) -> (y,ssh-connection) [preauth]`,
    ),
    true,
  );
});

test('vsftpd\'s own log: a user name holding "] FAIL LOGIN: Client "<victim>"" is not taken as the attacker', () => {
  const user = `x] FAIL LOGIN: Client "${VICTIM}"`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `Sat Jun  1 10:00:${String(i).padStart(2, '0')} 2024 [pid ${900 + i}] [${user}] FAIL LOGIN: Client "${ATTACKER}"`,
    ),
    true,
  );
});

test('dovecot auth: a user name holding ",<victim>): unknown user" is not taken as the attacker', () => {
  const user = `x,${VICTIM},<a>): unknown user`;
  assertOnlyAttacker(
    times(6, (i) => `${ts(i)} mail dovecot: auth: passwd-file(${user},${ATTACKER},<s${i}>): unknown user`),
    true,
  );
});

test('PAM: ruser and user both holding "rhost=" and "  user=" still name the real rhost, or nobody when two readings fit', () => {
  const user = `x rhost=${VICTIM}  user=y`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} mail dovecot[${900 + i}]: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=${user} rhost=${ATTACKER}  user=${user}`,
    ),
    false,
  );
  // sshd leaves ruser empty: a name crafted to read as "ruser=<name> rhost=<victim>  user=<name>" makes two readings
  const crafted = ` rhost=${VICTIM}  user= rhost=${ATTACKER}  user=`;
  const { detected, blocked } = named(
    times(
      6,
      (i) =>
        `${ts(i)} mail dovecot[${900 + i}]: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser= rhost=${ATTACKER}  user=${crafted}`,
    ),
  );
  assert.ok(
    !detected.includes(VICTIM) && !blocked.includes(VICTIM),
    `the crafted name moved the address: ${detected.join(', ')}`,
  );
});

const ngx = (i: number) => `2024/06/01 10:00:${String(i).padStart(2, '0')} [error] 812#812: *${40 + i} `;

test('nginx error log: a request path holding ", client: <victim>, server: …" before nginx\'s own context is not taken as the client', () => {
  // nginx writes the path of open() decoded: %2C%20 becomes ", ", %22 a quote
  const path = `/usr/share/nginx/html/x.php, client: ${VICTIM}, server: example.com`;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ngx(i)}open() "${path}" failed (2: No such file or directory), client: ${ATTACKER}, server: example.com, request: "GET /x.php%2C%20client:%20${VICTIM},%20server:%20example.com HTTP/1.1", host: "example.com"`,
    ),
    true,
  );
  // a path (or user name) holding a whole forged context with quotes: still not the victim
  const quoted = `/x.php, client: ${VICTIM}, server: example.com, request: "GET /x.php HTTP/1.1", host: "example.com`;
  for (const msg of [
    `open() "${quoted}" failed (2: No such file or directory)`,
    `user "${quoted}" was not found in "/etc/nginx/.htpasswd"`,
  ]) {
    const { detected, blocked } = named(
      times(
        6,
        (i) =>
          `${ngx(i)}${msg}, client: ${ATTACKER}, server: example.com, request: "GET /x.php HTTP/1.1", host: "example.com"`,
      ),
    );
    assert.ok(
      !detected.includes(VICTIM) && !blocked.includes(VICTIM),
      `the forged context was read: ${detected.join(', ')}`,
    );
  }
});

test('nginx error log: a request, Host and Referer holding ", client: <victim>," after nginx\'s own client are not taken as the client', () => {
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ngx(i)}user "admin": password mismatch, client: ${ATTACKER}, server: example.com, request: "GET /admin/?, client: ${VICTIM}, HTTP/1.1", host: "example.com, client: ${VICTIM}, server: x", referrer: "http://x/, client: ${VICTIM}, server: s, host: \\"y"`,
    ),
    true,
  );
  // a message forged in the Referer of a harmless line is the sender's own doing: the sender is named
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ngx(i)}open() "/usr/share/nginx/html/robots.txt" failed (2: No such file or directory), client: ${ATTACKER}, server: example.com, request: "GET /robots.txt HTTP/1.1", host: "example.com", referrer: "access forbidden by rule, client: ${VICTIM}, server: example.com"`,
    ),
    true,
  );
});

/** No address is named for `lines`: the injection made two readings, and neither is taken. */
function assertNobody(lines: string[]): void {
  assert.deepEqual(named(lines), { detected: [], blocked: [] });
}

test('Samba: user and workstation names holding "remote host [ipv4:<victim>:…]" are not taken as the remote host', () => {
  const auth = (user: string, ws: string, i: number) =>
    `${ts(i)} fs smbd[${3300 + i}]:   Auth: [SMB2,(null)] user [WORKGROUP]\[${user}] at [Sat, 01 Jun 2024 10:00:00.000000 UTC] with [NTLMv2] status [NT_STATUS_WRONG_PASSWORD] workstation [${ws}] remote host [ipv4:${ATTACKER}:${50000 + i}] mapped to [WORKGROUP]\[${user}]. local host [ipv4:10.0.0.5:445]`;
  // the user name comes before the status and again after the address (mapped to), the
  // workstation between them: a forged remote host makes two readings, and neither is taken
  assertNobody(
    times(6, (i) =>
      auth(
        `x] with [NTLMv2] status [NT_STATUS_WRONG_PASSWORD] workstation [w] remote host [ipv4:${VICTIM}:445`,
        'W',
        i,
      ),
    ),
  );
  assertNobody(times(6, (i) => auth('x', `w] remote host [ipv4:${VICTIM}:445`, i)));
  assertNobody(times(6, (i) => auth(`x] remote host [ipv4:${VICTIM}:445`, 'W', i)));
  // names with brackets but no forged address leave the one reading
  assertOnlyAttacker(
    times(6, (i) => auth('x] [y', `w] status [NT_STATUS_OK] [z`, i)),
    true,
  );
});

test('Nextcloud: a user name holding "(Remote IP: <victim>)" is not taken as the remote address', () => {
  const user = `x (Remote IP: ${VICTIM})`;
  // the log without remoteAddr before the message (the field order of older releases)
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `{"reqId":"r${i}","level":2,"time":"2024-06-01T10:00:0${i % 10}+00:00","user":"--","app":"core","method":"POST","url":"/login","message":"Login failed: ${user} (Remote IP: ${ATTACKER})","userAgent":"curl","version":"28.0.1.1"}`,
    ),
    true,
  );
  // the user agent after the message holds a whole forged message
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `{"reqId":"r${i}","level":2,"time":"2024-06-01T10:00:0${i % 10}+00:00","user":"--","app":"core","method":"POST","url":"/login","message":"Login failed: x (Remote IP: ${ATTACKER})","userAgent":"Login failed: ${user}","version":"28.0.1.1"}`,
    ),
    true,
  );
});

test('Roundcube: a user name or an X-Forwarded-For holding "from <victim>" is not taken as the client', () => {
  const head = (i: number) => `[01-Jun-2024 10:00:0${i % 10} +0000]: <s${i}> `;
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${head(i)}Failed login for x from ${VICTIM} in session s1 (error: 0) from ${ATTACKER} in session s${i} (error: 0)`,
    ),
    true,
  );
  assertOnlyAttacker(
    times(6, (i) => `${head(i)}Failed login for x from ${VICTIM}. from ${ATTACKER} in session s${i} (error: 0)`),
    true,
  );
  // the proxy header after the address: only a line with one " from " is read
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${head(i)}IMAP Error: Login failed for x from ${ATTACKER}(X-Forwarded-For: 10.0.0.1). AUTHENTICATE PLAIN: Authentication failed. in /usr/share/roundcube/program/lib/Roundcube/rcube_imap.php on line 211 (POST /?_task=login&_action=login)`,
    ),
    true,
  );
  assertNobody(
    times(
      6,
      (i) =>
        `${head(i)}IMAP Error: Login failed for x from ${ATTACKER}(X-Forwarded-For: a) from ${VICTIM}(b). AUTHENTICATE PLAIN: Authentication failed. in /usr/share/roundcube/program/lib/Roundcube/rcube_imap.php on line 211 (POST /?_task=login&_action=login)`,
    ),
  );
  assertNobody(
    times(
      6,
      (i) =>
        `${head(i)}IMAP Error: Login failed for x from ${VICTIM}. y from ${ATTACKER}. AUTHENTICATE PLAIN: Authentication failed. in /usr/share/roundcube/program/lib/Roundcube/rcube_imap.php on line 211 (POST /?_task=login&_action=login)`,
    ),
  );
});

test('Grafana: a quoted logfmt value holding "remote_addr=<victim>" is not taken as the remote address', () => {
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} h grafana[1201]: logger=context userId=0 orgId=0 uname= t=2024-06-01T10:00:0${i % 10}Z level=error msg="Invalid username or password" error="invalid username or password" path="/login remote_addr=${VICTIM} " remote_addr=${ATTACKER} traceID=`,
    ),
    true,
  );
});

test('PostgreSQL: a user or database name in log_line_prefix holding "host=<victim>" is not taken as the client', () => {
  const fatal = 'FATAL:  password authentication failed for user';
  // a name before %h, and one after it forging the message: two readings
  assertNobody(
    times(
      6,
      (i) =>
        `2024-06-01 10:00:0${i % 10}.123 UTC [${4410 + i}] user=x,host=${VICTIM},db=postgres,host=${ATTACKER} ${fatal} "x,host=${VICTIM}"`,
    ),
  );
  assertNobody(
    times(
      6,
      (i) =>
        `2024-06-01 10:00:0${i % 10}.123 UTC [${4410 + i}] host=${ATTACKER},user=x@${VICTIM} ${fatal} x,db=postgres ${fatal} "x@${VICTIM} ${fatal} x"`,
    ),
  );
  // names without host= or @ leave the one reading
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `2024-06-01 10:00:0${i % 10}.123 UTC [${4410 + i}] user=x ${VICTIM},db=postgres,host=${ATTACKER} ${fatal} "x ${VICTIM}"`,
    ),
    true,
  );
});

test('MongoDB: a user name holding "from client <victim>" is not taken as the client', () => {
  const user = `x from client ${VICTIM}:27017`;
  assertNobody(
    times(
      6,
      (i) =>
        `2024-06-01T10:00:0${i % 10}.125+0000 I  ACCESS   [conn${812 + i}] SASL SCRAM-SHA-256 authentication failed for ${user} on admin from client ${ATTACKER}:${50000 + i} ; UserNotFound: Could not find user "${user}" for db "admin"`,
    ),
  );
  // the JSON log escapes quotes: its "remote" is the server's, whatever the user holds
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `{"t":{"$date":"2024-06-01T10:00:0${i % 10}.126+00:00"},"s":"I","c":"ACCESS","id":20249,"ctx":"conn${813 + i}","msg":"Authentication failed","attr":{"mechanism":"SCRAM-SHA-256","user":"${user}","db":"admin","client":"${ATTACKER}:${41820 + i}","result":"UserNotFound"},"remote":"${ATTACKER}:${41820 + i}"}`,
    ),
    true,
  );
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `2024-06-01T10:00:0${i % 10}.125+0000 I  ACCESS   [conn${812 + i}] SASL SCRAM-SHA-256 authentication failed for x on admin from client ${ATTACKER}:${50000 + i} ; UserNotFound: Could not find user "x" for db "admin"`,
    ),
    true,
  );
});

test("Gitea, Domino and Asterisk: a user or caller name holding the daemon's own message with <victim> is not taken as the client", () => {
  const gitea = (user: string, i: number) =>
    `2024/06/01 10:00:0${i % 10} ...ers/web/auth/auth.go:208:SignInPost() [I] Failed authentication attempt for ${user} from ${ATTACKER}:${51234 + i}: user does not exist [uid: 0, name: ${user}]`;
  assertOnlyAttacker(
    times(6, (i) => gitea('admin', i)),
    true,
  );
  // the name comes again in the error after the address: two readings
  assertNobody(times(6, (i) => gitea(`x from ${VICTIM}:1`, i)));
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} mail domino: smtp: x [${VICTIM}] authentication failure using internet password y [${ATTACKER}] authentication failure using internet password`,
    ),
    true,
  );
  const reg = (name: string, i: number) =>
    `[2024-06-01 10:00:0${i % 10}] NOTICE[${4410 + i}] chan_sip.c: Registration from '"${name}" <sip:100@10.0.0.5>' failed for '${ATTACKER}:5060' - Wrong password`;
  assertOnlyAttacker(
    times(6, (i) => reg('100', i)),
    true,
  );
  assertNobody(times(6, (i) => reg(`x' failed for '${VICTIM}:5060' - Wrong password '`, i)));
  assertNobody(
    times(
      6,
      (i) =>
        `[2024-06-01 10:00:0${i % 10}] NOTICE[${4410 + i}] chan_sip.c: Call from '' (${ATTACKER}:5060) to extension 'x' rejected because extension not found in context 'a'. Call from '' (${VICTIM}:5060) to extension 'y' rejected because extension not found in context 'default'.`,
    ),
  );
});

test('Asterisk: a caller\'s display name holding "Host <victim> failed to authenticate" is not taken as the client: the message is read only where chan_iax2 writes it', () => {
  const genuine = (i: number) =>
    `[2024-06-01 10:00:0${i % 10}] NOTICE[${4410 + i}]: chan_iax2.c:10553 socket_process: Host ${ATTACKER} failed to authenticate as '100'`;
  // chan_sip logs the From header of an unknown device it answers with a fake rejection
  const forged = (i: number) =>
    `[2024-06-01 10:00:0${i % 10}] NOTICE[${4410 + i}] chan_sip.c: Sending fake auth rejection for device "Host ${VICTIM} failed to authenticate as x" <sip:100@10.0.0.5>;tag=as${i}`;
  assertNobody(times(6, forged));
  assertOnlyAttacker(
    times(12, (i) => (i % 2 ? forged(i) : genuine(i))),
    false,
  );
  // the same text in another daemon's line names nobody either
  assertNobody(
    times(
      6,
      (i) =>
        `${ts(i)} pbx sshd[${900 + i}]: Connection closed by ${ATTACKER} port ${40000 + i} [preauth]: NOTICE[1]: chan_iax2.c: Host ${VICTIM} failed to authenticate as x`,
    ),
  );
});

test('Jenkins and ZNC: a user name holding " from <victim>" or "] failed to login from <victim>" is not taken as the client (the address is the line\'s last word)', () => {
  const jenkins = (user: string, i: number) =>
    `${ts(i)} ci jenkins[${700 + i}]: 2024-06-01 10:00:0${i % 10}.000+0000 [id=${40 + i}]\tWARNING\tj.s.SecurityListener#fireFailedToAuthenticate: Login attempt failed for user ${user} from ${ATTACKER}`;
  assertOnlyAttacker(
    times(12, (i) => jenkins(`x from ${VICTIM}`, i)),
    true,
  );
  const znc = (user: string, i: number) => `[2024-06-01 10:00:0${i % 10}] [${user}] failed to login from ${ATTACKER}`;
  assertOnlyAttacker(
    times(12, (i) => znc(`x] failed to login from ${VICTIM} [y`, i)),
    true,
  );
});

test("BIND: another daemon's line holding \"client <victim>#53: query (cache) '…' denied\" (a user name) is not a refused query (the message is read where named writes it)", () => {
  const named = (i: number) =>
    `${ts(i)} ns named[812]: client @0x7f4c2c0a1b68 ${ATTACKER}#${41820 + i} (example.com): query (cache) 'example.com/ANY/IN' denied`;
  const injected = (i: number) =>
    `${ts(i)} ns sshd[${900 + i}]: Invalid user client ${VICTIM}#53: query (cache) 'x/A/IN' denied from ${ATTACKER} port ${40000 + i}`;
  assertOnlyAttacker(
    times(24, (i) => (i % 2 ? injected(i) : named(i))),
    true,
  );
  // BIND's own log file, where the line starts with its time stamp
  assertOnlyAttacker(
    times(
      12,
      (i) =>
        `01-Jun-2024 10:00:0${i % 10}.123 security: info: client @0x7f4c2c0a1b69 ${ATTACKER}#53 (example.org): zone transfer 'example.org/AXFR/IN' denied`,
    ),
    true,
  );
});

test('unbound: a query name spelling <victim> is not a client; only "refused query from <address> port" names one', () => {
  const refused = (i: number) =>
    `${ts(i)} ns unbound[812]: [812:0] info: refused query from ${ATTACKER} port ${5353 + i} because of 0.0.0.0/0 refuse`;
  // a rate limit names the zone and the query, never a client
  const ratelimited = (i: number) =>
    `${ts(i)} ns unbound[812]: [812:0] info: rate limit ratelimit exceeded ${VICTIM} A IN`;
  assertNobody(times(12, ratelimited));
  assertOnlyAttacker(
    times(24, (i) => (i % 2 ? ratelimited(i) : refused(i))),
    true,
  );
});

test('OpenSMTPD: a command or an AUTH user holding "address=<victim>" is not taken as the client (address= is read at the field OpenSMTPD writes)', () => {
  // 6.6+: the address ends the line
  assertOnlyAttacker(
    times(
      12,
      (i) =>
        `${ts(i)} mx smtpd[8120]: 3c5b7e1a9f0d2b${String(40 + i)} smtp failed-command command="AUTH LOGIN address=${VICTIM} x" result="535 Authentication failed" address=${ATTACKER}`,
    ),
    true,
  );
  // older: event=…, the address right after the event (failed-command) or after the user (authentication)
  assertOnlyAttacker(
    times(
      12,
      (i) =>
        `${ts(i)} mx smtpd[8120]: 3c5b7e1a9f0d2b${String(40 + i)} smtp event=authentication user=x address=${VICTIM} host=evil.example address=${ATTACKER} host=localhost result=permfail`,
    ),
    true,
  );
  assertOnlyAttacker(
    times(
      12,
      (i) =>
        `${ts(i)} mx smtpd[8120]: 3c5b7e1a9f0d2b${String(40 + i)} smtp event=failed-command address=${ATTACKER} host=localhost command="RCPT TO:<x address=${VICTIM} y>" result="550 Invalid recipient"`,
    ),
    true,
  );
});

test('exim: a HELO holding ") [<victim>]…" is not taken as the client, in authenticator failures and in rejected RCPTs', () => {
  const auth = (helo: string, i: number) =>
    `2024-06-01 10:00:0${i % 10} dovecot_login authenticator failed for (${helo}) [${ATTACKER}]:${40000 + i}: 535 Incorrect authentication data (set_id=x)`;
  assertOnlyAttacker(
    times(12, (i) => auth('ylmf-pc', i)),
    true,
  );
  assertNobody(times(12, (i) => auth(`x) [${VICTIM}]:1: 535 y (z`, i)));
  const rcpt = (helo: string, i: number) =>
    `2024-06-01 10:00:0${i % 10} H=(${helo}) [${ATTACKER}]:${40000 + i} F=<a@b.example> rejected RCPT <x@y.example>: relay not permitted`;
  assertOnlyAttacker(
    times(12, (i) => rcpt('example.com', i)),
    true,
  );
  assertNobody(
    times(12, (i) => rcpt(`x) [${VICTIM}]:1 F=<a@b.example> rejected RCPT <x@y.example>: relay not permitted (y`, i)),
  );
  // and in another daemon's line
  assertNobody(
    times(
      12,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: Connection closed by ${ATTACKER} port ${40000 + i} [preauth] H=(x) [${VICTIM}] F=<a@b.example> rejected RCPT <x@y.example>: relay not permitted`,
    ),
  );
});

// Extractors looked at and found to hold: the address sits before the attacker-controlled text,
// or a greedy match is pinned to the last occurrence and nothing the attacker writes follows it.
test('extractors that hold against the same injection (regression guard)', () => {
  const user = `x from ${VICTIM} port 22`;
  assertOnlyAttacker(
    times(6, (i) => `${ts(i)} h sshd[${900 + i}]: Invalid user ${user} from ${ATTACKER} port ${40000 + i}`),
    false,
  );
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} h sshd[${900 + i}]: error: PAM: Authentication failure for illegal user ${user} from ${ATTACKER}`,
    ),
    false,
  );
  assertOnlyAttacker(
    times(6, (i) => `${ts(i)} mail courierpop3login: LOGIN FAILED, user=x, ip=[${VICTIM}], ip=[${ATTACKER}]`),
    false,
  );
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x, rip=${VICTIM}>, method=PLAIN, rip=${ATTACKER}, lip=10.0.0.1, session=<s${i}>`,
    ),
    false,
  );
  assertOnlyAttacker(
    times(
      6,
      (i) =>
        `${ts(i)} ftp proftpd[${900 + i}]: ftp (${ATTACKER}[${ATTACKER}]) - USER x${VICTIM} (Login failed): Incorrect password`,
    ),
    false,
  );
});

test('a YAML alias bomb among Sigma rule files is refused as that file, not an uncoded crash of the loader (cordon logtest --sigma, loginspect.inspector.sigmaDirs)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-sigma-bomb-'));
  try {
    const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    writeFileSync(join(dir, 'bomb.yml'), `${lines.join('\n')}\n`);
    writeFileSync(
      join(dir, 'good.yml'),
      'title: t\nid: good-1\nlogsource: { product: linux, service: sshd }\ndetection:\n  s: { message|contains: Failed }\n  condition: s\n',
    );
    const set = loadRuleDir(dir, 'sigma');
    assert.equal(set.refused.length, 1);
    assert.equal(set.refused[0]!.file, 'bomb.yml');
    assert.equal(set.refused[0]!.code, 'CORDON_ERR_LOGINSPECT_RULE_FILE');
    assert.deepEqual(
      set.rules.map((r) => r.id),
      ['good-1'],
      'the other files still load',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
