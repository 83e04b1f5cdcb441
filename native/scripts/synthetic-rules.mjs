#!/usr/bin/env node
// Generated rules for parser differentials (see parse-diff.sh): every keyword of the registry
// (src/detect_keywords.rs), plus unknown and mixed-case names, with ~40 well- and ill-formed
// values, after 11 different preceding options; then each buffer in each protocol's rules.
// Deterministic: the same registry gives the same file.
//   node native/scripts/synthetic-rules.mjs [REGISTRY_RS] > synthetic.rules
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const registry = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '../src/detect_keywords.rs');
const names = [...new Set([...readFileSync(registry, 'utf8').matchAll(/kw\("([^"]+)"/g)].map((m) => m[1]))].sort();
names.push('unknownkw', 'byte_test', 'NOCASE', 'Http_Uri', 'Content', 'FLOWBITS');
const values = [
  null, '', '1', '!1', '"abc"', '!"abc"', 'abc', '1,relative', '!5,relative', 'set,a', 'isset,a&b', 'isnotset,a|b',
  'noalert', 'toggle', 'type limit, track by_src, count 1, seconds 60', 'type both,track by_flow,count 2,seconds 1',
  'track by_dst, count 3, seconds 5', 'to_server,established', 'from_client,to_client', 'bogus', '/a/iR', '"/a.b/UQ"',
  '"/x/Z"', 'S,12', '+SA', '*F', 'M', '!D', '0x10', '<5', '3<>9', '2-7', '>=4', 'tcp', '!udp', '999', 'only', '1,4',
  '"|41 42|"', '"|4|"',
];
const prefixes = [
  '', 'content:"x"; ', 'pcre:"/x/"; ', 'http.uri; ', 'content:"x"; http_uri; ', 'http_uri; content:"y"; ', 'isdataat:1; ',
  'bsize:3; ', 'to_lowercase; ', 'http.host; content:"h"; ', 'dns.query; ',
];
const out = [];
let sid = 1;
for (const p of prefixes)
  for (const n of names)
    for (const v of values) out.push(`alert tcp any any -> any any (msg:"t"; ${p}${v === null ? n : `${n}:${v}`}; sid:${sid++};)`);
for (const proto of ['http', 'dns', 'tls', 'udp', 'icmp'])
  for (const b of ['http.uri', 'dns.query', 'tls.sni', 'file_data']) out.push(`alert ${proto} any any -> any any (msg:"p"; ${b}; content:"z"; sid:${sid++};)`);
out.push('alert tcp any any -> any any (msg:"nosid"; content:"a";)');
out.push('alert tcp any any -> any any (msg:"x"; content:"a"; rev:2; sid:1;)');
process.stdout.write(out.join('\n') + '\n');
