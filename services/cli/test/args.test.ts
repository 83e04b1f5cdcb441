/** The command-line parser: values from flags, the environment and defaults, in that order; validation; suggestions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nearest, parseDuration, parseInvocation, renderHelp, type CommandSpec } from '../src/args.js';
import { ProgressBar } from '../src/progress.js';

const spec: CommandSpec = {
  name: 'tail',
  summary: 'test',
  args: [{ name: 'TARGET', required: true, help: 'x' }],
  flags: [
    { name: 'since', type: 'duration', env: 'T_SINCE', default: '1h', help: 'x' },
    { name: 'format', type: 'string', choices: ['table', 'json'], default: 'table', help: 'x' },
    { name: 'follow', short: 'f', type: 'boolean', help: 'x' },
    {
      name: 'module',
      type: 'string',
      multiple: true,
      env: 'T_MODULES',
      envSeparator: ':',
      envAppends: true,
      help: 'x',
    },
    { name: 'count', type: 'int', min: 1, max: 10, help: 'x' },
  ],
};

test('flag > environment > default, each value typed and its source kept', () => {
  const inv = parseInvocation(['tail'], spec, ['x', '--since=15m', '-f', '--module', 'c'], {
    T_SINCE: '2h',
    T_MODULES: 'a:b',
  })!;
  assert.equal(inv.num('since'), 15 * 60_000);
  assert.equal(inv.source('since'), 'flag');
  assert.equal(inv.bool('follow'), true);
  assert.deepEqual(inv.list('module'), ['a', 'b', 'c'], 'the environment list, then the flags');
  assert.equal(inv.str('format'), 'table');
  assert.equal(inv.explicit('format'), undefined, 'a default is not explicit');
  assert.deepEqual(inv.args, ['x']);
  const fromEnv = parseInvocation(['tail'], spec, ['x'], { T_SINCE: '2h' })!;
  assert.equal(fromEnv.num('since'), 2 * 3_600_000);
  assert.equal(fromEnv.source('since'), 'env');
  assert.equal(parseInvocation(['tail'], spec, ['--help'], {}), null, '--help before validation: no TARGET needed');
});

test('bad values, unknown flags and missing arguments are usage errors that say what is wrong', () => {
  const bad = (argv: string[], re: RegExp) =>
    assert.throws(
      () => parseInvocation(['tail'], spec, argv, {}),
      (e: Error & { code?: string }) => e.code === 'CORDON_ERR_CLI_USAGE' && re.test(e.message),
    );
  bad(['x', '--since', 'soon'], /--since must be a duration/);
  bad(['x', '--format', 'yaml'], /must be one of table, json/);
  bad(['x', '--count', '11'], /at most 10/);
  bad(['x', '--count', '1.5'], /whole number/);
  bad(['x', '--folow'], /unknown flag "--folow" for "cordon tail"; did you mean --follow\?/);
  bad([], /needs TARGET/);
  bad(['x', 'y'], /takes TARGET, not "y"/);
  bad(['x', '--since'], /needs a value/);
});

test('nearest: typos and swaps are suggested, unrelated words are not', () => {
  assert.equal(nearest('qeury', ['query', 'replay', 'up']), 'query');
  assert.equal(nearest('blok', ['blocks', 'alerts']), 'blocks');
  assert.equal(nearest('xyzzy', ['query', 'replay', 'up']), undefined);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  assert.equal(parseDuration('10'), 10_000);
  assert.equal(parseDuration('ten'), null);
});

test('help lists every flag with its variable and default', () => {
  const text = renderHelp(['tail'], spec);
  assert.match(text, /^ {2}--since DURATION +x \(T_SINCE; default 1h\)$/m);
  assert.match(text, /^ {2}-f, --follow +x \(no variable; default off\)$/m);
  assert.match(text, /^ {2}-h, --help +this text$/m);
});

test('the progress bar draws on a terminal after a second, with rate and ETA, and never on a pipe', () => {
  let t = 0;
  const written: string[] = [];
  const tty = { isTTY: true, columns: 100, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
  const bar = new ProgressBar('replay x.pcap', { stream: tty, now: () => t });
  bar.update(10, 100);
  assert.equal(written.length, 0, 'nothing in the first second');
  t = 2000;
  bar.update(50 * 1024, 100 * 1024);
  assert.match(written.join(''), /replay x\.pcap \[#+-+\] +50% +50\.0 KiB\/100\.0 KiB +25\.0 KiB\/s +ETA 0:02/);
  bar.done();
  assert.equal(written[written.length - 1], '\r\x1b[2K', 'the line is cleared for the result');
  const piped: string[] = [];
  const pipe = { isTTY: false, write: (s: string) => piped.push(s) } as unknown as NodeJS.WriteStream;
  const quiet = new ProgressBar('replay', { stream: pipe, now: () => t, delayMs: 0 });
  t = 10_000;
  quiet.update(1, 2);
  quiet.done();
  assert.deepEqual(piped, []);
});
