/**
 * What a listening port, a process name and a guest OS string say about a VM, in the words
 * ET rules use: application protocols (`http`, `dns`, …), server software and its ET
 * `affected_product` names, the OS family. Tables, not logic: a new server is one line.
 */

/** Well-known server ports → application protocols the DPI engine would see there. */
const PORT_APPS: ReadonlyMap<string, readonly string[]> = new Map<string, string[]>([
  ['tcp/20', ['ftp-data']],
  ['tcp/21', ['ftp']],
  ['tcp/22', ['ssh']],
  ['tcp/23', ['telnet']],
  ['tcp/25', ['smtp']],
  ['tcp/53', ['dns']],
  ['udp/53', ['dns']],
  ['udp/67', ['dhcp']],
  ['udp/69', ['tftp']],
  ['tcp/80', ['http']],
  ['tcp/88', ['krb5']],
  ['udp/88', ['krb5']],
  ['tcp/110', ['pop3']],
  ['tcp/111', ['rpc']],
  ['udp/111', ['rpc']],
  ['udp/123', ['ntp']],
  ['tcp/135', ['dcerpc']],
  ['udp/137', ['netbios']],
  ['udp/138', ['netbios']],
  ['tcp/139', ['smb']],
  ['tcp/143', ['imap']],
  ['udp/161', ['snmp']],
  ['udp/162', ['snmp']],
  ['tcp/389', ['ldap']],
  ['udp/389', ['ldap']],
  ['tcp/443', ['tls']],
  ['udp/443', ['quic']],
  ['tcp/445', ['smb']],
  ['tcp/465', ['tls', 'smtp-tls']],
  ['udp/500', ['ike']],
  ['tcp/502', ['modbus']],
  ['udp/514', ['syslog']],
  ['tcp/587', ['smtp']],
  ['tcp/636', ['tls', 'ldap-tls']],
  ['tcp/993', ['tls', 'imap-tls']],
  ['tcp/995', ['tls', 'pop3-tls']],
  ['tcp/1433', ['mssql']],
  ['tcp/1521', ['oracle']],
  ['tcp/1883', ['mqtt']],
  ['tcp/2049', ['nfs']],
  ['udp/2049', ['nfs']],
  ['tcp/3306', ['mysql']],
  ['tcp/3389', ['rdp']],
  ['udp/4500', ['ike']],
  ['tcp/5060', ['sip']],
  ['udp/5060', ['sip']],
  ['tcp/5432', ['pgsql']],
  ['tcp/5900', ['rfb']],
  ['tcp/6379', ['redis']],
  ['tcp/8000', ['http']],
  ['tcp/8008', ['http']],
  ['tcp/8080', ['http']],
  ['tcp/8081', ['http']],
  ['tcp/8443', ['tls']],
  ['tcp/8888', ['http']],
  ['tcp/9092', ['kafka']],
  ['tcp/9200', ['http']],
  ['tcp/11211', ['memcached']],
  ['tcp/20000', ['dnp3']],
  ['tcp/27017', ['mongodb']],
  ['tcp/44818', ['enip']],
]);

/** Ports whose traffic is TLS: an HTTP server there speaks HTTP only inside it. */
export const TLS_PORTS = new Set([443, 465, 636, 853, 990, 993, 995, 5061, 8443]);

export function appsOfPort(proto: string, port: number): readonly string[] {
  return PORT_APPS.get(`${proto}/${port}`) ?? [];
}

export interface Software {
  /** How reasons name it. */
  name: string;
  /** The application protocol it serves (its ports can be anything). */
  app: string;
  /** ET `affected_product` values that are this software. */
  products: readonly string[];
}

/**
 * Server processes (Linux `comm`, at most 15 characters; Windows image names) → what they
 * serve. Keys are lower case, without a path or ".exe".
 */
