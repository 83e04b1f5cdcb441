import { defineError } from '@cordon/runtime';

export const ERR_USAGE = defineError(
  'CORDON_ERR_CLI_USAGE',
  (detail: string) =>
    `${detail}${detail.endsWith('?') ? '' : ';'} "cordon help" lists the commands, "cordon COMMAND --help" the flags of one`,
);
export const ERR_CONFIG = defineError(
  'CORDON_ERR_CONFIG',
  (source: string, detail: string) => `invalid configuration in ${source}: ${detail}`,
);
export const ERR_UNKNOWN_SERVICE = defineError(
  'CORDON_ERR_CLI_UNKNOWN_SERVICE',
  (name: string, known: string[]) => `no service named "${name}"; known services: ${known.join(', ')}`,
);
export const ERR_SECRET = defineError(
  'CORDON_ERR_CLI_SECRET',
  (where: string, why: string) =>
    `the secret in ${where} is refused: ${why}. Make a good one with "openssl rand -hex 32", in the environment or a file only you can read`,
);
export const ERR_REPLAY = defineError(
  'CORDON_ERR_REPLAY',
  (file: string, detail: string) => `cannot replay ${file}: ${detail}`,
);

// ---- the control endpoint of a running instance (control/)
export const ERR_CONTROL_UNSAFE_SOCKET = defineError(
  'CORDON_ERR_CONTROL_UNSAFE_SOCKET',
  (path: string, why: string) =>
    `refusing the control socket ${path}: ${why}. Only the user who runs "cordon up" may own it, with mode 0600; ` +
    'stop that instance, remove the file and start it again (it makes the socket itself)',
);
export const ERR_CONTROL_WAIT_TIMEOUT = defineError(
  'CORDON_ERR_CONTROL_WAIT_TIMEOUT',
  (dataDir: string, pid: number, waitedS: number, state: string) =>
    `process ${pid} holds the data dir ${dataDir} and was still ${state} after ${waitedS} s; ` +
    `wait for it (--wait, CORDON_CONTROL_WAIT), stop it (kill -INT ${pid}), or use another --data-dir`,
);
export const ERR_CONTROL_REQUEST_TOO_LARGE = defineError(
  'CORDON_ERR_CONTROL_REQUEST_TOO_LARGE',
  (limit: number) => `the request is larger than ${limit} bytes; send a smaller one`,
);
export const ERR_CONTROL_BAD_REQUEST = defineError(
  'CORDON_ERR_CONTROL_BAD_REQUEST',
  (detail: string) => `bad control request: ${detail}`,
);
export const ERR_CONTROL_NOT_FOUND = defineError(
  'CORDON_ERR_CONTROL_NOT_FOUND',
  (method: string, path: string) =>
    `no control operation at ${method} ${path}; the client and the running instance may be of different versions`,
);
export const ERR_CONTROL_NOT_READY = defineError(
  'CORDON_ERR_CONTROL_NOT_READY',
  (state: string) => `the instance is ${state}; ask again when it is ready`,
);
export const ERR_CONTROL_PROTOCOL = defineError(
  'CORDON_ERR_CONTROL_PROTOCOL',
  (detail: string) =>
    `the running instance answered in a way this client does not understand (${detail}); are both the same version of cordon?`,
);

// ---- cordon query
export const ERR_QUERY_ONE_STATEMENT = defineError(
  'CORDON_ERR_QUERY_ONE_STATEMENT',
  (n: number) => `"cordon query" runs exactly one statement, and this SQL has ${n}; run them one at a time`,
);
export const ERR_QUERY_READ_ONLY = defineError(
  'CORDON_ERR_QUERY_READ_ONLY',
  (what: string) =>
    `"cordon query" only reads (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS), and ${what}; ` +
    'data is written by the services, policy and inventory by "cordon policy apply" / "cordon inventory apply"',
);

// ---- cordon blocks
export const ERR_BLOCK_NOT_FOUND = defineError(
  'CORDON_ERR_BLOCK_NOT_FOUND',
  (target: string, enforcer: string | undefined) =>
    `no block of ${target}${enforcer ? ` by ${enforcer}` : ''} is on the blocks topic; "cordon blocks list --all" shows every block, with its enforcer`,
);
export const ERR_ALREADY_RUNNING = defineError(
  'CORDON_ERR_CLI_ALREADY_RUNNING',
  (dataDir: string, pid: number) =>
    `cordon is already running on ${dataDir} (process ${pid}); use it from here ("cordon query …", "cordon blocks list"), ` +
    `stop it (kill -INT ${pid}), or give this one another --data-dir`,
);
export const ERR_ALERT_NOT_FOUND = defineError(
  'CORDON_ERR_ALERT_NOT_FOUND',
  (alertId: string) =>
    `no alert ${alertId} is on the alerts topic (it keeps 30 days); "cordon query \\"SELECT alert_id, ts, signature FROM alerts ORDER BY ts DESC\\"" lists alert ids`,
);

// ---- the manager's API (--manager URL)
export const ERR_MANAGER_CALL = defineError(
  'CORDON_ERR_CLI_MANAGER',
  (url: string, detail: string) => `the manager at ${url} refused or failed the request: ${detail}`,
);
