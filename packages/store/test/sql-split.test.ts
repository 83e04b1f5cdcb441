import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitStatements } from '../src/index.js';

test('statements split on semicolons outside literals, identifiers and comments', () => {
  const sql = [
    '-- header; comment',
    "CREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it''s; \\'q;') ENGINE = Memory;",
    '/* block; comment */ CREATE TABLE `b;c` (x UInt8) ENGINE = Memory ;',
    '# hash comment;',
    'SELECT "col;name" FROM a',
  ].join('\n');
  assert.deepEqual(splitStatements(sql), [
    "-- header; comment\nCREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it''s; \\'q;') ENGINE = Memory",
    '/* block; comment */ CREATE TABLE `b;c` (x UInt8) ENGINE = Memory',
    '# hash comment;\nSELECT "col;name" FROM a',
  ]);
});

test('comment-only and empty statements are dropped', () => {
  assert.deepEqual(splitStatements('  ;\n-- nothing here;\n/* nor; here */;\n'), []);
  assert.deepEqual(splitStatements('SELECT 1;;SELECT 2;'), ['SELECT 1', 'SELECT 2']);
});
