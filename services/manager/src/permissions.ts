/**
 * What a request may do is one permission; a role is a set of them. Every route declares
 * the one it needs (`public` and `authenticated` are not permissions but route classes: no
 * identity at all, or any signed-in user). Built-in roles are fixed here; custom roles are
 * `role:<id>` records on the policy topic.
 */
export const PERMISSIONS = [
  'inventory:read',
  'groups:read',
  'groups:write',
  'policies:read',
  'policies:write',
  'rulesets:read',
  'alerts:read',
  'alerts:ack',
  'blocks:read',
  'blocks:lift',
  'agents:read',
  'agents:enroll',
  'agents:revoke',
  'agents:command',
  'users:read',
  'users:write',
  'roles:read',
  'roles:write',
  'tokens:admin',
  'targets:read',
  'targets:write',
  'audit:read',
] as const;

export type Permission = (typeof PERMISSIONS)[number];
/** What a route needs: a permission, any signed-in identity, or nothing. */
export type RouteAccess = Permission | 'authenticated' | 'public';

const READ_OPERATIONS: Permission[] = [
  'inventory:read',
  'groups:read',
  'policies:read',
  'rulesets:read',
  'alerts:read',
  'blocks:read',
  'agents:read',
];

export const BUILTIN_ROLES: Readonly<Record<string, { description: string; permissions: readonly Permission[] }>> = {
  admin: { description: 'everything, users and roles included', permissions: PERMISSIONS },
  'policy-editor': {
    description: 'reads operations; edits policies, VM groups and rule overrides; enrolls agents',
    permissions: [...READ_OPERATIONS, 'policies:write', 'groups:write', 'agents:enroll', 'targets:read'],
  },
  operator: {
    description: 'reads operations; lifts blocks, acknowledges alerts, rescans agents',
    permissions: [...READ_OPERATIONS, 'blocks:lift', 'alerts:ack', 'agents:command'],
  },
  analyst: {
    description: 'reads operations (inventory, policies, alerts, blocks, agents)',
    permissions: READ_OPERATIONS,
  },
  auditor: { description: 'reads the audit trail only', permissions: ['audit:read'] },
};

export function isPermission(p: string): p is Permission {
  return (PERMISSIONS as readonly string[]).includes(p);
}
