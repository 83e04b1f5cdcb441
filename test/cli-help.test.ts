/**
 * Every command and subcommand of the command table answers --help (exit 0) with every flag it
 * takes, the flag's environment variable and default; typos get the nearest command or flag.
 * The commands are enumerated from the table itself, so a new command is covered by adding it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { COMMANDS, commandPaths, type CommandSpec } from '@cordon/cli';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ENV = { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_LOG_LEVEL: 'warn' };

const cordon = (args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: ENV }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

function specAt(path: string[]): CommandSpec {
  let specs: readonly CommandSpec[] = COMMANDS;
  let spec: CommandSpec | undefined;
  for (const w of path) {
    spec = specs.find((c) => c.name === w);
    assert.ok(spec, path.join(' '));
    specs = spec.subcommands ?? [];
  }
  return spec!;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test(
  '--help on every command and subcommand of the table: exit 0, every flag with its variable and default',
  { timeout: 240_000 },
  async () => {
    const paths = commandPaths(COMMANDS);
    assert.ok(paths.length >= 20, `the table has ${paths.length} commands`);
    const queue = [...paths];
    const failures: string[] = [];
    // two at a time: the machine is shared
    await Promise.all(
      [0, 1].map(async () => {
        for (let path = queue.shift(); path; path = queue.shift()) {
          const spec = specAt(path);
          const r = await cordon([...path, '--help']);
          const where = `cordon ${path.join(' ')} --help`;
          if (r.code !== 0) {
            failures.push(`${where}: exit ${r.code}: ${r.stderr}`);
            continue;
          }
          if (!r.stdout.startsWith(`cordon ${path.join(' ')} — ${spec.summary}`)) failures.push(`${where}: no title`);
          if (spec.subcommands) {
            for (const s of spec.subcommands)
              if (!r.stdout.includes(`cordon ${[...path, s.name].join(' ')}`))
                failures.push(`${where}: lists no ${s.name}`);
          }
          for (const f of spec.subcommands ? [] : (spec.flags ?? [])) {
            const line = new RegExp(`^  ${f.short ? `-${f.short}, ` : ''}--${escape(f.name)}\\b`, 'm');
            if (!line.test(r.stdout)) failures.push(`${where}: no --${f.name}`);
            if (f.env && !r.stdout.includes(f.env)) failures.push(`${where}: --${f.name} without ${f.env}`);
            const def = f.defaultText ?? (f.default !== undefined ? String(f.default) : undefined);
            if (def && !f.required && !r.stdout.replace(/\s+/g, ' ').includes(`default ${def.replace(/\s+/g, ' ')}`))
              failures.push(`${where}: --${f.name} without its default ${def}`);
          }
          if (!/^ {2}-h, --help\b/m.test(r.stdout)) failures.push(`${where}: no -h, --help`);
        }
      }),
    );
    assert.deepEqual(failures, []);
    // and the overview
    const help = await cordon(['help']);
    assert.equal(help.code, 0);
    for (const c of COMMANDS) assert.match(help.stdout, new RegExp(`^ {2}${c.name}\\b`, 'm'));
    assert.equal((await cordon(['help', 'blocks', 'lift'])).code, 0);
    assert.equal((await cordon([])).code, 2, 'no command: the overview, and a usage exit');
  },
);

test('unknown commands, subcommands and flags suggest the nearest one', async () => {
  const cmd = await cordon(['qeury', 'SELECT 1']);
  assert.equal(cmd.code, 1);
  assert.match(cmd.stderr, /CORDON_ERR_CLI_USAGE: unknown command "qeury"; did you mean "query"\?/);
  const sub = await cordon(['blocks', 'lsit']);
  assert.match(sub.stderr, /unknown command "cordon blocks lsit"; did you mean "list"\?/);
  const flag = await cordon(['query', '--fromat', 'json', 'SELECT 1']);
  assert.match(flag.stderr, /unknown flag "--fromat" for "cordon query"; did you mean --format\?/);
  const value = await cordon(['alerts', 'tail', '--format', 'jsno']);
  assert.match(value.stderr, /--format must be one of table, json; did you mean "json"\?/);
  const far = await cordon(['xyzzy']);
  assert.doesNotMatch(far.stderr, /did you mean/, 'no suggestion when nothing is near');
});
