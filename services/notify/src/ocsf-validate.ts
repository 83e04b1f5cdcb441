import { isIP } from 'node:net';

/**
 * A validator for the OCSF 1.3 classes Cordon emits, written from the schema's class
 * definitions (events/base_event.json, the category bases and the class files of
 * ocsf/ocsf-schema, and the objects they use): the attributes each class allows, those it
 * requires, their types and enumerations. No OCSF schema package is installable here (the npm
 * and PyPI packages either are not served or fetch the schema from schema.ocsf.io at run time),
 * so the tests check Cordon's events against this transcription.
 */

type Check = (v: unknown, path: string, errs: string[]) => void;

const int: Check = (v, p, e) => void (Number.isInteger(v) ? undefined : e.push(`${p}: not an integer`));
const str: Check = (v, p, e) => void (typeof v === 'string' ? undefined : e.push(`${p}: not a string`));
const bool: Check = (v, p, e) => void (typeof v === 'boolean' ? undefined : e.push(`${p}: not a boolean`));
const timestamp: Check = (v, p, e) =>
  void (Number.isInteger(v) && (v as number) >= 0
    ? undefined
    : e.push(`${p}: not a timestamp_t (integer milliseconds)`));
const port: Check = (v, p, e) =>
  void (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535 ? undefined : e.push(`${p}: not a port_t`));
const ip: Check = (v, p, e) => void (typeof v === 'string' && isIP(v) ? undefined : e.push(`${p}: not an ip_t`));
const oneOf =
  (...ids: number[]): Check =>
  (v, p, e) =>
    void (Number.isInteger(v) && ids.includes(v as number)
      ? undefined
      : e.push(`${p}: ${String(v)} is not one of ${ids.join(', ')}`));
const any: Check = () => undefined;
const json: Check = (v, p, e) =>
  void (v === null || ['string', 'number', 'boolean', 'object'].includes(typeof v)
    ? undefined
    : e.push(`${p}: not json_t`));

interface ObjectSpec {
  required?: string[];
  attrs: Record<string, Check>;
}
const object =
  (spec: ObjectSpec): Check =>
  (v, p, e) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      e.push(`${p}: not an object`);
      return;
    }
    const o = v as Record<string, unknown>;
    for (const r of spec.required ?? []) if (o[r] === undefined) e.push(`${p}.${r}: required`);
    for (const [k, val] of Object.entries(o)) {
      if (val === undefined) continue;
      const c = spec.attrs[k];
      if (!c) e.push(`${p}.${k}: not an attribute of this object`);
      else c(val, `${p}.${k}`, e);
    }
  };
const array =
  (c: Check): Check =>
  (v, p, e) => {
    if (!Array.isArray(v)) e.push(`${p}: not an array`);
    else v.forEach((x, i) => c(x, `${p}[${i}]`, e));
  };

const product = object({
  required: ['vendor_name'],
  attrs: { name: str, vendor_name: str, version: str, uid: str, lang: str },
});
const metadata = object({
  required: ['version', 'product'],
  attrs: {
    version: str,
    product,
    uid: str,
    original_time: str,
    logged_time: timestamp,
    labels: array(str),
    log_name: str,
    profiles: array(str),
    correlation_uid: str,
    event_code: str,
  },
});
const endpoint = object({
  attrs: {
    ip,
    port,
    name: str,
    hostname: str,
    uid: str,
    mac: str,
    domain: str,
    instance_uid: str,
    interface_name: str,
  },
});
const fingerprint = object({
  required: ['algorithm_id', 'value'],
  attrs: { algorithm_id: oneOf(0, 1, 2, 3, 4, 5, 6, 7, 8, 99), algorithm: str, value: str },
});
const user = object({ attrs: { name: str, uid: str, type_id: int, type: str, domain: str, email_addr: str } });
const device = object({
  required: ['type_id'],
  attrs: {
    name: str,
    hostname: str,
    uid: str,
    ip,
    type_id: oneOf(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 99),
    type: str,
    os: any,
  },
});
const connectionInfo = object({
  attrs: {
    protocol_num: int,
    protocol_name: str,
    protocol_ver: str,
    protocol_ver_id: int,
    direction_id: oneOf(0, 1, 2, 3, 4, 99),
    direction: str,
    community_uid: str,
    tcp_flags: int,
    uid: str,
    boundary_id: int,
  },
});
const traffic = object({
  attrs: {
    bytes: int,
    bytes_in: int,
    bytes_out: int,
    packets: int,
    packets_in: int,
    packets_out: int,
    bytes_missed: int,
    chunks: int,
  },
});
const url = object({ attrs: { hostname: str, path: str, url_string: str, scheme: str, port, query_string: str } });
const file = object({
  required: ['name', 'type_id'],
  attrs: {
    name: str,
    path: str,
    type_id: oneOf(0, 1, 2, 3, 4, 5, 6, 7, 99),
    type: str,
    size: int,
    modified_time: timestamp,
    created_time: timestamp,
    owner: user,
    hashes: array(fingerprint),
    uid: str,
    mime_type: str,
  },
});
const attack = object({
  attrs: {
    technique: object({ required: ['uid'], attrs: { uid: str, name: str } }),
    tactic: object({ required: ['uid'], attrs: { uid: str, name: str } }),
    tactics: array(object({ required: ['uid'], attrs: { uid: str, name: str } })),
    version: str,
  },
});
const analytic = object({
  required: ['type_id'],
  attrs: {
    uid: str,
    name: str,
    type_id: oneOf(0, 1, 2, 3, 4, 5, 6, 99),
    type: str,
    version: str,
    category: str,
    desc: str,
  },
});
const findingInfo = object({
  required: ['uid', 'title'],
  attrs: {
    uid: str,
    title: str,
    desc: str,
    analytic,
    attacks: array(attack),
    types: array(str),
    product_uid: str,
    src_url: str,
    first_seen_time: timestamp,
    last_seen_time: timestamp,
    created_time: timestamp,
    data_sources: array(str),
  },
});
const resource = object({ attrs: { name: str, type: str, uid: str, labels: array(str), namespace: str } });
const evidence = object({
  attrs: {
    src_endpoint: endpoint,
    dst_endpoint: endpoint,
    connection_info: connectionInfo,
    http_request: object({ attrs: { http_method: str, user_agent: str, url, version: str } }),
    query: object({
      required: ['hostname'],
      attrs: { hostname: str, type: str, class: str, opcode: str, packet_uid: int },
    }),
    tls: object({ attrs: { sni: str, version: str, ja3_hash: fingerprint, ja3s_hash: fingerprint, cipher: str } }),
    file,
    data: json,
  },
});

