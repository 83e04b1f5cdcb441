import type { Bus } from '@cordon/bus';
import type { Context } from '@cordon/runtime';
import { readTable } from '@cordon/bus';
import { codecFor, TOPICS } from '@cordon/schemas';
import { hashPassword, passwordProblem } from './auth/passwords.js';
import { loadSecret, MANAGER_SECRET_ENV } from './config.js';
import { nameSchema, type UserDocument } from './documents.js';
import { ERR_MANAGER_BAD_REQUEST } from './errors.js';
import { BUILTIN_ROLES } from './permissions.js';
import { ManagerState } from './state.js';

/**
 * `cordon users add`: a user written straight to the policy topic, for the first admin (no
 * one can sign in to make one yet). The password is hashed here with the manager secret of
 * the data dir (or CORDON_MANAGER_SECRET / secretFile), as the manager would. Changing an
 * existing user is refused: that is the API's job, and audited there.
 */
export async function addUser(
  deps: { bus: Bus; ctx: Context; dataDir: string; secretFile?: string },
  u: { name: string; role: string; password: string; groups?: string[]; by: string; scryptLogN?: number },
): Promise<{ name: string; role: string; created: boolean }> {
  const name = nameSchema.safeParse(u.name);
  if (!name.success)
    throw ERR_MANAGER_BAD_REQUEST(`user name "${u.name}": ${name.error.issues[0]?.message ?? 'invalid'}`);
  const problem = passwordProblem(u.password);
  if (problem) throw ERR_MANAGER_BAD_REQUEST(problem);
  const state = new ManagerState();
  for (const r of (await readTable(deps.bus, TOPICS.policy)).values()) {
    try {
      state.apply(r.key, r.value);
    } catch {
      // not ours to judge here
    }
  }
  if (!BUILTIN_ROLES[u.role] && !state.roles.has(u.role))
    throw ERR_MANAGER_BAD_REQUEST(
      `role "${u.role}" does not exist (built-in: ${Object.keys(BUILTIN_ROLES).join(', ')})`,
    );
  if (state.users.has(u.name)) return { name: u.name, role: state.users.get(u.name)!.doc.role, created: false };
  const pepper = loadSecret({
    file: deps.secretFile,
    envName: MANAGER_SECRET_ENV,
    env: process.env,
    dataDir: deps.dataDir,
    keyFile: 'manager.key',
  });
  const now = deps.ctx.clock.now() * 1000;
  const doc: UserDocument = {
    role: u.role,
    groups: u.groups ?? [],
    passwordHash: await hashPassword(u.password, pepper, { N: 1 << (u.scryptLogN ?? 15), r: 8, p: 1 }),
    disabled: false,
    createdUs: now,
  };
  const rec = state.record('user', u.name, doc, u.by, now, 1);
  const producer = deps.bus.producer();
  try {
    await producer.send(TOPICS.policy, [rec]);
    await producer.send(TOPICS.audit, [
      {
        key: Buffer.from(u.by),
        value: codecFor(TOPICS.audit).encode({
          audit_id: crypto.randomUUID(),
          ts_us: now,
          actor: u.by,
          action: 'user.create',
          object: `user:${u.name}`,
          before: null,
          after: JSON.stringify({ role: u.role, groups: doc.groups, disabled: false, passwordHash: '[redacted]' }),
          result: 'ok',
          source_ip: null,
          role: null,
          auth: 'cli',
          detail: null,
        }),
      },
    ]);
  } finally {
    await producer.close();
  }
  deps.ctx.log.info({ user: u.name, role: u.role }, 'User created.');
  return { name: u.name, role: u.role, created: true };
}