const SOFTWARE: ReadonlyMap<string, Software> = new Map<string, Software>([
  ...['nginx', 'openresty'].map((p) => [p, { name: 'nginx', app: 'http', products: ['Nginx'] }] as const),
  ...['apache2', 'httpd', 'apache'].map(
    (p) => [p, { name: 'apache', app: 'http', products: ['Apache_HTTP_server'] }] as const,
  ),
  ['w3wp', { name: 'iis', app: 'http', products: ['Microsoft_IIS'] }],
  ['inetinfo', { name: 'iis', app: 'http', products: ['Microsoft_IIS'] }],
  ['lighttpd', { name: 'lighttpd', app: 'http', products: [] }],
  ['caddy', { name: 'caddy', app: 'http', products: [] }],
  ['haproxy', { name: 'haproxy', app: 'http', products: [] }],
  ['traefik', { name: 'traefik', app: 'http', products: [] }],
  ['envoy', { name: 'envoy', app: 'http', products: [] }],
  ['tomcat', { name: 'tomcat', app: 'http', products: ['Apache_Tomcat'] }],
  ['catalina', { name: 'tomcat', app: 'http', products: ['Apache_Tomcat'] }],
  ['php-fpm', { name: 'php-fpm', app: 'fastcgi', products: ['PHP'] }],
  ...['named', 'bind', 'bind9'].map((p) => [p, { name: 'bind', app: 'dns', products: [] }] as const),
  ...['unbound', 'dnsmasq', 'pdns_server', 'pdns_recursor', 'coredns', 'knotd', 'kresd', 'nsd'].map(
    (p) => [p, { name: p, app: 'dns', products: [] }] as const,
  ),
  ['dns', { name: 'windows-dns', app: 'dns', products: ['Windows_DNS_server'] }],
  ['sshd', { name: 'openssh', app: 'ssh', products: ['OpenSSH'] }],
  ['dropbear', { name: 'dropbear', app: 'ssh', products: [] }],
  ['smbd', { name: 'samba', app: 'smb', products: ['Samba'] }],
  ['nmbd', { name: 'samba', app: 'netbios', products: ['Samba'] }],
  ...['vsftpd', 'proftpd', 'pure-ftpd'].map((p) => [p, { name: p, app: 'ftp', products: [] }] as const),
  ['filezilla server', { name: 'filezilla', app: 'ftp', products: [] }],
  ...['master', 'postfix', 'smtpd'].map((p) => [p, { name: 'postfix', app: 'smtp', products: [] }] as const),
  ...['exim', 'exim4'].map((p) => [p, { name: 'exim', app: 'smtp', products: ['Exim'] }] as const),
  ['sendmail', { name: 'sendmail', app: 'smtp', products: [] }],
  ['dovecot', { name: 'dovecot', app: 'imap', products: [] }],
  ...['mysqld', 'mariadbd'].map((p) => [p, { name: 'mysql', app: 'mysql', products: ['MySQL'] }] as const),
  ['postgres', { name: 'postgresql', app: 'pgsql', products: ['PostgreSQL'] }],
  ['sqlservr', { name: 'mssql', app: 'mssql', products: ['Microsoft_SQL_Server'] }],
  ['redis-server', { name: 'redis', app: 'redis', products: ['Redis'] }],
  ['mongod', { name: 'mongodb', app: 'mongodb', products: ['MongoDB'] }],
  ['memcached', { name: 'memcached', app: 'memcached', products: [] }],
  ['slapd', { name: 'openldap', app: 'ldap', products: [] }],
  ['snmpd', { name: 'net-snmp', app: 'snmp', products: [] }],
  ...['ntpd', 'chronyd'].map((p) => [p, { name: p, app: 'ntp', products: [] }] as const),
  ['rpcbind', { name: 'rpcbind', app: 'rpc', products: [] }],
  ['xrdp', { name: 'xrdp', app: 'rdp', products: [] }],
  ['mosquitto', { name: 'mosquitto', app: 'mqtt', products: [] }],
  ['exchange', { name: 'exchange', app: 'smtp', products: ['Microsoft_Exchange'] }],
  ['msexchangefrontendtransport', { name: 'exchange', app: 'smtp', products: ['Microsoft_Exchange'] }],
]);

/** A process name as netconf reports it → lower case, no path, no ".exe", no ": worker process" suffix. */
export function normalizeProcess(process: string): string {
  return process
    .trim()
    .toLowerCase()
    .replace(/^.*[/\\]/, '')
    .replace(/\.exe$/, '')
    .replace(/:.*$/, '')
    .trim();
}

export function softwareOf(process: string | null): Software | null {
  if (!process) return null;
  return SOFTWARE.get(normalizeProcess(process)) ?? null;
}

// ---------------------------------------------------------------- guest OS

export type OsFamily = 'windows' | 'linux' | 'bsd' | 'macos' | 'unknown';
export type OsRole = 'server' | 'client' | 'unknown';

export interface GuestOs {
  family: OsFamily;
  role: OsRole;
}

/**
 * A guest OS as platforms name it — vSphere guest ids (`debian12_64Guest`,
 * `windows2019srv_64Guest`, `windows9_64Guest`), libvirt/osinfo ids (`debian12`,
 * `http://microsoft.com/win/10`), free text (`Ubuntu 24.04 LTS`) — to a family and a role.
 * Linux and BSD are taken as servers (they run browsers rarely in a data center); Windows
 * editions without "server" (7, 10, 11) are clients.
 */
