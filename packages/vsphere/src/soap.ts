/**
 * The SOAP boundary: vim25 request envelopes out, a namespace-free element tree in, faults
 * turned into coded errors, the `vmware_soap_session` cookie kept. Everything above this file
 * works on `XmlElement`, never on raw XML, and every element's children are a list, so "an
 * array of one element" cannot be mistaken for an object (the classic XML-to-JSON trap).
 */
import { readFileSync } from 'node:fs';
import { XMLParser } from 'fast-xml-parser';
import { Agent, fetch } from 'undici';
import {
  ERR_VSPHERE_BAD_RESPONSE,
  ERR_VSPHERE_FAULT,
  ERR_VSPHERE_INVALID_PROPERTY,
  ERR_VSPHERE_LOGIN_FAILED,
  ERR_VSPHERE_NOT_SUPPORTED,
  ERR_VSPHERE_OBJECT_GONE,
  ERR_VSPHERE_SESSION_EXPIRED,
  ERR_VSPHERE_TLS,
  ERR_VSPHERE_UNREACHABLE,
} from './errors.js';

// ---------------------------------------------------------------------------------------------
// Parsed XML

/** One element: local name, xsi:type (prefix dropped), plain attributes, text, children in order. */
export class XmlElement {
  constructor(
    readonly name: string,
    readonly xsiType: string | null,
    readonly attrs: Readonly<Record<string, string>>,
    readonly text: string,
    readonly children: readonly XmlElement[],
  ) {}

  /** The first child of that name, or null. */
  child(name: string): XmlElement | null {
    for (const c of this.children) if (c.name === name) return c;
    return null;
  }

  /** Every child of that name (an array even for one or none). */
  all(name: string): XmlElement[] {
    return this.children.filter((c) => c.name === name);
  }

  /** The text of the first child of that name, or null when absent. */
  str(name: string): string | null {
    const c = this.child(name);
    return c === null ? null : c.text;
  }

  /** A path of child names, e.g. `el.at('config', 'hardware')`. */
  at(...names: string[]): XmlElement | null {
    let el: XmlElement | null = this;
    for (const n of names) {
      if (el === null) return null;
      el = el.child(n);
    }
    return el;
  }

  /** The element's own type: xsi:type when given, else its name. */
  get type(): string {
    return this.xsiType ?? this.name;
  }
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
});

type OrderedNode = Record<string, unknown> & { ':@'?: Record<string, string> };

function localName(qname: string): string {
  const i = qname.indexOf(':');
  return i === -1 ? qname : qname.slice(i + 1);
}

const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

/** `ns` maps the prefixes in scope to namespace URIs: xsi:type is found by its namespace, whatever its prefix (Go's encoder writes `_XMLSchema-instance:type`). */
function toElement(node: OrderedNode, ns: ReadonlyMap<string, string>): XmlElement | null {
  let name: string | null = null;
  for (const k of Object.keys(node)) {
    if (k !== ':@') {
      name = k;
      break;
    }
  }
  if (name === null || name === '#text' || name.startsWith('?')) return null;
  const rawAttrs = node[':@'] ?? {};
  let scope = ns;
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k.startsWith('xmlns:')) {
      if (scope === ns) scope = new Map(ns);
      (scope as Map<string, string>).set(k.slice(6), String(v));
    }
  }
  const attrs: Record<string, string> = {};
  let xsiType: string | null = null;
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) continue;
    const i = k.indexOf(':');
    if (i !== -1 && scope.get(k.slice(0, i)) === XSI) {
      if (k.slice(i + 1) === 'type') xsiType = localName(String(v));
    } else attrs[localName(k)] = String(v);
  }
  const kids = (node[name] as OrderedNode[] | undefined) ?? [];
  const children: XmlElement[] = [];
  let text = '';
  for (const k of kids) {
    if ('#text' in k) text += String(k['#text']);
    else {
      const el = toElement(k, scope);
      if (el !== null) children.push(el);
    }
  }
  return new XmlElement(localName(name), xsiType, attrs, text, children);
}

/** Parse an XML document into its root element. */
export function parseXml(xml: string): XmlElement {
  const nodes = parser.parse(xml) as OrderedNode[];
  for (const n of nodes) {
    const el = toElement(n, new Map());
    if (el !== null) return el;
  }
  throw new Error('no root element');
}

// ---------------------------------------------------------------------------------------------
// Request encoding

/** A managed object reference: `{ type: 'HostSystem', value: 'host-21' }`. */
export interface MoRef {
  type: string;
  value: string;
}

