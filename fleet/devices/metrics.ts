// Prometheus metrics of the device service, in a registry of its own that the API serves at
// GET /metrics. The scale benchmark reads the telemetry latency percentiles and the process RSS
// from here.
import { collectDefaultMetrics, Counter, Gauge, Registry, Summary } from 'prom-client';

export type MessageKind = 'status' | 'telemetry' | 'config/reported' | 'commands/res' | 'update/status';

export interface FleetMetrics {
  registry: Registry;
  /** now − telemetry.at, seconds. */
  telemetryLatency: Summary;
  messages: Counter<'kind'>;
  invalid: Counter<'kind'>;
  ignored: Counter<'reason'>;
  commands: Counter<'status'>;
  alerts: Gauge<'kind' | 'severity'>;
}

export function createFleetMetrics(live: () => { devices: number; online: number; revoked: number; pendingCommands: number }): FleetMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mbox_fleet_' });
  const registers = [registry];
  new Gauge({
    name: 'mbox_fleet_devices',
    help: 'Enrolled devices by state',
    labelNames: ['state'],
    registers,
    collect() {
      const l = live();
      this.set({ state: 'enrolled' }, l.devices);
      this.set({ state: 'online' }, l.online);
      this.set({ state: 'revoked' }, l.revoked);
    },
  });
  new Gauge({
    name: 'mbox_fleet_commands_pending',
    help: 'Commands sent and not yet answered',
    registers,
    collect() {
      this.set(live().pendingCommands);
    },
  });
  return {
    registry,
    telemetryLatency: new Summary({
      name: 'mbox_fleet_telemetry_latency_seconds',
      help: 'Telemetry timestamp on the box to its state update in the fleet',
      percentiles: [0.5, 0.9, 0.99],
      maxAgeSeconds: 60,
      ageBuckets: 6,
      registers,
    }),
    messages: new Counter({ name: 'mbox_fleet_messages_total', help: 'Device messages handled, by topic kind', labelNames: ['kind'], registers }),
    invalid: new Counter({ name: 'mbox_fleet_messages_invalid_total', help: 'Device messages that failed schema validation', labelNames: ['kind'], registers }),
    ignored: new Counter({ name: 'mbox_fleet_messages_ignored_total', help: 'Device messages ignored (unknown or revoked device, stray answer)', labelNames: ['reason'], registers }),
    commands: new Counter({ name: 'mbox_fleet_commands_total', help: 'Commands by final status', labelNames: ['status'], registers }),
    alerts: new Gauge({ name: 'mbox_fleet_alerts', help: 'Active alerts by kind and severity (updated by the alert timer)', labelNames: ['kind', 'severity'], registers }),
  };
}
