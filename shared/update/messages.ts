// What the fleet and a box say about updates over MQTT (see shared/fleet/topics.ts):
//   mbox/<id>/update/offer   fleet → box  retained  UpdateOffer (an empty retained payload withdraws it)
//   mbox/<id>/update/status  box → fleet  retained  UpdateStatus
import { Type, type Static } from '@sinclair/typebox';

export const UpdateOffer = Type.Object({
  rolloutId: Type.String({ minLength: 1, maxLength: 64 }),
  version: Type.String(),
  /** HTTPS URL on the fleet; the box downloads with its device certificate and Range requests. */
  url: Type.String(),
  /** SHA-256 (hex) and size of the bundle file, checked before the bundle is even opened. */
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  size: Type.Integer({ minimum: 1 }),
  /**
   * The box refuses a version that already failed on it unless the fleet re-approves it
   * explicitly for this box (a person decided to try again).
   */
  retryApproved: Type.Boolean({ default: false }),
  offeredAt: Type.String(),
});
export type UpdateOffer = Static<typeof UpdateOffer>;

export const UPDATE_PHASES = [
  'idle',
  'downloading',
  'verifying',
  'installing',
  'restarting',
  'health-check',
  'committed',
  'rolled-back',
  'refused', // never installed: bad signature/hash, failed before on this box, not updatable
  'failed', // could not download/install; the running slot is untouched
] as const;
export type UpdatePhase = (typeof UPDATE_PHASES)[number];

export const UpdateStatus = Type.Object({
  rolloutId: Type.Union([Type.String(), Type.Null()]),
  /** The version this status is about (the offered one). */
  version: Type.Union([Type.String(), Type.Null()]),
  phase: Type.Union(UPDATE_PHASES.map((p) => Type.Literal(p))),
  /** Why: the failed health check, the refused signature, the crash loop … */
  reason: Type.Optional(Type.String()),
  progress: Type.Optional(Type.Object({ bytes: Type.Integer({ minimum: 0 }), total: Type.Integer({ minimum: 0 }) })),
  /** The version running now. */
  runningVersion: Type.String(),
  /** Versions that failed on this box (it refuses them unless re-approved). */
  failedVersions: Type.Array(Type.String()),
  at: Type.String(),
});
export type UpdateStatus = Static<typeof UpdateStatus>;
