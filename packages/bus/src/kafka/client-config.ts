/**
 * How the Kafka adapter authenticates: TLS (a CA, optionally a client certificate) and SASL
 * (PLAIN or SCRAM), read once at the edge from a client configuration file in librdkafka's
 * properties format — the file `infra/kafka/start.sh --secure` writes per principal and
 * `kcat -F` reads — into a validated KafkaSecurity. The file holds a password, so it must be
 * its owner's alone (0600), like every secret file of Cordon.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ERR_KAFKA_CLIENT_CONFIG } from '../errors.js';

export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

/** What the connections to the brokers use; absent parts mean plaintext / no SASL. */
export interface KafkaSecurity {
  tls?: {
    /** PEM CA bundle the brokers' certificates must chain to (default: Node's own CAs). */
    ca?: Buffer;
    /** PEM client certificate and key, for brokers that ask for one. */
    cert?: Buffer;
    key?: Buffer;
    passphrase?: string;
    /** false: the certificate is checked against the CA but not against the broker's name. */
    checkHostname: boolean;
  };
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
}

export interface KafkaClientConfig {
  /** bootstrap.servers of the file, when it names them. */
  brokers?: string[];
  security: KafkaSecurity;
  /** The file it came from (for messages; never the password). */
  file: string;
}

/** The keys read; any other is an error that names it (a typo must not silently mean plaintext). */
const KEYS = [
  'bootstrap.servers',
  'metadata.broker.list',
  'security.protocol',
  'sasl.mechanisms',
  'sasl.mechanism',
  'sasl.username',
  'sasl.password',
  'ssl.ca.location',
  'ssl.certificate.location',
  'ssl.key.location',
  'ssl.key.password',
  'ssl.endpoint.identification.algorithm',
] as const;
type Key = (typeof KEYS)[number];

const PROTOCOLS = ['plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'] as const;
const MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

/**
 * Parse the text of a properties file (key=value or key: value a line; # and ! comments).
 * Throws CORDON_ERR_BUS_KAFKA_CLIENT_CONFIG naming `file` and the line.
 */
export function parseClientProperties(text: string, file: string): Map<Key, string> {
  const out = new Map<Key, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) return;
    const m = /^([^=:\s]+)\s*[=:]\s*(.*)$/.exec(line);
    if (!m) throw ERR_KAFKA_CLIENT_CONFIG(file, `line ${i + 1} is not "key=value"`);
    const key = m[1]!;
    if (!(KEYS as readonly string[]).includes(key))
      throw ERR_KAFKA_CLIENT_CONFIG(file, `line ${i + 1}: unknown key "${key}" (known: ${KEYS.join(', ')})`);
    if (out.has(key as Key)) throw ERR_KAFKA_CLIENT_CONFIG(file, `line ${i + 1}: "${key}" is given twice`);
    out.set(key as Key, m[2]!);
  });
  return out;
}

