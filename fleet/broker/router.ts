// Device messages on their way into the fleet: topic → (device, kind), JSON-parsed, handed to every
// registered handler. Shared by the fleet's MQTT client (./bus.ts, any broker) and the in-process
// bus of the embedded broker (./local-bus.ts). It never throws on what a box sends: unparsable
// payloads are counted and dropped.
import { parseDeviceTopic } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';

export type FleetBoundKind = 'status' | 'telemetry' | 'config/reported' | 'commands/res' | 'update/status';
export type DeviceMessageHandler = (deviceId: string, kind: FleetBoundKind, payload: unknown) => void;

export interface FleetBusStats {
  /** Device messages handed to the handlers. */
  delivered: number;
  /** Payloads that were not JSON. */
  invalid: number;
  /** Topics outside the device tree or not fleet-bound; empty payloads (a cleared retained topic). */
  ignored: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Connections established after the first one. */
  reconnects: number;
}

const FLEET_BOUND: ReadonlySet<string> = new Set<FleetBoundKind>(['status', 'telemetry', 'config/reported', 'commands/res', 'update/status']);
// Messages that arrive before the first handler is registered (a persistent session's queue is
// flushed right after CONNACK; boxes connect as soon as the broker listens) wait here.
const EARLY_BUFFER_MAX = 50_000;
/**
 * The fleet's parts register their handlers one after another while it starts, and the broker
 * hands over queued and retained messages at once: for this long after the first handler, every
 * message is also kept so a handler registered later still sees what arrived before it.
 */
const STARTUP_REPLAY_MS = 15_000;

export class DeviceMessageRouter {
  readonly stats: FleetBusStats = { delivered: 0, invalid: 0, ignored: 0, handlerErrors: 0, reconnects: 0 };
  private readonly log: Logger;
  private readonly handlers: DeviceMessageHandler[] = [];
  private early: Array<[string, FleetBoundKind, unknown]> | undefined = [];

  constructor(log: Logger) {
    this.log = log;
  }

  /** One MQTT message as it came off the broker. */
  receive(topic: string, payload: Buffer): void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || !FLEET_BOUND.has(parsed.kind) || payload.length === 0) {
      this.stats.ignored++;
      this.log.debug({ topic, bytes: payload.length }, 'ignored MQTT message');
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch {
      this.stats.invalid++;
      this.log.debug({ topic, bytes: payload.length }, 'dropped non-JSON device message');
      return;
    }
    const kind = parsed.kind as FleetBoundKind;
    if (this.early) {
      if (this.early.length < EARLY_BUFFER_MAX) this.early.push([parsed.deviceId, kind, value]);
      else if (this.handlers.length === 0) this.stats.ignored++;
    }
    if (this.handlers.length === 0) return;
    for (const handler of this.handlers) this.dispatchTo(handler, parsed.deviceId, kind, value);
    this.stats.delivered++;
  }

  addHandler(handler: DeviceMessageHandler): void {
    if (this.handlers.length === 0) setTimeout(() => (this.early = undefined), STARTUP_REPLAY_MS).unref();
    this.handlers.push(handler);
    for (const [id, kind, value] of this.early ?? []) this.dispatchTo(handler, id, kind, value);
  }

  private dispatchTo(handler: DeviceMessageHandler, deviceId: string, kind: FleetBoundKind, payload: unknown): void {
    try {
      const result: unknown = handler(deviceId, kind, payload);
      if (result instanceof Promise) {
        result.catch((err: unknown) => {
          this.stats.handlerErrors++;
          this.log.warn({ err, deviceId, kind }, 'device message handler failed');
        });
      }
    } catch (err) {
      this.stats.handlerErrors++;
      this.log.warn({ err, deviceId, kind }, 'device message handler failed');
    }
  }
}
