// Request schemas of the fleet API and the error responses every route may give. Response bodies
// come from shared/fleet/api.ts.
import { Type } from '@sinclair/typebox';
import { ApiError, Health, ROLES } from '../../shared/fleet/api.ts';

export const DeviceParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
export const CommandParams = Type.Object({ cid: Type.String({ minLength: 1, maxLength: 64 }) });
export const TokenIdParams = Type.Object({ tokenId: Type.String({ minLength: 1, maxLength: 64 }) });
export const ApiTokenParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const DeviceQuery = Type.Object({
  group: Type.Optional(Type.String({ maxLength: 128 })),
  tag: Type.Optional(Type.String({ maxLength: 128 })),
  health: Type.Optional(Health),
  online: Type.Optional(Type.Boolean()),
  q: Type.Optional(Type.String({ maxLength: 128, description: 'substring of id, hostname, group, a label value or a tag' })),
});

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\s].*$' });
const Labels = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }));

export const DevicePatch = Type.Object(
  {
    group: Type.Optional(Name),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 })),
    labels: Type.Optional(Labels),
  },
  { additionalProperties: false },
);

export const ConfigBody = Type.Object(
  {
    config: Type.Record(Type.String(), Type.Unknown(), { description: 'remote config keys (REMOTE_CONFIG_KEYS)' }),
    force: Type.Optional(Type.Boolean({ description: 'skip the fleet-side validation (admin): the box then rejects it itself' })),
  },
  { additionalProperties: false },
);

export const CommandBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    wait: Type.Optional(Type.Boolean({ description: 'answer with the final record (200) instead of the pending one (202)' })),
  },
  { additionalProperties: false },
);

export const StatsQuery = Type.Object({ days: Type.Integer({ minimum: 1, maximum: 400, default: 14 }) });
export const CommandsQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 200 }) });

export const AuditQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 200 }),
  action: Type.Optional(Type.String({ maxLength: 128, description: 'prefix, e.g. device. or token.create' })),
  target: Type.Optional(Type.String({ maxLength: 128 })),
  before: Type.Optional(Type.String({ maxLength: 40, description: 'ISO time: entries strictly older' })),
});

export const EnrolTokenBody = Type.Object(
  {
    group: Name,
    expires: Type.String({ minLength: 2, maxLength: 16, default: '24h', description: 'lifetime: 90s, 30m, 24h, 7d, 2w' }),
    labels: Type.Optional(Labels),
  },
  { additionalProperties: false },
);

export const ApiTokenBody = Type.Object(
  { name: Name, role: Type.Union(ROLES.map((r) => Type.Literal(r))) },
  { additionalProperties: false },
);

export const ConfigError = Type.Composite([ApiError, Type.Object({ errors: Type.Optional(Type.Array(Type.String())) })]);

/** Error bodies every protected route may answer with. */
export const ERRORS = { 400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError, 409: ApiError, 500: ApiError } as const;