/** The contents of a file the configuration names, or a coded error naming both. */
function readNamed(configFile: string, key: string, path: string): Buffer {
  const file = isAbsolute(path) ? path : resolve(dirname(configFile), path);
  try {
    return readFileSync(file);
  } catch (err) {
    throw ERR_KAFKA_CLIENT_CONFIG.withCause(
      err,
      configFile,
      `${key} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}

/** Validated security settings from parsed properties; relative paths are relative to the file. */
export function clientConfigFrom(props: Map<Key, string>, file: string): KafkaClientConfig {
  const fail = (detail: string) => ERR_KAFKA_CLIENT_CONFIG(file, detail);
  const protocol = (props.get('security.protocol') ?? 'plaintext').toLowerCase();
  if (!(PROTOCOLS as readonly string[]).includes(protocol))
    throw fail(`security.protocol "${protocol}" is not one of ${PROTOCOLS.join(', ')}`);
  const useTls = protocol === 'ssl' || protocol === 'sasl_ssl';
  const useSasl = protocol.startsWith('sasl_');
  const security: KafkaSecurity = {};
  if (useTls) {
    const check = (props.get('ssl.endpoint.identification.algorithm') ?? 'https').toLowerCase();
    if (check !== 'https' && check !== 'none')
      throw fail(`ssl.endpoint.identification.algorithm "${check}" is not https or none`);
    const tls: NonNullable<KafkaSecurity['tls']> = { checkHostname: check === 'https' };
    const ca = props.get('ssl.ca.location');
    if (ca) tls.ca = readNamed(file, 'ssl.ca.location', ca);
    const cert = props.get('ssl.certificate.location');
    const key = props.get('ssl.key.location');
    if (Boolean(cert) !== Boolean(key))
      throw fail('ssl.certificate.location and ssl.key.location go together: give both or neither');
    if (cert && key) {
      tls.cert = readNamed(file, 'ssl.certificate.location', cert);
      tls.key = readNamed(file, 'ssl.key.location', key);
      const pass = props.get('ssl.key.password');
      if (pass) tls.passphrase = pass;
    }
    security.tls = tls;
  } else {
    for (const k of ['ssl.ca.location', 'ssl.certificate.location', 'ssl.key.location'] as const) {
      if (props.has(k))
        throw fail(`${k} is given but security.protocol is ${protocol}: the connection would not use it`);
    }
  }
  if (useSasl) {
    const mechanism = (props.get('sasl.mechanisms') ?? props.get('sasl.mechanism') ?? '').toUpperCase();
    if (!MECHANISMS.includes(mechanism as SaslMechanism))
      throw fail(`sasl.mechanisms "${mechanism}" is not one of ${MECHANISMS.join(', ')}`);
    const username = props.get('sasl.username');
    const password = props.get('sasl.password');
    if (!username) throw fail(`security.protocol ${protocol} needs sasl.username`);
    if (!password) throw fail(`security.protocol ${protocol} needs sasl.password`);
    security.sasl = { mechanism: mechanism as SaslMechanism, username, password };
  } else if (props.has('sasl.username') || props.has('sasl.password')) {
    throw fail(`sasl.username/sasl.password are given but security.protocol is ${protocol}: they would not be sent`);
  }
  const servers = props.get('bootstrap.servers') ?? props.get('metadata.broker.list');
  const brokers = servers
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return { ...(brokers?.length ? { brokers } : {}), security, file };
}

/**
 * Read a client configuration file: refused (coded) when missing, unreadable, readable or
 * writable by its group or others, owned by another user, or not a valid configuration.
 */
export function loadKafkaClientConfig(file: string): KafkaClientConfig {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw ERR_KAFKA_CLIENT_CONFIG(file, 'it is not a regular file');
    if (st.mode & 0o077)
      throw ERR_KAFKA_CLIENT_CONFIG(
        file,
        `it holds a password and its mode is 0${(st.mode & 0o777).toString(8)}; make it 0600 (chmod 600 ${file})`,
      );
    if (process.getuid && st.uid !== process.getuid())
      throw ERR_KAFKA_CLIENT_CONFIG(file, `it belongs to uid ${st.uid}, not to this user`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'CORDON_ERR_BUS_KAFKA_CLIENT_CONFIG') throw err;
    throw ERR_KAFKA_CLIENT_CONFIG.withCause(
      err,
      file,
      `it cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return clientConfigFrom(parseClientProperties(text, file), file);
}

/** The connection options of @platformatic/kafka (clients and connection pools) for `security`. */
export function connectionSecurity(security: KafkaSecurity | undefined): {
  tls?: import('node:tls').ConnectionOptions;
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
} {
  if (!security) return {};
  const out: ReturnType<typeof connectionSecurity> = {};
  if (security.tls) {
    const t = security.tls;
    out.tls = {
      ...(t.ca ? { ca: t.ca } : {}),
      ...(t.cert ? { cert: t.cert } : {}),
      ...(t.key ? { key: t.key } : {}),
      ...(t.passphrase ? { passphrase: t.passphrase } : {}),
      // the chain is always verified; only the name check can be turned off (librdkafka's "none")
      rejectUnauthorized: true,
      ...(t.checkHostname ? {} : { checkServerIdentity: () => undefined }),
    };
  }
  if (security.sasl) out.sasl = { ...security.sasl };
  return out;
}
