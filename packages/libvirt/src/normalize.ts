/** Sidecar domains → the platform-neutral records of platform.ts. */
import type { PlatformNic, PlatformVm } from '@cordon/platform';
import type { SidecarDomain } from './protocol.js';

export type Power = PlatformVm['power'];

/** virDomainState → power. Paused and PM-suspended are suspended; shut off, crashed and no-state are off. */
export function powerOf(state: number): Power {
  switch (state) {
    case 1: // running
    case 2: // blocked
    case 4: // being shut down: still running
      return 'on';
    case 3: // paused
    case 7: // pmsuspended
      return 'suspended';
    default: // 0 nostate, 5 shutoff, 6 crashed
      return 'off';
  }
}

/**
 * virDomainPausedReason codes of pauses that a job makes and undoes by itself (migration, save,
 * dump, shutdown, snapshot, start-up): such a paused domain is running, as far as protection goes.
 */
export const JOB_PAUSE_REASONS: ReadonlySet<number> = new Set([2, 3, 4, 8, 9, 11]);

/** The power a listing shows, a job's pause counting as running (a listing taken mid-start must not read as a suspend). */
export function powerOfListed(state: number, reason: number): Power {
  return state === 3 && JOB_PAUSE_REASONS.has(reason) ? 'on' : powerOf(state);
}

export function toPlatformVm(host: string, d: SidecarDomain): PlatformVm {
  const nics: PlatformNic[] = d.nics.map((n) => ({
    mac: n.mac,
    network: n.network ? n.network : null,
    ips: [...n.ips],
  }));
  return {
    id: d.uuid,
    name: d.name,
    host,
    power: powerOfListed(d.state, d.reason),
    // The libosinfo id as virt-install writes it (e.g. "http://debian.org/debian/12"): libvirt
    // knows nothing else about the guest OS without a guest agent.
    guestOs: d.osId ? d.osId : null,
    nics,
    snapshot: d.snapshot ? d.snapshot : null,
    // libvirt has no templates.
    template: false,
  };
}

/**
 * The host id of a URI: its host part ("qemu+ssh://kvm1/system" → "kvm1"), or for a local URI
 * ("qemu:///system") the hostname libvirtd reports.
 */
export function hostIdFor(uri: string, reportedHostname: string): string {
  try {
    const host = new URL(uri).hostname;
    if (host && host !== 'localhost' && host !== '127.0.0.1' && host !== '[::1]') return host.replace(/^\[|\]$/g, '');
  } catch {
    // not a URL the WHATWG parser takes: fall back to what libvirtd says
  }
  return reportedHostname;
}
