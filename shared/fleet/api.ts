// Response bodies of the fleet API (fleet/api) that the dashboard (fleet/web), the CLI and tests
// read. Request schemas live next to their routes.
import { Type, type Static } from '@sinclair/typebox';
import { UpdateStatus } from '../update/messages.ts';
import { DesiredConfig, ReportedConfig, Telemetry } from './messages.ts';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
/** admin ⊃ operator ⊃ viewer. */
export const roleAtLeast = (have: Role, need: Role): boolean => ROLES.indexOf(have) >= ROLES.indexOf(need);

export const ApiError = Type.Object({ error: Type.String(), message: Type.String(), statusCode: Type.Integer() });
export type ApiError = Static<typeof ApiError>;

export const AlertKind = Type.Union([Type.Literal('offline'), Type.Literal('disk'), Type.Literal('queue-age'), Type.Literal('dead-letters'), Type.Literal('config-rejected'), Type.Literal('cert-expiring')]);
export const Alert = Type.Object({
  deviceId: Type.String(),
  kind: AlertKind,
  severity: Type.Union([Type.Literal('warning'), Type.Literal('critical')]),
  message: Type.String(),
  since: Type.String(),
});
export type Alert = Static<typeof Alert>;

export const Health = Type.Union([Type.Literal('ok'), Type.Literal('warning'), Type.Literal('critical'), Type.Literal('unknown')]);
export type Health = Static<typeof Health>;

export const DeviceSummary = Type.Object({
  id: Type.String(),
  group: Type.String(),
  labels: Type.Record(Type.String(), Type.String(), { description: 'e.g. clinic' }),
  tags: Type.Array(Type.String()),
  online: Type.Boolean(),
  health: Health,
  revoked: Type.Boolean(),
  firmware: Type.Union([Type.String(), Type.Null()]),
  enrolledAt: Type.String(),
  lastSeenAt: Type.Union([Type.String(), Type.Null()]),
  certNotAfter: Type.String(),
  alerts: Type.Integer({ minimum: 0 }),
  /** Desired config version vs the version the box last reported. */
  desiredVersion: Type.Integer({ minimum: 0 }),
  reportedVersion: Type.Integer({ minimum: 0 }),
});
export type DeviceSummary = Static<typeof DeviceSummary>;

export const TelemetryPoint = Type.Object({
  at: Type.String(),
  cpu: Type.Union([Type.Number(), Type.Null()]),
  mem: Type.Union([Type.Number(), Type.Null()]),
  disk: Type.Union([Type.Number(), Type.Null()]),
  queue: Type.Integer(),
  oldestQueuedAgeS: Type.Union([Type.Number(), Type.Null()]),
});
export type TelemetryPoint = Static<typeof TelemetryPoint>;

export const DeviceEvent = Type.Object({ at: Type.String(), event: Type.String(), detail: Type.Optional(Type.String()) });

/** A box's update state as the fleet knows it (fleet/rollouts). */
export const DeviceUpdate = Type.Object({
  /** The last update status the box reported. (Unsafe keeps the schema as is: static types of
   *  Composite and the fastify type provider turn UpdateStatus's mapped phase union into never.) */
  status: Type.Union([Type.Unsafe<UpdateStatus>(UpdateStatus), Type.Null()]),
  /** The newest rollout that includes the box, with the box's status in it. */
  rollout: Type.Union([
    Type.Object({ id: Type.String(), version: Type.String(), state: Type.String(), boxStatus: Type.String(), reason: Type.Optional(Type.String()) }),
    Type.Null(),
  ]),
  /** Releases that failed on this box: never offered to it again unless an admin re-approves. */
  failedReleases: Type.Array(
    Type.Object({
      version: Type.String(),
      state: Type.Union([Type.Literal('failed'), Type.Literal('approved')]),
      reason: Type.String(),
      at: Type.String(),
      rolloutId: Type.Union([Type.String(), Type.Null()]),
      approvedBy: Type.Optional(Type.String()),
    }),
  ),
});
export type DeviceUpdate = Static<typeof DeviceUpdate>;

export const DeviceDetail = Type.Composite([
  DeviceSummary,
  Type.Object({
    hostname: Type.Union([Type.String(), Type.Null()]),
    certSerial: Type.String(),
    telemetry: Type.Union([Telemetry, Type.Null()]),
    history: Type.Array(TelemetryPoint),
    desired: Type.Union([DesiredConfig, Type.Null()]),
    reported: Type.Union([ReportedConfig, Type.Null()]),
    alertList: Type.Array(Alert),
    events: Type.Array(DeviceEvent),
    update: Type.Optional(DeviceUpdate),
  }),
]);
export type DeviceDetail = Static<typeof DeviceDetail>;

export const CommandRecord = Type.Object({
  id: Type.String(),
  deviceId: Type.String(),
  name: Type.String(),
  args: Type.Record(Type.String(), Type.Unknown()),
  status: Type.Union([Type.Literal('pending'), Type.Literal('ok'), Type.Literal('error'), Type.Literal('expired'), Type.Literal('unknown-command'), Type.Literal('timed-out')]),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.String()),
  issuedBy: Type.String(),
  issuedAt: Type.String(),
  expiresAt: Type.String(),
  answeredAt: Type.Optional(Type.String()),
});
export type CommandRecord = Static<typeof CommandRecord>;

export const EnrolTokenInfo = Type.Object({
  tokenId: Type.String(),
  group: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  createdAt: Type.String(),
  createdBy: Type.String(),
  expiresAt: Type.String(),
  state: Type.Union([Type.Literal('pending'), Type.Literal('used'), Type.Literal('expired'), Type.Literal('revoked')]),
  usedAt: Type.Optional(Type.String()),
  deviceId: Type.Optional(Type.String()),
});
export type EnrolTokenInfo = Static<typeof EnrolTokenInfo>;

export const ApiTokenInfo = Type.Object({ id: Type.String(), name: Type.String(), role: Type.String(), createdAt: Type.String(), createdBy: Type.String() });
export type ApiTokenInfo = Static<typeof ApiTokenInfo>;

export const AuditEntry = Type.Object({
  at: Type.String(),
  actor: Type.String({ description: 'api token name, "cli", a device id, or "anonymous"' }),
  action: Type.String({ description: 'e.g. token.create, enrol.refused, device.config.set, device.command, device.revoke' }),
  target: Type.Optional(Type.String()),
  outcome: Type.Union([Type.Literal('ok'), Type.Literal('refused'), Type.Literal('error')]),
  detail: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type AuditEntry = Static<typeof AuditEntry>;

/** GET /api/stats?days=N — per day, summed over the fleet; clinic = device label "clinic" (or its group). */
export const StatsRow = Type.Object({
  day: Type.String(),
  modality: Type.String(),
  clinic: Type.String(),
  studies: Type.Integer(),
  instances: Type.Integer(),
  bytesReceived: Type.Number(),
  bytesSent: Type.Number(),
  bytesFiltered: Type.Number(),
  uploadLatencyMsAvg: Type.Union([Type.Number(), Type.Null()]),
  uploadLatencyMsMax: Type.Union([Type.Number(), Type.Null()]),
});
export type StatsRow = Static<typeof StatsRow>;

export const FleetOverview = Type.Object({
  devices: Type.Integer(),
  online: Type.Integer(),
  revoked: Type.Integer(),
  byHealth: Type.Record(Type.String(), Type.Integer()),
  alerts: Type.Array(Alert),
});
export type FleetOverview = Static<typeof FleetOverview>;
