import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '@cordon/runtime';
import { ERR_AGENT_SIGNING_KEY } from './errors.js';
import { readState, writeState } from './state.js';

/**
 * The agent's Ed25519 key pair, made once per enrollment (per agent id) and kept in its state
 * dir next to identity.json (0600 in a 0700 dir). Every record the agent produces is signed
 * with it; the coordinator registers the public key with the enrollment token that comes with
 * the first heartbeat (first key wins). A lost or replaced key is not taken back silently: the
 * agent must enroll again with a new token.
 */
export function loadSigningKey(stateDir: string, agent: string, log: Logger): KeyObject {
  const file = join(stateDir, 'signing-key.json');
  const have = readState<{ agent?: string; pkcs8?: string }>(file, {}, log);
  if (have.agent === agent && typeof have.pkcs8 === 'string') {
    try {
      const key = createPrivateKey({ key: Buffer.from(have.pkcs8, 'base64'), format: 'der', type: 'pkcs8' });
      if (key.asymmetricKeyType !== 'ed25519')
        throw new Error(`it is a ${key.asymmetricKeyType ?? 'secret'} key, not Ed25519`);
      return key;
    } catch (err) {
      log.error(
        { err: ERR_AGENT_SIGNING_KEY.withCause(err, file, (err as Error).message) },
        'The signing key is unusable; a new one is made.',
      );
    }
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  writeState(file, { agent, pkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64') });
  return privateKey;
}