export function classifyGuestOs(text: string | null): GuestOs {
  if (!text) return { family: 'unknown', role: 'unknown' };
  const s = text.toLowerCase();
  if (/win|microsoft/.test(s)) {
    const server = /server|srv|20(03|08|12|16|19|22|25)/.test(s);
    return { family: 'windows', role: server ? 'server' : 'client' };
  }
  if (/darwin|mac ?os|osx/.test(s)) return { family: 'macos', role: 'client' };
  if (/freebsd|openbsd|netbsd|dragonfly|pfsense|opnsense/.test(s)) return { family: 'bsd', role: 'server' };
  if (
    /linux|debian|ubuntu|centos|rhel|red ?hat|fedora|suse|sles|alpine|arch|rocky|alma|oracle|amazon|photon|coreos|flatcar|gentoo|mint/.test(
      s,
    )
  ) {
    return { family: 'linux', role: /desktop|workstation|mint/.test(s) ? 'client' : 'server' };
  }
  return { family: 'unknown', role: 'unknown' };
}

// ---------------------------------------------------------------- ET affected_product

export type ProductKind =
  /** Anything: no constraint. */
  | { kind: 'any' }
  /** An operating system: the guest's family must be it. */
  | { kind: 'os'; family: OsFamily }
  /** Server software netconf can name: a service of the VM must run it (or run unknown software). */
  | { kind: 'server'; app: string | null }
  /** Software people use (browsers, office, mobile OSes): a client OS only. */
  | { kind: 'client' }
  /** Routers, cameras, PLCs: not VMs. */
  | { kind: 'device' }
  /** Applications on top of a server (WordPress, Struts, Confluence): not visible from processes. */
  | { kind: 'application' };

const OS_PRODUCTS: ReadonlyMap<string, OsFamily> = new Map([
  ['Linux', 'linux'],
  ['Unix', 'linux'],
  ['Linux_Unix', 'linux'],
  ['Mac_OSX', 'macos'],
  ['FreeBSD', 'bsd'],
]);

/** affected_product values whose service netconf identifies (SOFTWARE above), with the protocol they serve. */
const SERVER_PRODUCTS: ReadonlyMap<string, string | null> = new Map<string, string | null>([
  ['Apache_HTTP_server', 'http'],
  ['Nginx', 'http'],
  ['Microsoft_IIS', 'http'],
  ['Apache_Tomcat', 'http'],
  ['Windows_DNS_server', 'dns'],
  ['OpenSSH', 'ssh'],
  ['Samba', 'smb'],
  ['Exim', 'smtp'],
  ['MySQL', 'mysql'],
  ['PostgreSQL', 'pgsql'],
  ['Microsoft_SQL_Server', 'mssql'],
  ['Redis', 'redis'],
  ['MongoDB', 'mongodb'],
  ['Microsoft_Exchange', null],
  ['Apache_Kafka', 'kafka'],
]);

const CLIENT_PRODUCTS = new Set([
  'Web_Browsers',
  'Web_Browser_Plugins',
  'Internet_Explorer',
  'Firefox',
  'Google_Chrome',
  'Safari',
  'Microsoft_Edge_Browser',
  'Adobe_Flash',
  'Adobe_Reader',
  'MS_Office',
  'Windows_Client_Apps',
  'Android',
  'iOS',
  'Mobile',
  'Microsoft_Office',
]);

const DEVICE_PRODUCTS = new Set([
  'Router',
  'Netgear_Router',
  'TPLINK',
  'DVR',
  'IoT',
  'Eir_D1000_Modem',
  'GL_iNet',
  'Cisco_IOS',
  'JunOS',
  'CISCO_Catalyst',
  'Cisco_PIX',
  'Cisco_ASA',
  'Schweitzer_Engineering_Laboratories_SEL_Series',
  'Allen_Bradley_Rockwell_Automation_Series',
  'Siemens_S7_Series',
  'Tridum_Niagara_Series',
  'Viessmann_Vitogate',
  'HP_Smart_Storage_Administrator',
]);

export function classifyProduct(product: string): ProductKind {
  if (product === 'Any' || product === '') return { kind: 'any' };
  if (product.startsWith('Windows_') && !SERVER_PRODUCTS.has(product)) return { kind: 'os', family: 'windows' };
  const os = OS_PRODUCTS.get(product);
  if (os) return { kind: 'os', family: os };
  if (SERVER_PRODUCTS.has(product)) return { kind: 'server', app: SERVER_PRODUCTS.get(product) ?? null };
  if (CLIENT_PRODUCTS.has(product)) return { kind: 'client' };
  if (DEVICE_PRODUCTS.has(product) || /^D_Link/.test(product)) return { kind: 'device' };
  return { kind: 'application' };
}

/** How reasons name a kind of service, by its application protocol. */
export function serviceNoun(app: readonly string[]): string {
  const a = app[0];
  switch (a) {
    case undefined:
      return 'service';
    case 'http':
      return 'web server';
    case 'tls':
      return app.includes('http') ? 'web server' : 'TLS server';
    case 'dns':
      return 'DNS server';
    case 'ssh':
      return 'SSH server';
    case 'smb':
      return 'SMB server';
    case 'smtp':
      return 'mail server';
    case 'ftp':
      return 'FTP server';
    default:
      return `${a} server`;
  }
}
