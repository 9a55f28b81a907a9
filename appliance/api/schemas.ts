// JSON schemas of the admin API's responses (also its documentation).
import { Type } from '@sinclair/typebox';
import { INSTANCE_STATES, type InstanceState } from '../../shared/types/store.ts';

export const ErrorBody = Type.Object({ error: Type.String(), message: Type.String(), statusCode: Type.Integer() });

const State = Type.Unsafe<InstanceState>(Type.String({ enum: [...INSTANCE_STATES] }));
const StateCounts = Type.Record(Type.String(), Type.Integer());

export const HealthBody = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('down')]),
  dicom: Type.Boolean(),
  watchFolders: Type.Integer(),
  disk: Type.Object({
    accepting: Type.Boolean(),
    freeBytes: Type.Number(),
    usedPercent: Type.Number(),
    reason: Type.Optional(Type.String()),
  }),
});

const Source = Type.Union([
  Type.Object({ kind: Type.Literal('dimse'), callingAe: Type.String(), calledAe: Type.String(), remoteAddress: Type.String() }),
  Type.Object({ kind: Type.Union([Type.Literal('watch'), Type.Literal('recovery')]), path: Type.String() }),
]);

const Header = Type.Object(
  {
    transferSyntaxUid: Type.String(),
    sopClassUid: Type.String(),
    sopInstanceUid: Type.String(),
    studyInstanceUid: Type.String(),
    seriesInstanceUid: Type.String(),
  },
  { additionalProperties: true },
);

const Delivery = Type.Object({
  destination: Type.String(),
  state: Type.String(),
  priority: Type.String(),
  transferSyntaxUid: Type.String(),
  size: Type.Integer(),
  attempts: Type.Integer(),
  nextAttemptAt: Type.Optional(Type.String()),
  lastError: Type.Optional(Type.String()),
  committedAt: Type.Optional(Type.String()),
});

export const InstanceBody = Type.Object({
  id: Type.String(),
  header: Header,
  contentHash: Type.String(),
  size: Type.Integer(),
  path: Type.String(),
  state: State,
  reason: Type.Optional(Type.String()),
  conflictOf: Type.Optional(Type.String()),
  conflicts: Type.Optional(Type.Array(Type.String())),
  receivedAt: Type.String(),
  updatedAt: Type.String(),
  purgedAt: Type.Optional(Type.String()),
  deliveries: Type.Optional(Type.Array(Delivery)),
  history: Type.Array(
    Type.Object({
      at: Type.String(),
      state: State,
      event: Type.String(),
      source: Type.Optional(Source),
      detail: Type.Optional(Type.String()),
    }),
  ),
});

export const StudyBody = Type.Object({
  studyInstanceUid: Type.String(),
  patientId: Type.Optional(Type.String()),
  patientName: Type.Optional(Type.String()),
  studyDate: Type.Optional(Type.String()),
  studyDescription: Type.Optional(Type.String()),
  accessionNumber: Type.Optional(Type.String()),
  modalities: Type.Array(Type.String()),
  series: Type.Array(
    Type.Object({
      seriesInstanceUid: Type.String(),
      modality: Type.Optional(Type.String()),
      seriesNumber: Type.Optional(Type.Integer()),
      seriesDescription: Type.Optional(Type.String()),
      instances: Type.Integer(),
    }),
  ),
  instances: Type.Integer(),
  bytes: Type.Integer(),
  conflicts: Type.Integer(),
  firstReceivedAt: Type.String(),
  lastReceivedAt: Type.String(),
  completedAt: Type.Optional(Type.String()),
  complete: Type.Boolean(),
  states: StateCounts,
  instanceIds: Type.Optional(Type.Array(Type.String())),
});

export const QueueBody = Type.Object({
  byState: StateCounts,
  pendingBytes: Type.Integer(),
  oldestPendingAt: Type.Optional(Type.String()),
  oldestAgeSeconds: Type.Union([Type.Number(), Type.Null()]),
  destinations: Type.Array(
    Type.Object({
      destination: Type.String(),
      pending: Type.Integer(),
      pendingBytes: Type.Integer(),
      committed: Type.Integer(),
      committedBytes: Type.Integer(),
      deadLetter: Type.Integer(),
      oldestPendingAt: Type.Optional(Type.String()),
      oldestAgeSeconds: Type.Union([Type.Number(), Type.Null()]),
    }),
  ),
});

export const QuarantineBody = Type.Object({
  id: Type.String(),
  reason: Type.String(),
  source: Source,
  at: Type.String(),
  size: Type.Integer(),
  sopInstanceUid: Type.Optional(Type.String()),
});