/** A value to encode: text, a MoRef, a typed object (fields in WSDL order), or a list (repeated element). */
export type XmlValue = string | number | boolean | Date | MoRef | XmlObject | XmlValue[] | null | undefined;
/** Fields in the WSDL's sequence order; `$type` becomes xsi:type (for abstract element types). */
export interface XmlObject {
  $type?: string;
  [field: string]: XmlValue;
}

export function moref(type: string, value: string): MoRef & { $moref: true } {
  return { type, value, $moref: true };
}

function isMoRef(v: object): v is MoRef & { $moref: true } {
  return (v as { $moref?: unknown }).$moref === true;
}

/** Escape text and attribute values: the five XML specials, and control characters XML 1.0 forbids. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']|[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      case "'":
        return '&apos;';
      default:
        return ''; // not representable in XML 1.0
    }
  });
}

export function encodeElement(name: string, v: XmlValue): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map((x) => encodeElement(name, x)).join('');
  if (typeof v === 'string') return `<${name}>${escapeXml(v)}</${name}>`;
  if (typeof v === 'number' || typeof v === 'boolean') return `<${name}>${String(v)}</${name}>`;
  if (v instanceof Date) return `<${name}>${v.toISOString()}</${name}>`;
  if (isMoRef(v)) return `<${name} type="${escapeXml(v.type)}">${escapeXml(v.value)}</${name}>`;
  const obj = v as XmlObject;
  let inner = '';
  for (const [k, fv] of Object.entries(obj)) {
    if (k === '$type') continue;
    inner += encodeElement(k, fv);
  }
  const t = obj.$type ? ` xsi:type="${escapeXml(obj.$type)}"` : '';
  return `<${name}${t}>${inner}</${name}>`;
}

/** A vim25 request envelope: `<Method xmlns="urn:vim25"><_this …/>…args in WSDL order…</Method>`. */
export function envelope(method: string, self: MoRef, args: XmlObject = {}): string {
  let body = encodeElement('_this', { ...self, $moref: true } as MoRef & { $moref: true });
  for (const [k, v] of Object.entries(args)) body += encodeElement(k, v);
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    `<soapenv:Body><${method} xmlns="urn:vim25">${body}</${method}></soapenv:Body></soapenv:Envelope>`
  );
}

// ---------------------------------------------------------------------------------------------
// Responses and faults

/** A vim25 fault as sent: its type (InvalidLogin, NotAuthenticated, …), faultstring and detail. */
export class SoapFault extends Error {
  constructor(
    readonly faultType: string,
    readonly faultString: string,
    readonly detail: XmlElement | null,
  ) {
    super(`${faultType}: ${faultString}`);
    this.name = 'SoapFault';
  }
}

/** What a call needs to word its errors: the source URL without credentials, method, user name. */
export interface CallInfo {
  source: string;
  method: string;
  username?: string;
}

/** The fault inside a SOAP envelope, or null when the body holds a response. */
export function parseFault(root: XmlElement): SoapFault | null {
  const body = root.child('Body');
  const fault = body?.child('Fault') ?? null;
  if (fault === null) return null;
  const detail = fault.child('detail');
  const inner = detail?.children[0] ?? null;
  let type = inner?.xsiType ?? inner?.name ?? 'ServerFault';
  if (inner !== null && inner.xsiType === null && type.endsWith('Fault') && type !== 'MethodFault')
    type = type.slice(0, -5);
  return new SoapFault(type, fault.str('faultstring') ?? '', inner);
}

/** A fault as the coded error callers branch on. */
export function faultToError(f: SoapFault, info: CallInfo): Error {
  switch (f.faultType) {
    case 'NotAuthenticated':
      return ERR_VSPHERE_SESSION_EXPIRED.withCause(f, info.source);
    case 'InvalidLogin':
      return ERR_VSPHERE_LOGIN_FAILED.withCause(f, info.source, info.username ?? '');
    case 'InvalidProperty':
      return ERR_VSPHERE_INVALID_PROPERTY.withCause(f, info.source, f.detail?.str('name') ?? f.faultString);
    case 'ManagedObjectNotFound': {
      const obj = f.detail?.child('obj');
      return ERR_VSPHERE_OBJECT_GONE.withCause(
        f,
        info.source,
        obj ? `${obj.attrs.type ?? ''}:${obj.text}` : f.faultString,
      );
    }
    case 'NotSupported':
    case 'NotImplemented':
      return ERR_VSPHERE_NOT_SUPPORTED.withCause(f, info.source, info.method, f.faultType);
    default:
      return ERR_VSPHERE_FAULT.withCause(f, info.source, info.method, f.faultType, f.faultString);
  }
}

