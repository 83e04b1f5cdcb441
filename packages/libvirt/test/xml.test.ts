import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { DEFAULT_SIDECAR_PATH, parseMessage, toPlatformVm } from '../src/index.js';
import { sidecarBuilt } from './helpers.js';

// The sidecar reads domain XML with Go's encoding/xml; `parse-xml` runs that code on one document.
const skip = sidecarBuilt ? false : `the sidecar is not built (${DEFAULT_SIDECAR_PATH}); run packages/libvirt/build.sh`;
function parse(xml: string) {
  const msg = parseMessage(execFileSync(DEFAULT_SIDECAR_PATH, ['parse-xml'], { input: xml, encoding: 'utf8' }).trim());
  assert.equal(msg.t, 'parsed');
  return msg.t === 'parsed' ? msg.dom : assert.fail('not parsed');
}

test(
  'domain XML → PlatformVm: NICs of every kind, MACs lower-cased, the guest OS from libosinfo metadata',
  { skip },
  () => {
    const dom = parse(`<domain type='kvm' id='7'>
  <name>web-1</name>
  <uuid>E7B31696-C07A-460C-9DE4-77ADF44E5480</uuid>
  <metadata>
    <app:other xmlns:app="http://example.com/app"><app:os id="not-this-one"/></app:other>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://microsoft.com/win/2k22"/>
    </libosinfo:libosinfo>
  </metadata>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <interface type='network'><mac address='52:54:00:AB:CD:EF'/><source network='default' portid='x'/><model type='virtio'/></interface>
    <interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br-dmz'/></interface>
    <interface type='direct'><mac address='52:54:00:00:00:03'/><source dev='eth1' mode='vepa'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:04'/></interface>
    <disk type='file' device='disk'><source file='/x.qcow2'/><target dev='vda'/></disk>
  </devices>
</domain>`);
    const vm = toPlatformVm('kvm1', { ...dom, state: 1, reason: 1, id: 7, persistent: true });
    assert.deepEqual(vm, {
      id: 'e7b31696-c07a-460c-9de4-77adf44e5480',
      name: 'web-1',
      host: 'kvm1',
      power: 'on',
      guestOs: 'http://microsoft.com/win/2k22',
      nics: [
        { mac: '52:54:00:ab:cd:ef', network: 'default', ips: [] },
        { mac: '52:54:00:00:00:02', network: 'br-dmz', ips: [] },
        { mac: '52:54:00:00:00:03', network: 'eth1', ips: [] },
        { mac: '52:54:00:00:00:04', network: null, ips: [] },
      ],
      snapshot: null,
      template: false,
    });
  },
);

test('a domain without metadata or NICs has no guest OS and no NICs', { skip }, () => {
  const dom = parse(
    `<domain type='qemu'><name>bare</name><uuid>00000000-0000-4000-8000-000000000000</uuid><devices/></domain>`,
  );
  const vm = toPlatformVm('h', { ...dom, state: 5, reason: 0, persistent: false });
  assert.equal(vm.guestOs, null);
  assert.deepEqual(vm.nics, []);
  assert.equal(vm.power, 'off');
});

test('XML that does not parse is an error line and exit 2, not a crash or a half-read domain', { skip }, () => {
  for (const bad of [
    '<domain><name>x</name',
    'not xml at all',
    '<other/>',
    '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">]><domain><name>&a;&a;</name></domain>',
  ]) {
    const r = spawnSync(DEFAULT_SIDECAR_PATH, ['parse-xml'], { input: bad, encoding: 'utf8' });
    if (r.status === 0) {
      // encoding/xml refuses custom entities; the only accepted case is a plain document.
      assert.fail(`accepted ${JSON.stringify(bad)}: ${r.stdout}`);
    }
    assert.equal(r.status, 2, bad);
    const msg = parseMessage(r.stdout.trim());
    assert.ok(msg.t === 'error' && msg.code === 'xml', `${bad}: ${r.stdout}`);
  }
});
