// Which role each dashboard action needs. The server enforces these; the page only hides what
// would be refused, so a viewer is not offered buttons that end in 403.
import type { Role } from '../../../shared/fleet/api.ts';

// The same order as ROLES in shared/fleet/api.ts; repeated because only types may be imported
// from shared/ (its modules pull in TypeBox, which the browser does not get).
export const ROLE_ORDER: readonly Role[] = ['viewer', 'operator', 'admin'];

export const NEEDS = {
  'device.edit': 'operator',
  'config.push': 'operator',
  command: 'operator',
  'device.revoke': 'admin',
  'token.read': 'admin',
  'token.create': 'admin',
  'token.revoke': 'admin',
  'audit.read': 'admin',
  'release.upload': 'admin',
  'release.delete': 'admin',
  'rollout.create': 'operator',
  'rollout.control': 'operator',
  'rollout.retry': 'admin',
} as const satisfies Record<string, Role>;

export type Action = keyof typeof NEEDS;

export function can(role: Role, action: Action): boolean {
  return ROLE_ORDER.indexOf(role) >= ROLE_ORDER.indexOf(NEEDS[action]);
}
