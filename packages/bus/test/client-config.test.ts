/**
 * Kafka client configurations (librdkafka properties, the files infra/kafka/start.sh --secure
 * writes): what is read, and every way a file is refused before anything connects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKafkaClientConfig } from '../src/index.js';

function dir() {
  const d = mkdtempSync(join(tmpdir(), 'cordon-kafka-cc-'));
  writeFileSync(join(d, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');
  const file = (name: string, text: string, mode = 0o600) => {
    const f = join(d, name);
    writeFileSync(f, text, { mode });
    chmodSync(f, mode);
    return f;
  };
  return { d, file, done: () => rmSync(d, { recursive: true, force: true }) };
}

const SECURE =
  'bootstrap.servers=127.0.0.1:1, 127.0.0.1:2\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=agent-1\nsasl.password=s3cret=x\nssl.ca.location=ca.pem\n';

test('a start.sh client config: brokers, TLS with the CA (relative to the file), SCRAM user and password (which may hold "=")', () => {
  const t = dir();
  try {
    const c = loadKafkaClientConfig(t.file('agent.properties', `# comment\n! comment\n\n${SECURE}`));
    assert.deepEqual(c.brokers, ['127.0.0.1:1', '127.0.0.1:2']);
    assert.deepEqual(c.security.sasl, { mechanism: 'SCRAM-SHA-512', username: 'agent-1', password: 's3cret=x' });
    assert.match(c.security.tls!.ca!.toString(), /not checked here/);
    assert.equal(c.security.tls!.checkHostname, true);
  } finally {
    t.done();
  }
});

test('refused with CORDON_ERR_BUS_KAFKA_CLIENT_CONFIG: missing file, readable by others, unknown key, missing CA, SASL without password, unknown mechanism, cert without key, SASL settings on plaintext', () => {
  const t = dir();
  const refused = (f: string, detail: RegExp) =>
    assert.throws(
      () => loadKafkaClientConfig(f),
      (err: { code?: string; message: string }) => {
        assert.equal(err.code, 'CORDON_ERR_BUS_KAFKA_CLIENT_CONFIG');
        assert.match(err.message, detail);
        assert.doesNotMatch(err.message, /s3cret/);
        return true;
      },
    );
  try {
    refused(join(t.d, 'absent.properties'), /cannot be read \(ENOENT\)/);
    refused(t.file('open.properties', SECURE, 0o644), /mode is 0644.*chmod 600/);
    refused(t.file('typo.properties', `${SECURE}sasl.pasword=x\n`), /unknown key "sasl.pasword"/);
    refused(
      t.file('noca.properties', SECURE.replace('ca.pem', 'nope.pem')),
      /ssl.ca.location .*nope.pem cannot be read/,
    );
    refused(t.file('nopass.properties', SECURE.replace(/^sasl.password=.*\n/m, '')), /needs sasl.password/);
    refused(t.file('mech.properties', SECURE.replace('SCRAM-SHA-512', 'GSSAPI')), /sasl.mechanisms "GSSAPI"/);
    refused(t.file('cert.properties', `${SECURE}ssl.certificate.location=ca.pem\n`), /go together/);
    refused(
      t.file('plain.properties', 'security.protocol=plaintext\nsasl.username=a\nsasl.password=s3cret\n'),
      /would not be sent/,
    );
    refused(t.file('twice.properties', `${SECURE}sasl.username=b\n`), /given twice/);
  } finally {
    t.done();
  }
});