/** The `<MethodResponse>` element of a response document, or the coded error its fault stands for. */
export function responseOf(xml: string, info: CallInfo): XmlElement {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (err) {
    throw ERR_VSPHERE_BAD_RESPONSE.withCause(err, info.source, info.method, 'unparseable XML');
  }
  if (root.name !== 'Envelope') throw ERR_VSPHERE_BAD_RESPONSE(info.source, info.method, `root element <${root.name}>`);
  const fault = parseFault(root);
  if (fault !== null) throw faultToError(fault, info);
  const res = root.child('Body')?.children[0];
  if (res === undefined || res.name !== `${info.method}Response`) {
    throw ERR_VSPHERE_BAD_RESPONSE(info.source, info.method, `no <${info.method}Response> in the body`);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Transport

export interface SoapTransportOptions {
  /** https://host/sdk */
  url: string;
  /** PEM of the CA(s) to verify the server with, instead of the system's. */
  ca?: string;
  /** Accept any certificate (labs only; the connector logs a warning). */
  insecure?: boolean;
  /** Per-request timeout for calls that do not wait on the server (ms). */
  timeoutMs?: number;
  /** Called with every raw response body (recording fixtures). */
  onResponse?: (method: string, status: number, body: string) => void;
}

/** One HTTP connection pool and one session cookie: a vim25 endpoint as seen by one login. */
export class SoapTransport {
  readonly source: string;
  private readonly url: string;
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private cookie: string | null = null;
  /** SOAPAction, e.g. "urn:vim25/8.0.2.0": the API version this client speaks. */
  action = 'urn:vim25/6.5';

  constructor(private readonly opts: SoapTransportOptions) {
    const u = new URL(opts.url);
    u.username = '';
    u.password = '';
    this.url = u.toString();
    this.source = this.url;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.agent = new Agent({
      connect: opts.insecure ? { rejectUnauthorized: false } : opts.ca !== undefined ? { ca: opts.ca } : {},
      keepAliveTimeout: 30_000,
      // A WaitForUpdatesEx may legitimately hold the response for maxWaitSeconds.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  static readCa(file: string): string {
    return readFileSync(file, 'utf8');
  }

  get sessionCookie(): string | null {
    return this.cookie;
  }

  clearSession(): void {
    this.cookie = null;
  }

  /** Pick the newest API version the endpoint announces (falls back to 6.5 when it says nothing). */
  async negotiateVersion(): Promise<string> {
    const u = new URL(this.url);
    u.pathname = u.pathname.replace(/\/?$/, '/vimServiceVersions.xml');
    try {
      const res = await fetch(u, { dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs) });
      if (res.ok) {
        const root = parseXml(await res.text());
        for (const ns of root.all('namespace')) {
          const v = ns.str('version');
          if (ns.str('name') === 'urn:vim25' && v) this.action = `urn:vim25/${v}`;
        }
      } else await res.body?.cancel();
    } catch (err) {
      throw this.networkError(err);
    }
    return this.action;
  }

  /** Send one call; return its `<MethodResponse>` element. `waitMs` extends the timeout for long polls. */
  async call(
    method: string,
    self: MoRef,
    args: XmlObject = {},
    extra: { username?: string; waitMs?: number; signal?: AbortSignal } = {},
  ): Promise<XmlElement> {
    const info: CallInfo = {
      source: this.source,
      method,
      ...(extra.username !== undefined ? { username: extra.username } : {}),
    };
    const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: this.action };
    if (this.cookie !== null) headers.cookie = this.cookie;
    const timeout = AbortSignal.timeout(this.timeoutMs + (extra.waitMs ?? 0));
    const signal = extra.signal ? AbortSignal.any([timeout, extra.signal]) : timeout;
    let status: number;
    let text: string;
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers,
        body: envelope(method, self, args),
        dispatcher: this.agent,
        signal,
      });
      status = res.status;
      const setCookie = res.headers.getSetCookie();
      for (const c of setCookie) {
        const pair = c.split(';', 1)[0] ?? '';
        if (pair.startsWith('vmware_soap_session=')) this.cookie = pair;
      }
      text = await res.text();
    } catch (err) {
      throw this.networkError(err);
    }
    this.opts.onResponse?.(method, status, text);
    if (status !== 200 && status !== 500) throw ERR_VSPHERE_BAD_RESPONSE(this.source, method, `HTTP ${status}`);
    return responseOf(text, info);
  }

  private networkError(err: unknown): Error {
    const e = err as { cause?: { code?: string; message?: string }; name?: string; message?: string };
    const code = e.cause?.code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME|ALTNAME/.test(code)) {
      return ERR_VSPHERE_TLS.withCause(err, this.source, e.cause?.message ?? code);
    }
    const detail =
      e.name === 'TimeoutError' ? 'timed out' : `${code || e.name || 'error'}: ${e.cause?.message ?? e.message ?? ''}`;
    return ERR_VSPHERE_UNREACHABLE.withCause(err, this.source, detail);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
