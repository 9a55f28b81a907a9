// The broker's access rules, per topic kind, built on ./topics.ts. The embedded aedes broker calls
// these on every publish, subscribe, will and forward, and fleet/broker/mosquitto.ts writes the
// same rules as mosquitto ACL lines, so both broker modes enforce one policy.
//
// Identity is the verified certificate's CN (a device id or FLEET_SERVICE_IDENTITY), never a
// topic, client id or payload. The rules:
//   device  publish    exactly its own status, telemetry, config/reported, commands/res
//   device  subscribe  exactly its own config/desired and commands/req — no wildcard at all.
//                      `mbox/<id>/#` is refused on purpose: it would also cover the box's own
//                      outbound topics, mosquitto's ACL cannot grant a filter wider than the
//                      topics it lists, and a box has no reason to read what it publishes.
//   device  will       only its own status topic (the last-will is how the fleet learns it vanished)
//   fleet   all        any topic or filter under `mbox/` (wildcards included, `#` and `$SYS` not)
// Anything else — other ids, upper case, trailing slashes, bare `mbox/<id>`, NUL, over-long
// topics, unknown identities — is refused. Each check is O(1) in the size of the fleet.
import { DEVICE_ID_RE, FLEET_SERVICE_IDENTITY, TOPIC_ROOT, topics, type DeviceTopicKind } from './topics.ts';

/** Far above any topic in our tree (`mbox/<id ≤ 35>/config/reported`); a longer one is not ours. */
export const MAX_TOPIC_LENGTH = 256;

export const DEVICE_PUBLISH_KINDS = ['status', 'telemetry', 'config/reported', 'commands/res', 'update/status'] as const satisfies readonly DeviceTopicKind[];
export const DEVICE_SUBSCRIBE_KINDS = ['config/desired', 'commands/req', 'update/offer'] as const satisfies readonly DeviceTopicKind[];

const PUBLISH_KINDS: ReadonlySet<string> = new Set(DEVICE_PUBLISH_KINDS);
const SUBSCRIBE_KINDS: ReadonlySet<string> = new Set(DEVICE_SUBSCRIBE_KINDS);
const ROOT_SLASH = `${TOPIC_ROOT}/`;

export type IdentityKind = 'device' | 'fleet';

/** What a certificate CN stands for; undefined for anything the broker must not admit. */
export function identityKind(cn: string): IdentityKind | undefined {
  if (cn === FLEET_SERVICE_IDENTITY) return 'fleet';
  if (DEVICE_ID_RE.test(cn)) return 'device';
  return undefined;
}

function wellFormed(topic: string): boolean {
  return typeof topic === 'string' && topic.length > 0 && topic.length <= MAX_TOPIC_LENGTH && !topic.includes('\u0000');
}

function hasWildcard(topic: string): boolean {
  return topic.includes('+') || topic.includes('#');
}

/** The kind of `mbox/<deviceId>/<kind>` when the topic is exactly that, else undefined. */
function ownKind(deviceId: string, topic: string): string | undefined {
  const idStart = ROOT_SLASH.length;
  const kindStart = idStart + deviceId.length + 1;
  if (topic.length <= kindStart || !topic.startsWith(ROOT_SLASH) || !topic.startsWith(deviceId, idStart) || topic.charCodeAt(kindStart - 1) !== 0x2f) {
    return undefined;
  }
  return topic.slice(kindStart);
}

/** Fleet service: strictly below `mbox/` (not the bare root, not `#`, not `$SYS`). */
function inFleetTree(topicOrFilter: string): boolean {
  return topicOrFilter.length > ROOT_SLASH.length && topicOrFilter.startsWith(ROOT_SLASH);
}

/** May `identity` publish a message to `topic`? Publish topics never contain wildcards. */
export function mayPublish(identity: string, topic: string): boolean {
  if (!wellFormed(topic) || hasWildcard(topic)) return false;
  switch (identityKind(identity)) {
    case 'fleet':
      return inFleetTree(topic);
    case 'device': {
      const kind = ownKind(identity, topic);
      return kind !== undefined && PUBLISH_KINDS.has(kind);
    }
    default:
      return false;
  }
}

/** May `identity` subscribe with `filter`? Devices get exact topics only; the fleet any filter under mbox/. */
export function maySubscribe(identity: string, filter: string): boolean {
  if (!wellFormed(filter)) return false;
  switch (identityKind(identity)) {
    case 'fleet':
      return inFleetTree(filter);
    case 'device': {
      if (hasWildcard(filter)) return false;
      const kind = ownKind(identity, filter);
      return kind !== undefined && SUBSCRIBE_KINDS.has(kind);
    }
    default:
      return false;
  }
}

/**
 * May a message on `topic` be delivered to `identity`? The broker's last line of defence: it is
 * checked again on every delivery (live, retained and queued for an offline session).
 */
export function mayReceive(identity: string, topic: string): boolean {
  return !hasWildcard(topic) && maySubscribe(identity, topic);
}

/** May `identity` set a last-will on `topic`? A box only on its own status topic. */
export function mayWill(identity: string, topic: string): boolean {
  switch (identityKind(identity)) {
    case 'fleet':
      return mayPublish(identity, topic);
    case 'device':
      return topic === topics.status(identity);
    default:
      return false;
  }
}
