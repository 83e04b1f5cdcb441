import { useState } from 'preact/hooks';
import { api } from '../api';
import { Badge, Problem, protectionKind, useLoad, when } from '../ui';

interface TreeVm {
  id: string;
  name: string;
  power: string | null;
  protection: string | null;
  gap_ms: number | null;
  agent_state: string | null;
}
interface Tree {
  platform: string;
  clusters: Array<{
    cluster: string | null;
    hosts: Array<{ id: string; name: string; connection: string | null; vms: TreeVm[] }>;
  }>;
}
interface Vm extends TreeVm {
  host: string | null;
  cluster: string | null;
  platform: string;
  guest_os: string | null;
  ips: string[];
  enforcer: string | null;
  policy_version: number | null;
  groups: string[];
  last_alert: string | null;
  last_alert_signature: string | null;
}

function Protection({ vm }: { vm: TreeVm }) {
  return (
    <>
      <Badge kind={protectionKind(vm.protection)}>{vm.protection ?? 'unassigned'}</Badge>
      {vm.gap_ms ? <Badge kind="bad">gap {Math.round(vm.gap_ms / 1000)} s</Badge> : null}
    </>
  );
}

export function InventoryPage(_: { can: (p: string) => boolean }) {
  const tree = useLoad(() => api<Tree[]>('GET', '/inventory/tree'), []);
  const [vm, setVm] = useState<string | null>(null);
  const detail = useLoad(
    () => (vm ? api<Vm>('GET', `/inventory/vms/${encodeURIComponent(vm)}`) : Promise.resolve(null)),
    [vm],
  );
  const count = (tree.data ?? []).flatMap((p) => p.clusters.flatMap((c) => c.hosts.flatMap((h) => h.vms))).length;
  return (
    <section class="split">
      <div class="tree" data-testid="inventory-tree">
        <h2>
          Inventory <small>{count} VMs</small>
        </h2>
        <Problem error={tree.error} />
        {(tree.data ?? []).map((p) => (
          <details open>
            <summary class="platform">{p.platform}</summary>
            {p.clusters.map((c) => (
              <details open>
                <summary class="cluster">{c.cluster ?? '(no cluster)'}</summary>
                {c.hosts.map((h) => (
                  <details open>
                    <summary class="host">
                      {h.name}{' '}
                      {h.connection && h.connection !== 'connected' ? <Badge kind="warn">{h.connection}</Badge> : null}
                    </summary>
                    <ul>
                      {h.vms.map((v) => (
                        <li>
                          <button class={`link ${vm === v.id ? 'active' : ''}`} onClick={() => setVm(v.id)}>
                            {v.name}
                          </button>{' '}
                          <span class="dim">{v.power ?? ''}</span> <Protection vm={v} />
                        </li>
                      ))}
                    </ul>
                  </details>
                ))}
              </details>
            ))}
          </details>
        ))}
      </div>
      <div class="panel">
        {detail.data ? (
          <dl class="facts" data-testid="vm-detail">
            <dt>VM</dt>
            <dd>{detail.data.name}</dd>
            <dt>Host</dt>
            <dd>
              {detail.data.host ?? '—'} ({detail.data.cluster ?? 'no cluster'}, {detail.data.platform})
            </dd>
            <dt>Protection</dt>
            <dd>
              <Protection vm={detail.data} /> {detail.data.enforcer ?? ''}
            </dd>
            <dt>Agent</dt>
            <dd>{detail.data.agent_state ?? '—'}</dd>
            <dt>Policy version</dt>
            <dd>{detail.data.policy_version ?? '—'}</dd>
            <dt>Addresses</dt>
            <dd>{detail.data.ips.join(', ') || '—'}</dd>
            <dt>Groups</dt>
            <dd>{detail.data.groups.join(', ') || '—'}</dd>
            <dt>Last alert</dt>
            <dd>
              {when(detail.data.last_alert)} {detail.data.last_alert_signature ?? ''}
            </dd>
          </dl>
        ) : (
          <p class="dim">Pick a VM for its protection, policy version and last alert.</p>
        )}
        <Problem error={detail.error} />
      </div>
    </section>
  );
}
