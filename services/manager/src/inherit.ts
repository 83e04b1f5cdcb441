import type { PolicyDocument } from '@cordon/policy';
import type { Override, PolicyLayers } from './documents.js';

/**
 * Policy inheritance: base → VM groups (in priority order) → the VM itself. Stages read one
 * policy document whose `vms.<vm>` is the most specific setting; the manager keeps the layers
 * (`setting:policy-layers:<id>`) and compiles them into that document, so the responder and
 * the coordinator need to know nothing about groups.
 */
export type Origin = 'base' | `group:${string}` | `vm:${string}` | 'rule action';

export interface Resolved {
  mode: { value: 'detect' | 'prevent' | null; from: Origin };
  /** Every rule any level sets, with its resolved mode and the level it came from. */
  rules: Array<{
    sid: string;
    value: 'detect' | 'prevent';
    from: Origin;
    overrides: Array<{ level: Origin; value: 'detect' | 'prevent' }>;
  }>;
}

/** The layers of a policy that has none recorded (applied from a file): its `vms` are the VMs' own. */
export function layersOf(doc: PolicyDocument, recorded: PolicyLayers | undefined): PolicyLayers {
  if (recorded) return recorded;
  return {
    groups: {},
    vms: Object.fromEntries(
      Object.entries(doc.vms).map(([vm, v]) => [vm, { ...(v.mode ? { mode: v.mode } : {}), rules: v.rules }]),
    ),
  };
}

/** The document's `vms` for these layers: each VM's groups' overrides, then its own. */
export function compileVms(
  base: PolicyDocument['vms'],
  layers: PolicyLayers,
  groupsOfVm: (vm: string) => string[],
  allVms: string[],
): PolicyDocument['vms'] {
  const out: PolicyDocument['vms'] = {};
  const withGroups = new Set(Object.keys(layers.groups).length ? allVms : []);
  for (const vm of new Set([...withGroups, ...Object.keys(layers.vms), ...Object.keys(base)])) {
    const levels: Override[] = [
      ...groupsOfVm(vm)
        .filter((g) => layers.groups[g])
        .map((g) => layers.groups[g]!),
      ...(layers.vms[vm] ? [layers.vms[vm]] : []),
    ];
    const keep = base[vm];
    if (levels.length === 0 && !keep) continue;
    let mode = undefined as 'detect' | 'prevent' | undefined;
    const rules: Record<string, 'detect' | 'prevent'> = {};
    for (const l of levels) {
      if (l.mode) mode = l.mode;
      Object.assign(rules, l.rules);
    }
    if (levels.length === 0 && keep) {
      out[vm] = keep;
      continue;
    }
    out[vm] = {
      ...(mode ? { mode } : {}),
      rules,
      pinned: keep?.pinned ?? [],
      requireAgent: keep?.requireAgent ?? false,
      ...(keep?.gate !== undefined ? { gate: keep.gate } : {}),
    };
  }
  return out;
}

/** What applies to one VM (or to the base, with vm null), and where each value came from. */
export function resolve(doc: PolicyDocument, layers: PolicyLayers, vm: string | null, groups: string[]): Resolved {
  const levels: Array<{ level: Origin; o: Override }> = [
    { level: 'base', o: { ...(doc.mode ? { mode: doc.mode } : {}), rules: doc.rules } },
  ];
  if (vm !== null) {
    for (const g of groups) if (layers.groups[g]) levels.push({ level: `group:${g}`, o: layers.groups[g]! });
    if (layers.vms[vm]) levels.push({ level: `vm:${vm}`, o: layers.vms[vm]! });
  }
  let mode: Resolved['mode'] = { value: null, from: 'rule action' };
  for (const l of levels) if (l.o.mode) mode = { value: l.o.mode, from: l.level };
  const sids = new Set(levels.flatMap((l) => Object.keys(l.o.rules)));
  const rules: Resolved['rules'] = [];
  for (const sid of [...sids].sort((a, b) => Number(a) - Number(b))) {
    const overrides = levels.filter((l) => l.o.rules[sid]).map((l) => ({ level: l.level, value: l.o.rules[sid]! }));
    // the responder's order: a VM's own mode beats a global rule setting (policy.ts)
    const vmLevels = levels.filter((l) => l.level !== 'base');
    const fromVm = [...vmLevels].reverse().find((l) => l.o.rules[sid]);
    const vmMode = [...vmLevels].reverse().find((l) => l.o.mode);
    if (fromVm) rules.push({ sid, value: fromVm.o.rules[sid]!, from: fromVm.level, overrides });
    else if (vmMode) rules.push({ sid, value: vmMode.o.mode!, from: vmMode.level, overrides });
    else rules.push({ sid, value: doc.rules[sid]!, from: 'base', overrides });
  }
  return { mode, rules };
}

/** The VMs' settings that are not layers (pinned, requireAgent, gate): kept in the document as they are. */
export function keptVmSettings(doc: PolicyDocument, layers: PolicyLayers): PolicyDocument['vms'] {
  return Object.fromEntries(
    Object.entries(doc.vms)
      .filter(([vm, v]) => v.pinned.length > 0 || v.requireAgent || v.gate !== undefined || layers.vms[vm])
      .map(([vm, v]) => [
        vm,
        {
          rules: {},
          pinned: v.pinned,
          requireAgent: v.requireAgent,
          ...(v.gate !== undefined ? { gate: v.gate } : {}),
        },
      ]),
  );
}

/** The document stages read: the base with each VM's layers compiled into `vms`. */
export function compileDocument(
  doc: PolicyDocument,
  layers: PolicyLayers,
  groupsOfVm: (vm: string) => string[],
  allVms: string[],
): PolicyDocument {
  return { ...doc, vms: compileVms(keptVmSettings(doc, layers), layers, groupsOfVm, allVms) };
}

/** Whether two `vms` sections say the same, whatever the order of their keys. */
export function sameVms(a: PolicyDocument['vms'], b: PolicyDocument['vms']): boolean {
  const canon = (v: PolicyDocument['vms']) =>
    JSON.stringify(
      Object.keys(v)
        .sort()
        .map((k) => [
          k,
          v[k]!.mode ?? null,
          Object.entries(v[k]!.rules).sort(),
          v[k]!.requireAgent,
          v[k]!.gate ?? null,
        ]),
    );
  return canon(a) === canon(b);
}
