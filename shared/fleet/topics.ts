// The MQTT topic tree between boxes and the fleet, defined once. Every topic a box may touch
// starts with `mbox/<its-id>/`, which is exactly what the broker ACL allows (identity = the
// certificate's CN, never a topic or payload field).
//
//   mbox/<id>/status            box → fleet  retained  Status (online; last-will publishes offline)
//   mbox/<id>/telemetry         box → fleet            Telemetry, every telemetryIntervalMs
//   mbox/<id>/config/desired    fleet → box  retained  DesiredConfig
//   mbox/<id>/config/reported   box → fleet  retained  ReportedConfig
//   mbox/<id>/commands/req      fleet → box  QoS 1     CommandRequest (queued in the box's session while offline)
//   mbox/<id>/commands/res      box → fleet  QoS 1     CommandResponse
//   mbox/<id>/update/offer      fleet → box  retained  UpdateOffer (shared/update/messages.ts)
//   mbox/<id>/update/status     box → fleet  retained  UpdateStatus

export const TOPIC_ROOT = 'mbox';

/** Device ids are assigned by the fleet at enrolment; topic-safe and short enough for a CN. */
export const DEVICE_ID_PATTERN = '^mb-[a-z0-9]{4,32}$';
export const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN);

/** The fleet's own MQTT identity (certificate CN). Not a device id by construction. */
export const FLEET_SERVICE_IDENTITY = 'fleet-service';

export type DeviceTopicKind = 'status' | 'telemetry' | 'config/desired' | 'config/reported' | 'commands/req' | 'commands/res' | 'update/offer' | 'update/status';
export const DEVICE_TOPIC_KINDS: readonly DeviceTopicKind[] = [
  'status',
  'telemetry',
  'config/desired',
  'config/reported',
  'commands/req',
  'commands/res',
  'update/offer',
  'update/status',
];

export const topics = {
  status: (id: string) => `${TOPIC_ROOT}/${id}/status`,
  telemetry: (id: string) => `${TOPIC_ROOT}/${id}/telemetry`,
  desired: (id: string) => `${TOPIC_ROOT}/${id}/config/desired`,
  reported: (id: string) => `${TOPIC_ROOT}/${id}/config/reported`,
  commandRequest: (id: string) => `${TOPIC_ROOT}/${id}/commands/req`,
  commandResponse: (id: string) => `${TOPIC_ROOT}/${id}/commands/res`,
  updateOffer: (id: string) => `${TOPIC_ROOT}/${id}/update/offer`,
  updateStatus: (id: string) => `${TOPIC_ROOT}/${id}/update/status`,
  /** Everything one device may touch (ACL prefix). */
  devicePrefix: (id: string) => `${TOPIC_ROOT}/${id}/`,
  /** What the fleet service subscribes to. */
  fleetSubscriptions: [
    `${TOPIC_ROOT}/+/status`,
    `${TOPIC_ROOT}/+/telemetry`,
    `${TOPIC_ROOT}/+/config/reported`,
    `${TOPIC_ROOT}/+/commands/res`,
    `${TOPIC_ROOT}/+/update/status`,
  ],
} as const;

/** Splits `mbox/<id>/<kind>`; undefined for anything outside the tree. */
export function parseDeviceTopic(topic: string): { deviceId: string; kind: DeviceTopicKind } | undefined {
  if (!topic.startsWith(`${TOPIC_ROOT}/`)) return undefined;
  const rest = topic.slice(TOPIC_ROOT.length + 1);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const deviceId = rest.slice(0, slash);
  const kind = rest.slice(slash + 1) as DeviceTopicKind;
  if (!DEVICE_ID_RE.test(deviceId) || !DEVICE_TOPIC_KINDS.includes(kind)) return undefined;
  return { deviceId, kind };
}

/**
 * True when `identity` may publish to or subscribe with `topicOrFilter`. Devices: only inside
 * their own subtree, and no wildcard may reach outside it (`mbox/+/…` or `#` are refused). The
 * fleet service: anything under `mbox/`.
 */
export function mayAccess(identity: string, topicOrFilter: string): boolean {
  if (identity === FLEET_SERVICE_IDENTITY) return topicOrFilter === `${TOPIC_ROOT}/#` || topicOrFilter.startsWith(`${TOPIC_ROOT}/`);
  if (!DEVICE_ID_RE.test(identity)) return false;
  const prefix = topics.devicePrefix(identity);
  return topicOrFilter.startsWith(prefix) && topicOrFilter.length > prefix.length;
}