/** Attributes of the base event every class shares (with the classification and occurrence traits). */
const BASE: Record<string, Check> = {
  activity_id: int,
  activity_name: str,
  category_uid: int,
  category_name: str,
  class_uid: int,
  class_name: str,
  type_uid: int,
  type_name: str,
  severity_id: oneOf(0, 1, 2, 3, 4, 5, 6, 99),
  severity: str,
  time: timestamp,
  start_time: timestamp,
  end_time: timestamp,
  duration: int,
  count: int,
  timezone_offset: int,
  message: str,
  metadata,
  status_id: int,
  status: str,
  status_code: str,
  status_detail: str,
  unmapped: json,
  raw_data: str,
  enrichments: any,
  observables: any,
};

interface ClassSpec {
  name: string;
  category: number;
  activities: number[];
  required: string[];
  attrs: Record<string, Check>;
}

export const OCSF_CLASSES: Record<number, ClassSpec> = {
  2004: {
    name: 'Detection Finding',
    category: 2,
    activities: [0, 1, 2, 3, 99],
    required: ['finding_info'],
    attrs: {
      finding_info: findingInfo,
      is_alert: bool,
      confidence_id: oneOf(0, 1, 2, 3, 99),
      evidences: array(evidence),
      resources: array(resource),
      vulnerabilities: array(
        object({ attrs: { cve: object({ required: ['uid'], attrs: { uid: str, desc: str } }), desc: str } }),
      ),
      action_id: oneOf(0, 1, 2, 3, 4, 99),
      action: str,
      disposition_id: int,
      disposition: str,
      device,
      risk_score: int,
    },
  },
  4001: {
    name: 'Network Activity',
    category: 4,
    activities: [0, 1, 2, 3, 4, 5, 6, 7, 99],
    required: ['src_endpoint', 'dst_endpoint'],
    attrs: {
      src_endpoint: endpoint,
      dst_endpoint: endpoint,
      connection_info: connectionInfo,
      traffic,
      device,
      proxy: endpoint,
      app_name: str,
    },
  },
  1001: {
    name: 'File System Activity',
    category: 1,
    activities: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 99],
    required: ['actor', 'device', 'file'],
    attrs: {
      actor: object({ attrs: { app_name: str, app_uid: str, user, process: any } }),
      device,
      file,
      file_result: file,
      file_diff: str,
      component: str,
    },
  },
  3002: {
    name: 'Authentication',
    category: 3,
    activities: [0, 1, 2, 3, 4, 5, 6, 7, 99],
    required: ['user'],
    attrs: {
      user,
      src_endpoint: endpoint,
      dst_endpoint: endpoint,
      device,
      auth_protocol_id: int,
      auth_protocol: str,
      is_mfa: bool,
      logon_type_id: int,
      service: any,
    },
  },
  6003: {
    name: 'API Activity',
    category: 6,
    activities: [0, 1, 2, 3, 4, 99],
    required: ['actor', 'api', 'src_endpoint'],
    attrs: {
      actor: object({ attrs: { user, app_name: str } }),
      api: object({
        required: ['operation'],
        attrs: { operation: str, service: object({ attrs: { name: str, uid: str, version: str } }), version: str },
      }),
      resources: array(resource),
      src_endpoint: endpoint,
    },
  },
};

/** Every way `ev` breaks the OCSF 1.3 class it names; empty when it validates. */
export function validateOcsf(ev: unknown): string[] {
  const errs: string[] = [];
  if (typeof ev !== 'object' || ev === null) return ['the event is not an object'];
  const o = ev as Record<string, unknown>;
  const spec = OCSF_CLASSES[o.class_uid as number];
  if (!spec) return [`class_uid ${String(o.class_uid)} is not one of the classes Cordon emits`];
  for (const r of [
    'activity_id',
    'category_uid',
    'class_uid',
    'metadata',
    'severity_id',
    'time',
    'type_uid',
    ...spec.required,
  ])
    if (o[r] === undefined) errs.push(`${r}: required`);
  if (o.category_uid !== spec.category)
    errs.push(`category_uid: ${String(o.category_uid)} is not ${spec.category} (${spec.name})`);
  if (!spec.activities.includes(o.activity_id as number))
    errs.push(`activity_id: ${String(o.activity_id)} is not an activity of ${spec.name}`);
  if (o.type_uid !== (o.class_uid as number) * 100 + (o.activity_id as number))
    errs.push(`type_uid: ${String(o.type_uid)} is not class_uid * 100 + activity_id`);
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    const c = spec.attrs[k] ?? BASE[k];
    if (!c) errs.push(`${k}: not an attribute of ${spec.name}`);
    else c(v, k, errs);
  }
  return errs;
}
