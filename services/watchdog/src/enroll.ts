import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadSigningKey, readHostToken } from '@cordon/agent';
import { readKeys } from '@cordon/bus';
import { codecFor, TOPICS, watchdogEnforcer } from '@cordon/schemas';
import { createRecordSigner, type RecordSigner, type Stage } from '@cordon/stage';
import type { WatchdogConfig } from './config.js';
import { ERR_WATCHDOG_ENROLL } from './errors.js';

/** The header the enrollment token travels in (the coordinator's TOKEN_HEADER). */
export const TOKEN_HEADER = 'cordon-enroll-token';
export const HOST_TOKEN_ENV = 'CORDON_HOST_TOKEN';
export const HOST_TOKEN_FILE_ENV = 'CORDON_HOST_TOKEN_FILE';

/** The host token from the configuration or the environment, or null when none is given. */
export function hostTokenOf(config: WatchdogConfig, env: NodeJS.ProcessEnv = process.env): string | null {
  const { token, tokenFile } = config.enroll;
  const file = tokenFile ?? (token ? undefined : env[HOST_TOKEN_FILE_ENV]);
  const raw = token ?? (tokenFile ? undefined : env[HOST_TOKEN_ENV]);
  if (raw) return raw.trim();
  if (!file) return null;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw ERR_WATCHDOG_ENROLL.withCause(err, `the host token file ${file} cannot be read`);
  }
}

export interface WatchdogEnrollment {
  token: string;
  signer: RecordSigner;
  /** Whether the coordinator's registered key for this host is this signer's (read from cordon.producers.v1). */
  registered(): Promise<'registered' | 'absent' | 'other-key'>;
}

/**
 * The watchdog's signing identity: its host token (which must name its host) and its key pair,
 * made once and kept in its state dir (0600 in a 0700 dir, as an agent's), as producer
 * `watchdog:<host>`.
 */
export function enrollWatchdog(stage: Stage<WatchdogConfig>, token: string): WatchdogEnrollment {
  const { config, ctx } = stage;
  let claims;
  try {
    claims = readHostToken(token);
  } catch (err) {
    throw ERR_WATCHDOG_ENROLL.withCause(err, (err as Error).message);
  }
  if (claims.host !== config.host)
    throw ERR_WATCHDOG_ENROLL(`the host token is for host ${claims.host}, this watchdog is host ${config.host}`);
  const me = watchdogEnforcer(config.host);
  const stateDir = resolve(
    config.enroll.stateDir ?? join(stage.env.dataDir, `watchdog-${config.host.replace(/[^A-Za-z0-9_.-]/g, '_')}`),
  );
  const signer = createRecordSigner(me, loadSigningKey(stateDir, me, ctx.log));
  const codec = codecFor(TOPICS.producers);
  return {
    token,
    signer,
    async registered() {
      const r = (await readKeys(stage.bus, TOPICS.producers, [me])).get(me);
      if (!r?.value) return 'absent';
      return codec.decode(r.value).public_key.equals(signer.publicKey) ? 'registered' : 'other-key';
    },
  };
}
