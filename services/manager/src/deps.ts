import type { Bus, ProduceRecord } from '@cordon/bus';
import type { Context } from '@cordon/runtime';
import type { PolicyKind } from '@cordon/schemas';
import type { Store } from '@cordon/store';
import type { LoginLimiter } from './auth/limiter.js';
import type { ScryptCost } from './auth/passwords.js';
import type { ManagerConfig } from './config.js';
import type { ManagerState } from './state.js';
import type { PipelineViews } from './views.js';

/** A change of the manager's state: the new document of `<kind>:<id>`, or null to delete it. */
export interface Change {
  kind: PolicyKind;
  id: string;
  doc: unknown;
}

/** What the routes are handed: the state, the views, and the ways to change things. */
export interface ManagerDeps {
  config: ManagerConfig;
  ctx: Context;
  dataDir: string;
  state: ManagerState;
  views: PipelineViews;
  /** The bus (policy writes through applyPolicyFile, as the CLI makes them). */
  bus: Bus;
  /** Write changes to the policy topic (acknowledged), applied to this instance's state at once. */
  write(changes: Change[], by: string): Promise<void>;
  /** Send records to another topic (blocks tombstones, agent commands, audit events). */
  send(topic: string, records: ProduceRecord[]): Promise<void>;
  /** The read-only (readonly = 1) ClickHouse session: alerts, flows, blocks history, audit. */
  readStore(): Promise<Store>;
  /** Peppers password hashes. */
  pepper: Buffer;
  scryptCost: ScryptCost;
  /** Signs agent enrollment tokens (loaded when first needed). */
  enrollSecret(): Buffer;
  limiter: LoginLimiter;
  /** Whether the manager serves TLS (cookies are then Secure). */
  tls: boolean;
}
