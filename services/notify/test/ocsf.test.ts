import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alertToOcsf, auditToOcsf, fimToOcsf, flowToOcsf, siemRecord, validateOcsf } from '../src/index.js';
import { alert, auditEvent, authAlert, fileEvent, flow } from './fixtures.js';

test('every record kind maps to its OCSF class and validates against the class definition', () => {
  const cases = [
    [alertToOcsf(alert(1)), 2004, 200401],
    [alertToOcsf(authAlert), 3002, 300201],
    [flowToOcsf(flow), 4001, 400102],
    [fimToOcsf(fileEvent), 1001, 100103],
    [fimToOcsf({ ...fileEvent, op: 'renamed', renamed_from: '/etc/passwd.old' }), 1001, 100105],
    [auditToOcsf(auditEvent), 6003, 600304],
  ] as const;
  for (const [ev, cls, type] of cases) {
    assert.deepEqual(validateOcsf(ev), [], `${cls}: ${JSON.stringify(ev)}`);
    assert.equal(ev.class_uid, cls);
    assert.equal(ev.type_uid, type);
  }
});

test('a Detection Finding carries the rule, MITRE ATT&CK, the CVE, the Community ID and the HTTP evidence', () => {
  const ev = alertToOcsf(alert(1)) as Record<string, any>;
  assert.equal(ev.severity_id, 4, 'Cordon severity 1 is High');
  assert.equal(ev.finding_info.uid, 'a0001');
  assert.equal(ev.finding_info.analytic.uid, 'sid:1900001');
  assert.deepEqual(ev.finding_info.attacks, [
    { technique: { uid: 'T1190' }, tactics: [{ uid: 'TA0001' }], version: '14' },
  ]);
  assert.deepEqual(ev.vulnerabilities, [{ cve: { uid: 'CVE-2021-41773' } }]);
  assert.equal(ev.evidences[0].connection_info.community_uid, '1:LQU9qZlK+B5F3KDmev6m5PMibrg=');
  assert.equal(ev.evidences[0].http_request.url.path, '/cgi-bin/../../etc/passwd');
  const auth = alertToOcsf(authAlert) as Record<string, any>;
  assert.equal(auth.user.name, 'admin');
  assert.equal(auth.src_endpoint.ip, '198.51.100.23');
  const rec = siemRecord(alertToOcsf(alert(1)));
  assert.equal(rec.ocsf_class_uid, 2004);
  assert.equal(rec.event_id, 'a0001');
});

test('the validator refuses what OCSF does not allow', () => {
  const good = alertToOcsf(alert(1)) as Record<string, unknown>;
  const { finding_info: _f, ...noFinding } = good;
  assert.ok(validateOcsf(noFinding).some((e) => /finding_info: required/.test(e)));
  assert.ok(validateOcsf({ ...good, type_uid: 200499 }).some((e) => /type_uid/.test(e)));
  assert.ok(validateOcsf({ ...good, severity_id: 7 }).some((e) => /severity_id/.test(e)));
  assert.ok(validateOcsf({ ...good, bogus: 1 }).some((e) => /bogus: not an attribute/.test(e)));
  assert.ok(
    validateOcsf({ ...flowToOcsf(flow), src_endpoint: { ip: 'not-an-ip' } }).some((e) =>
      /src_endpoint.ip: not an ip_t/.test(e),
    ),
  );
  assert.ok(validateOcsf({ ...good, time: 1.5 }).some((e) => /time: not a timestamp_t/.test(e)));
});
