// aedes hooks enforcing the fleet's identity and ACL rules. Every hook is O(1): a WeakMap lookup
// for the client's identity plus the string checks in shared/fleet/acl.ts, and nothing is logged
// per accepted message (only refusals, rate-limited by RefusalLog).
import type { AedesOptions, AedesPublishPacket, AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from 'aedes';
import { mayPublish, mayReceive, maySubscribe, mayWill } from '../../shared/fleet/acl.ts';
import type { Logger } from '../../shared/log.ts';
import type { DeviceDirectory } from '../types.ts';
import { checkConnect, peerCertificateOf } from './auth.ts';
import type { RefusalLog } from './refusals.ts';

/**
 * Where a refused publish goes. MQTT 3.1.1 has no way to tell a client "not authorized" for a
 * PUBLISH: aedes would drop the connection, and the client would resend an unacknowledged QoS 1
 * message on every reconnect, forever. Like mosquitto, we acknowledge and discard instead — by
 * re-addressing it to a `$` topic no client may subscribe to, with retain cleared.
 */
export const DENIED_SINK = '$mbox-denied/';

export type BrokerHooks = Required<Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>> & {
  /** The verified identity of a connected client (undefined before/without authentication). */
  identityOf(client: Client): string | undefined;
};

const clip = (s: string | undefined): string | undefined => (s === undefined ? undefined : s.length > 64 ? `${s.slice(0, 64)}…` : s);

function remoteOf(client: Client): string | undefined {
  const conn = client.conn as { remoteAddress?: string };
  return conn.remoteAddress;
}

export function createBrokerHooks(opts: {
  directory: Pick<DeviceDirectory, 'isRevoked' | 'isCurrentSerial'>;
  refusals: RefusalLog;
  log: Logger;
}): BrokerHooks {
  const { directory, refusals, log } = opts;
  const identities = new WeakMap<Client, string>();
  // preConnect sees the CONNECT packet (and so the will); authenticate, which answers with a
  // CONNACK, does not. The will topic is carried across in here.
  const pendingWill = new WeakMap<Client, string | undefined>();

  const preConnect = (client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void): void => {
    pendingWill.set(client, packet.will?.topic);
    callback(null, true);
  };

  const authenticate = (
    client: Client,
    _username: string | undefined,
    _password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void => {
    const peer = peerCertificateOf(client.conn);
    const willTopic = pendingWill.get(client);
    pendingWill.delete(client);
    const decision = checkConnect({ peer, clientId: client.id, willTopic, directory });
    if (!decision.ok) {
      refusals.note(
        `connect:${decision.reason}`,
        { reason: decision.reason, cn: clip(decision.cn), clientId: clip(client.id), willTopic: clip(willTopic), serial: peer.serial, remote: remoteOf(client) },
        'MQTT connection refused',
      );
      const err = Object.assign(new Error(`not authorized: ${decision.reason}`), { returnCode: 5 as const });
      done(err, false);
      return;
    }
    identities.set(client, decision.identity);
    done(null, true);
  };

  const authorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void => {
    // client is null only for a will left behind by another (dead) broker instance; aedes stores
    // the client id with it, and the client id was checked to equal the certificate CN.
    const identity = client ? identities.get(client) : (packet as PublishPacket & { clientId?: string }).clientId;
    // After close() nothing more is parsed from the socket, so a publish then can only be the will.
    const isWill = client === null || client.closed;
    const allowed = identity !== undefined && (isWill ? mayWill(identity, packet.topic) : mayPublish(identity, packet.topic));
    if (allowed) {
      callback(null);
      return;
    }
    refusals.note('publish', { identity, topic: clip(packet.topic), retain: packet.retain, qos: packet.qos }, 'MQTT publish refused (discarded)');
    packet.topic = `${DENIED_SINK}${identity ?? 'unknown'}`;
    packet.retain = false;
    callback(null);
  };

  const authorizeSubscribe = (client: Client, sub: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void => {
    const identity = identities.get(client);
    if (identity !== undefined && maySubscribe(identity, sub.topic)) {
      callback(null, sub);
      return;
    }
    refusals.note('subscribe', { identity, filter: clip(sub.topic) }, 'MQTT subscription refused');
    // A null subscription makes aedes answer SUBACK 0x80 for this filter and keep the connection.
    callback(null, null);
  };

  // Checked on every delivery, including retained messages and a persistent session's queue: aedes
  // stores a SUBSCRIBE's filters in the session even when one of them was refused.
  const authorizeForward = (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null => {
    const identity = identities.get(client);
    if (identity !== undefined && mayReceive(identity, packet.topic)) return packet;
    log.debug({ identity, topic: clip(packet.topic) }, 'delivery withheld');
    return null;
  };

  return { preConnect, authenticate, authorizePublish, authorizeSubscribe, authorizeForward, identityOf: (client) => identities.get(client) };
}
