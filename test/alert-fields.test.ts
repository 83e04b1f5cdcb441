/**
 * The dpi stage's EVE → Alert mapping (services/dpi/src/alerts.ts): rule metadata, Community
 * ID and app-layer evidence taken from the engine's line when it carries them (as Suricata's
 * EVE prints them), and an alert id that depends on what was detected, never on the sensor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eveToAlert } from '@cordon/dpi';
import {
  codecFor,
  communityId,
  normalizeCve,
  printable,
  ruleMetadataFields,
  TOPICS,
  type PacketBatch,
} from '@cordon/schemas';

const pb = (sensor: string, batch: string): PacketBatch => ({
  batch_id: batch,
  sensor,
  vm: 'web-1',
  linktype: 1,
  end_of_source: false,
  recovery_of: null,
  packets: [],
});

// an alert line as Suricata 7 prints it with metadata, community-id and http logging enabled
const SURICATA_LINE = JSON.stringify({
  timestamp: '2024-03-01T10:00:00.123456+0000',
  flow_id: 1234567890123,
  pcap_cnt: 42,
  event_type: 'alert',
  src_ip: '203.0.113.66',
  src_port: 51234,
  dest_ip: '10.0.0.10',
  dest_port: 80,
  proto: 'TCP',
  community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
  app_proto: 'http',
  alert: {
    action: 'allowed',
    gid: 1,
    signature_id: 2034647,
    rev: 3,
    signature: 'ET EXPLOIT Apache log4j RCE Attempt (CVE-2021-44228)',
    category: 'Attempted Administrator Privilege Gain',
    severity: 1,
    metadata: {
      attack_target: ['Server'],
      cve: ['CVE_2021_44228'],
      mitre_tactic_id: ['TA0001'],
      mitre_technique_id: ['T1190'],
      signature_severity: ['Major'],
    },
  },
  http: {
    hostname: 'web-1.example',
    url: '/?x=${jndi:ldap://e/a}',
    http_user_agent: 'curl/8',
    http_method: 'GET',
    protocol: 'HTTP/1.1',
    status: 200,
  },
  payload_printable: 'GET /?x=${jndi:ldap://e/a} HTTP/1.1\r\n',
});

test('rule metadata, Community ID and HTTP evidence come from the EVE line', () => {
  const a = eveToAlert(SURICATA_LINE, pb('s1', 'b1'), 0);
  assert.equal(a.category, 'Attempted Administrator Privilege Gain');
  assert.equal(a.severity, 1);
  assert.deepEqual(JSON.parse(a.metadata!).mitre_technique_id, ['T1190']);
  assert.deepEqual(a.mitre_tactic_ids, ['TA0001']);
  assert.deepEqual(a.mitre_technique_ids, ['T1190']);
  assert.deepEqual(a.cves, ['CVE-2021-44228']);
  assert.equal(a.community_id, '1:LQU9qZlK+B5F3KDmev6m5PMibrg=');
  assert.equal(a.http_hostname, 'web-1.example');
  assert.equal(a.http_url, '/?x=${jndi:ldap://e/a}');
  assert.equal(a.http_method, 'GET');
  assert.equal(a.http_status, 200);
  assert.equal(a.http_user_agent, 'curl/8');
  assert.equal(a.app_proto, 'http');
  assert.equal(a.pcap_cnt, 42);
  assert.match(a.payload_printable!, /jndi/);
  // it encodes with the topic's schema
  assert.deepEqual(codecFor(TOPICS.alerts).decode(codecFor(TOPICS.alerts).encode(a)).cves, ['CVE-2021-44228']);
});

test('a line without community_id gets one computed from its tuple; DNS and TLS evidence', () => {
  const line = JSON.stringify({
    timestamp: '2024-03-01T10:00:01.000000+0000',
    flow_id: 7,
    event_type: 'alert',
    proto: 'UDP',
    src_ip: '10.0.0.10',
    src_port: 40000,
    dest_ip: '10.0.0.53',
    dest_port: 53,
    alert: { gid: 1, signature_id: 1900003, rev: 1, signature: 'C2 lookup', severity: 1 },
    dns: { query: [{ rrname: 'c2.bad.example', rrtype: 'A' }] },
    tls: { sni: 'x.example', version: 'TLS 1.2', ja3: { hash: 'e7d705a3286e19ea42f587b344ee6865' } },
  });
  const a = eveToAlert(line, pb('s1', 'b1'), 0);
  assert.equal(
    a.community_id,
    communityId({ proto: 17, srcIp: '10.0.0.10', dstIp: '10.0.0.53', srcPort: 40000, dstPort: 53 }),
  );
  assert.equal(a.dns_rrname, 'c2.bad.example');
  assert.equal(a.dns_rrtype, 'A');
  assert.equal(a.tls_sni, 'x.example');
  assert.equal(a.ja3, 'e7d705a3286e19ea42f587b344ee6865');
  assert.equal(a.metadata, null);
  assert.deepEqual(a.cves, []);
});

test('the alert id does not depend on the sensor or the batch: a replay under another name is the same alert', () => {
  const first = eveToAlert(SURICATA_LINE, pb('replay:demo.pcap', 'replay:demo.pcap:0'), 0);
  const again = eveToAlert(SURICATA_LINE, pb('second-look', 'second-look:512'), 5);
  assert.equal(first.alert_id, again.alert_id);
  assert.notEqual(first.sensor, again.sensor);
  // two matches on packets with one timestamp in one batch stay two alerts
  const b = pb('s1', 'b2');
  const x = eveToAlert(SURICATA_LINE, b, 0);
  const y = eveToAlert(SURICATA_LINE, b, 1);
  assert.notEqual(x.alert_id, y.alert_id);
  assert.equal(x.alert_id, first.alert_id);
});

test('metadata helpers: CVE spellings, references, printable payloads', () => {
  assert.equal(normalizeCve('CVE_2021_44228'), 'CVE-2021-44228');
  assert.equal(normalizeCve('2014-6271'), 'CVE-2014-6271');
  assert.equal(normalizeCve('not a cve'), null);
  const f = ruleMetadataFields({ mitre_tactic_id: ['TA0011', 'bogus'], created_at: ['2020_01_01'] }, [
    'cve,2014-6271',
    'url,example.com/x',
  ]);
  assert.deepEqual(f.mitre_tactic_ids, ['TA0011']);
  assert.deepEqual(f.cves, ['CVE-2014-6271']);
  assert.deepEqual(f.references, ['cve,2014-6271', 'url,example.com/x']);
  assert.equal(printable(Buffer.from([0x47, 0x45, 0x54, 0x00, 0xff, 0x0a])), 'GET..\n');
  assert.equal(printable(Buffer.alloc(10_000, 0x41)).length, 4096);
});
