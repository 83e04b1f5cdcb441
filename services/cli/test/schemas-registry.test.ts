/**
 * `cordon schemas serve`'s routes and `cordon schemas register`'s requests. No real schema
 * registry is installable here (Karapace is not on PyPI, Confluent's is not on Maven Central,
 * Apicurio's is published only as un-augmented Quarkus modules), so registration is checked
 * against a fake that keeps subjects, versions, ids and IMPORT mode the way Confluent's API
 * documents them; the read API is also exercised by a real client in test/soc-queries.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registryVersions, TOPIC_MANIFEST } from '@cordon/schemas';
import { registerSchemas, registryRoute } from '../src/schemas-commands.js';

test("the read API: subjects per topic, versions oldest first with the manifest's ids, lookups, refusals", () => {
  const v = registryVersions();
  const route = (method: string, url: string, body: unknown = null) => registryRoute(v, method, url, body);
  const [, subjects] = route('GET', '/subjects')!;
  assert.equal((subjects as string[]).length, Object.keys(TOPIC_MANIFEST).length);
  assert.ok((subjects as string[]).includes('cordon.alerts.v1-value'));
  assert.deepEqual(route('GET', '/subjects/cordon.alerts.v1-value/versions'), [200, [1, 2]]);
  const [, latest] = route('GET', '/subjects/cordon.alerts.v1-value/versions/latest')! as [
    number,
    { id: number; version: number; schema: string },
  ];
  assert.equal(latest.id, TOPIC_MANIFEST['cordon.alerts.v1'].id);
  assert.equal(latest.version, 2);
  const [, first] = route('GET', '/subjects/cordon.alerts.v1-value/versions/1')! as [number, { id: number }];
  assert.equal(first.id, 12, 'the previous schema keeps its id');
  const [status, byId] = route('GET', `/schemas/ids/${latest.id}`)! as [number, { schema: string }];
  assert.equal(status, 200);
  assert.equal(JSON.parse(byId.schema).name, 'Alert');
  assert.deepEqual(route('GET', '/schemas/ids/12/subjects'), [200, ['cordon.alerts.v1-value']]);
  assert.deepEqual(route('POST', '/subjects/cordon.alerts.v1-value', { schema: latest.schema })![1], {
    subject: 'cordon.alerts.v1-value',
    version: 2,
    id: latest.id,
    schema: latest.schema,
  });
  assert.equal(
    route('GET', '/schemas/ids/999')![1] && (route('GET', '/schemas/ids/999')![1] as { error_code: number }).error_code,
    40403,
  );
  assert.equal((route('GET', '/subjects/nope-value/versions')![1] as { error_code: number }).error_code, 40401);
  assert.equal(route('POST', '/subjects/cordon.alerts.v1-value/versions', { schema: '{}' })![0], 405, 'read-only');
});

/** A registry as Confluent documents it: ids assigned unless the subject is in IMPORT mode. */
function fakeRegistry() {
  const subjects = new Map<string, Array<{ version: number; id: number; schema: string }>>();
  const modes = new Map<string, string>();
  let nextId = 1000;
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const path = decodeURIComponent(req.url ?? '');
      requests.push(`${req.method} ${path}`);
      const json = body ? JSON.parse(body) : {};
      const send = (status: number, obj: unknown) =>
        res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' }).end(JSON.stringify(obj));
      let m: RegExpExecArray | null;
      if (req.method === 'PUT' && (m = /^\/mode\/(.+)$/.exec(path))) {
        modes.set(m[1]!, json.mode);
        return send(200, { mode: json.mode });
      }
      if (req.method === 'POST' && (m = /^\/subjects\/(.+)\/versions$/.exec(path))) {
        const list = subjects.get(m[1]!) ?? [];
        if (json.id !== undefined && modes.get(m[1]!) !== 'IMPORT')
          return send(422, { error_code: 42205, message: 'Subject is not in import mode' });
        const id = json.id ?? nextId++;
        list.push({ version: json.version ?? list.length + 1, id, schema: json.schema });
        subjects.set(m[1]!, list);
        return send(200, { id });
      }
      if (req.method === 'POST' && (m = /^\/subjects\/([^/]+)$/.exec(path))) {
        const hit = (subjects.get(m[1]!) ?? []).find((v) => v.schema === json.schema);
        return hit
          ? send(200, { subject: m[1], ...hit })
          : send(404, { error_code: 40403, message: 'Schema not found' });
      }
      send(404, { error_code: 404, message: 'not found' });
    });
  });
  return { server, subjects, modes, requests };
}

test("register: every version with Cordon's ids in IMPORT mode, the mode restored; a second run finds them; another id is an error", async () => {
  const fake = fakeRegistry();
  await new Promise<void>((r) => fake.server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  try {
    const total = registryVersions().length;
    assert.deepEqual(await registerSchemas(url), { registered: total, present: 0 });
    assert.deepEqual(
      fake.subjects.get('cordon.alerts.v1-value')!.map((v) => [v.version, v.id]),
      [
        [1, 12],
        [2, TOPIC_MANIFEST['cordon.alerts.v1'].id],
      ],
    );
    assert.ok(
      [...fake.modes.values()].every((m) => m === 'READWRITE'),
      'IMPORT mode is left again',
    );
    assert.deepEqual(await registerSchemas(url), { registered: 0, present: total });
    // a registry that gave the subject another id for the same schema cannot decode Cordon's records
    fake.subjects.get('cordon.flows.v1-value')![1]!.id = 4242;
    await assert.rejects(registerSchemas(url), /CORDON_ERR_SCHEMAS_REGISTER|4242/);
  } finally {
    fake.server.close();
  }
});
