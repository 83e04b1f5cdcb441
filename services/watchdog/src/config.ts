import { z } from 'zod';
import { enforcerGuardsShape } from '@cordon/enforce';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_WATCHDOG_CONFIG } from './errors.js';

// Every one of these ends up in an nft script or an `ip netns exec` argument: plain names only.
const ident = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/, 'a plain identifier (letters, digits, "_"; up to 32)');
const ifname = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'a Linux interface name (up to 15 of letters, digits, "_", ".", "-")');

export const watchdogConfigSchema = z
  .object({
    /** This hypervisor host, as named in the inventory; blocks for `watchdog:<host>` are ours. */
    host: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/, 'letters, digits, "_", ".", ":", "/" and "-" only'),
    /** The host's virtual switch (Linux bridge) whose VMs the watchdog protects. */
    bridge: ifname,
    /** Live capture on the bridge's ports, published to `packets` for the dpi stage. */
    capture: z
      .object({
        enabled: z.boolean().default(false),
        /** Capture inside this network namespace (the lab's host); unset: the watchdog's own. */
        netns: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .optional(),
        /** Drain at least this often; arriving frames wake the drain at once anyway. */
        pollMs: z.number().positive().max(1000).default(50),
        /**
         * How long frames of VMs this watchdog does not inspect now (agent-protected, not yet
         * assigned) are kept, in packet time: a hand-off back to the watchdog inspects them from
         * its boundary. Must outlast the policy's heartbeat timeout.
         */
        holdMs: z.number().int().min(0).max(600_000).default(10_000),
        holdMaxMiB: z.number().int().min(1).max(4096).default(64),
      })
      .strict()
      .default({}),
    /**
     * Host enrollment: the watchdog signs its records (packets, block-status, heartbeats) with
     * an Ed25519 key made at its first start, registered by the coordinator with a host token
     * (`cordon hosts token --host <host>`). The token: `token`, else the file `tokenFile`, else
     * CORDON_HOST_TOKEN, else CORDON_HOST_TOKEN_FILE. Without one the watchdog does not sign.
     */
    enroll: z
      .object({
        token: z.string().min(1).optional(),
        tokenFile: z.string().min(1).optional(),
        /** Where its key pair is kept (0700; the key file 0600). Default: <data dir>/watchdog-<host>. */
        stateDir: z.string().min(1).optional(),
        /** How long to wait at start for the coordinator to register a new key before capturing anyway. */
        waitMs: z.number().int().min(0).max(600_000).default(30_000),
      })
      .strict()
      .default({}),
    /** Status on the agents topic (what it inspects, the assignments it applied), this often. */
    statusIntervalMs: z.number().int().min(50).max(60_000).default(1000),
    /**
     * Network gating: VMs the policy gates (coordination.gate, vms.<vm>.gate) are held on the
     * bridge from power-on until their protection is current (needs enforce.enabled).
     */
    gate: z
      .object({
        /** The policy whose gate settings apply. */
        policyId: z.string().min(1).default('default'),
        /** Addresses a held VM may still reach and be reached from (the manager); DHCP and ARP always pass. */
        managerAddresses: z
          .array(z.string().regex(/^[0-9A-Fa-f:.]{2,45}$/, 'a plain IPv4 or IPv6 address'))
          .default([]),
      })
      .strict()
      .default({}),
    enforce: z
      .object({
        enabled: z.boolean().default(true),
        table: ident.default('cordon_watchdog'),
        /** Run nft inside this network namespace (the lab's host); unset: the watchdog's own. */
        netns: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .optional(),
        /** Never-block ranges (beyond the built-in ones and the host's own addresses and gateways), cap and rate. */
        ...enforcerGuardsShape,
      })
      .strict()
      .default({}),
  })
  .strict();

export type WatchdogConfig = z.infer<typeof watchdogConfigSchema>;
export type WatchdogConfigInput = z.input<typeof watchdogConfigSchema>;

export function parseWatchdogConfig(input: unknown): WatchdogConfig {
  const r = watchdogConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw ERR_WATCHDOG_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
}
