// The fleet's bus when the broker is embedded: it subscribes and publishes on aedes in-process.
// Going through a TLS client to its own broker cost every box message a second encryption, MQTT
// encoding and parsing — most of the fleet's CPU at 20,000 boxes. Same contract as ./bus.ts; the
// broker's ACL hooks still guard every box, and publishes keep the fleet's own topic check.
import type { Aedes, AedesPublishPacket } from 'aedes';
import { mayPublish } from '../../shared/fleet/acl.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { ConnectedFleetBus } from './bus.ts';
import { DeviceMessageRouter } from './router.ts';

/** Subscribes at once, so nothing a box sends after the broker starts listening is missed. */
export async function attachLocalBus(aedes: Aedes, log: Logger): Promise<ConnectedFleetBus> {
  const router = new DeviceMessageRouter(log);
  let closed = false;
  const deliver = (packet: AedesPublishPacket, done: () => void): void => {
    router.receive(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
    done();
  };
  await Promise.all(topics.fleetSubscriptions.map((t) => new Promise<void>((resolve) => aedes.subscribe(t, deliver, resolve))));
  return {
    async publish(topic, payload, opts) {
      if (!mayPublish(FLEET_SERVICE_IDENTITY, topic)) throw new Error(`fleet bus: refusing to publish outside the mbox/ tree: ${JSON.stringify(topic)}`);
      if (closed) throw new Error('fleet bus: closed');
      await new Promise<void>((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: encode(payload), qos: opts?.qos ?? 1, retain: opts?.retain ?? false, dup: false },
          (err) => (err ? reject(new Error(`fleet bus: publish to ${topic} failed: ${err.message}`)) : resolve()),
        );
      });
    },
    onDeviceMessage(handler) {
      router.addHandler(handler);
    },
    get connected() {
      return !closed;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(topics.fleetSubscriptions.map((t) => new Promise<void>((resolve) => aedes.unsubscribe(t, deliver, resolve))));
    },
    stats: () => ({ ...router.stats }),
  };
}

/** As over mqtt.js (./bus.ts): undefined is the empty message, which clears a retained topic (a withdrawn offer). */
function encode(payload: unknown): Buffer {
  return payload === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload));
}
