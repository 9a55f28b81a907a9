// The device service: turns device messages into registry state, sends desired configs and
// commands, revokes, and answers the API's questions (summaries, alerts, stats). Every payload is
// validated here; a bad one is counted and dropped, never thrown.
import type { Alert, CommandRecord, DeviceDetail, DeviceSummary, FleetOverview, Health, StatsRow } from '../../shared/fleet/api.ts';
import type { FleetConfig } from '../../shared/config/fleet.ts';
import type { DesiredConfig, StatusMessage } from '../../shared/fleet/messages.ts';
import { topics } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { AuditLog, BrokerControl, FleetBus } from '../types.ts';
import { AlertClock, deviceAlerts, healthOf } from './alerts.ts';
import { CommandManager } from './commands.ts';
import { createFleetMetrics, type FleetMetrics, type MessageKind } from './metrics.ts';
import { UnknownDeviceError, type DeviceRegistry } from './registry.ts';
import type { DeviceFilter, DeviceState } from './state.ts';
import { checkCommandResponse, checkReported, checkStatus, checkTelemetry, errorsOf, remoteConfigErrors } from './validate.ts';
import { detailOf, summaryOf } from './views.ts';

export { UnknownDeviceError };

export class ConfigInvalidError extends Error {
  override name = 'ConfigInvalidError';
  readonly errors: string[];
  constructor(errors: string[]) {
    super(`config rejected: ${errors.join('; ')}`);
    this.errors = errors;
  }
}

export class DeviceRevokedError extends Error {
  override name = 'DeviceRevokedError';
}

export interface DeviceServiceOptions {
  registry: DeviceRegistry;
  bus: FleetBus;
  audit: AuditLog;
  config: FleetConfig;
  broker?: BrokerControl;
  log: Logger;
}

/** How often alerts are recomputed for the metrics gauge and the log. */
export const ALERT_INTERVAL_MS = 15_000;

export class DeviceService {
  readonly metrics: FleetMetrics;
  private readonly registry: DeviceRegistry;
  private readonly bus: FleetBus;
  private readonly audit: AuditLog;
  private readonly config: FleetConfig;
  private readonly broker: BrokerControl | undefined;
  private readonly log: Logger;
  private readonly commands: CommandManager;
  private readonly clock = new AlertClock();
  private running = false;
  private subscribed = false;
  private alertTimer: NodeJS.Timeout | undefined;
  private raised = new Set<string>();

  constructor(opts: DeviceServiceOptions) {
    this.registry = opts.registry;
    this.bus = opts.bus;
    this.audit = opts.audit;
    this.config = opts.config;
    this.broker = opts.broker;
    this.log = opts.log;
    this.metrics = createFleetMetrics(() => {
      let online = 0;
      let revoked = 0;
      for (const s of this.registry.all()) {
        if (s.online) online++;
        if (s.identity.revokedAt) revoked++;
      }
      return { devices: this.registry.size, online, revoked, pendingCommands: this.commands.pendingCount };
    });
    this.commands = new CommandManager({
      log: this.registry.commands,
      bus: this.bus,
      metrics: this.metrics,
      logger: this.log,
      onFinal: (r) => this.registry.addEvent(r.deviceId, 'command', `${r.name}: ${r.status}${r.error ? ` (${r.error})` : ''}`),
    });
  }

  async start(): Promise<void> {
    this.running = true;
    if (!this.subscribed) {
      this.subscribed = true;
      this.bus.onDeviceMessage((id, kind, payload) => {
        if (this.running) this.handle(id, kind, payload);
      });
    }
    await this.commands.resume();
    // The embedded broker keeps retained messages in memory only: put every desired config back.
    const desired = [...this.registry.all()].filter((s) => s.desired && !s.identity.revokedAt);
    for (let i = 0; i < desired.length; i += 500) {
      await Promise.all(
        desired.slice(i, i + 500).map((s) =>
          this.bus.publish(topics.desired(s.identity.id), s.desired, { retain: true, qos: 1 }).catch((err: unknown) => this.log.warn({ err, deviceId: s.identity.id }, 'could not republish desired config')),
        ),
      );
    }
    this.alertTimer = setInterval(() => this.sweepAlerts(), ALERT_INTERVAL_MS);
    this.alertTimer.unref();
    this.log.info({ devices: this.registry.size, republished: desired.length }, 'device service started');
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.alertTimer) clearInterval(this.alertTimer);
    this.alertTimer = undefined;
    this.commands.stop();
    await this.registry.flush();
  }

  /** One device message (already routed by topic). Public for tests; never throws. */
  handle(deviceId: string, kind: MessageKind, payload: unknown, nowMs = Date.now()): void {
    try {
      this.metrics.messages.inc({ kind });
      const s = this.registry.get(deviceId);
      if (!s) return this.ignore('unknown-device', deviceId, kind);
      if (s.identity.revokedAt) return this.ignore('revoked', deviceId, kind);
      switch (kind) {
        case 'status':
          if (!checkStatus.Check(payload)) return this.invalid(kind, deviceId, errorsOf(checkStatus, payload));
          this.registry.setStatus(deviceId, payload, nowMs);
          return;
        case 'telemetry':
          if (!checkTelemetry.Check(payload)) return this.invalid(kind, deviceId, errorsOf(checkTelemetry, payload));
          this.registry.recordTelemetry(deviceId, payload, nowMs);
          this.metrics.telemetryLatency.observe(Math.max(0, nowMs - Date.parse(payload.at)) / 1000);
          return;
        case 'config/reported': {
          if (!checkReported.Check(payload)) return this.invalid(kind, deviceId, errorsOf(checkReported, payload));
          const prev = s.reported;
          this.registry.setReported(deviceId, payload, nowMs);
          // A retained report comes again on every reconnect: only a new one is an event.
          if (prev && prev.at === payload.at && prev.version === payload.version) return;
          if (payload.status === 'applied') this.registry.addEvent(deviceId, 'config-applied', `version ${payload.version}`);
          else if (payload.status === 'rejected' || payload.status === 'failed') {
            this.registry.addEvent(deviceId, payload.status === 'rejected' ? 'config-rejected' : 'config-failed', `version ${payload.version}: ${payload.error ?? ''}`);
            this.log.warn({ deviceId, version: payload.version, status: payload.status, error: payload.error }, 'device did not apply its desired config');
          }
          return;
        }
        case 'commands/res':
          if (!checkCommandResponse.Check(payload)) return this.invalid(kind, deviceId, errorsOf(checkCommandResponse, payload));
          this.registry.touch(deviceId, nowMs);
          void this.commands.answer(deviceId, payload).catch((err: unknown) => this.log.error({ err, deviceId }, 'could not store a command answer'));
          return;
        case 'update/status':
          // fleet/rollouts reads these (its own bus handler); here it only proves the box is alive.
          this.registry.touch(deviceId, nowMs);
          return;
        default:
          return this.ignore('unknown-kind', deviceId, String(kind));
      }
    } catch (err) {
      this.log.error({ err, deviceId, kind }, 'device message handling failed');
    }
  }

  // --- Changes ---------------------------------------------------------------------------------

  /** Validates (unless forced), stores the next version and publishes it retained. */
  async setDesired(deviceId: string, config: Record<string, unknown>, by: string, opts: { force?: boolean } = {}): Promise<DesiredConfig> {
    const s = this.mustGet(deviceId);
    const errors = opts.force ? [] : remoteConfigErrors(config);
    if (errors.length > 0) {
      await this.audit.record({ actor: by, action: 'device.config.set', target: deviceId, outcome: 'refused', detail: { errors } });
      throw new ConfigInvalidError(errors);
    }
    if (s.identity.revokedAt) throw new DeviceRevokedError(`device ${deviceId} is revoked`);
    const desired = await this.registry.setDesired(deviceId, config, by);
    await this.audit.record({ actor: by, action: 'device.config.set', target: deviceId, outcome: 'ok', detail: { version: desired.version, keys: Object.keys(config), force: Boolean(opts.force) } });
    await this.bus.publish(topics.desired(deviceId), desired, { retain: true, qos: 1 });
    return desired;
  }

  async sendCommand(deviceId: string, name: string, args: Record<string, unknown>, by: string, timeoutMs = this.config.commandTimeoutMs): Promise<CommandRecord> {
    const s = this.mustGet(deviceId);
    if (s.identity.revokedAt) throw new DeviceRevokedError(`device ${deviceId} is revoked`);
    const rec = await this.commands.send(deviceId, name, args, by, timeoutMs);
    this.registry.addEvent(deviceId, 'command', `${name} sent by ${by}`);
    await this.audit.record({ actor: by, action: 'device.command', target: deviceId, outcome: 'ok', detail: { command: name, id: rec.id, timeoutMs } });
    return rec;
  }

  waitFor(cmdId: string, ms: number): Promise<CommandRecord | undefined> {
    return this.commands.waitFor(cmdId, ms);
  }

  getCommand(cmdId: string): Promise<CommandRecord | undefined> {
    return this.commands.get(cmdId);
  }

  listCommands(deviceId: string, limit?: number): Promise<CommandRecord[]> {
    this.mustGet(deviceId);
    return this.registry.commands.list(deviceId, limit);
  }

  /** Revokes the device's identity, cuts its connection and tells the fleet it is gone. */
  async revoke(deviceId: string, by: string): Promise<boolean> {
    this.mustGet(deviceId);
    const changed = await this.registry.revoke(deviceId, by);
    this.broker?.disconnect(deviceId);
    const offline: StatusMessage = { online: false, at: new Date().toISOString(), reason: 'revoked' };
    this.registry.setStatus(deviceId, offline);
    try {
      // The box cannot say it any more: the fleet publishes its final status.
      await this.bus.publish(topics.status(deviceId), offline, { retain: true, qos: 1 });
    } catch (err) {
      this.log.warn({ err, deviceId }, 'could not publish the revoked status');
    }
    await this.audit.record({ actor: by, action: 'device.revoke', target: deviceId, outcome: 'ok', detail: { alreadyRevoked: !changed } });
    return changed;
  }

  // --- Reads -----------------------------------------------------------------------------------

  alertsOf(deviceId: string, nowMs = Date.now()): Alert[] {
    const s = this.registry.get(deviceId);
    return s ? deviceAlerts(s, this.config, nowMs, this.clock) : [];
  }

  alerts(nowMs = Date.now()): Alert[] {
    const out: Alert[] = [];
    for (const s of this.registry.all()) out.push(...deviceAlerts(s, this.config, nowMs, this.clock));
    return out.sort((a, b) => (a.severity === b.severity ? (a.since < b.since ? -1 : 1) : a.severity === 'critical' ? -1 : 1));
  }

  summaries(filter: DeviceFilter & { health?: Health } = {}, nowMs = Date.now()): DeviceSummary[] {
    const out: DeviceSummary[] = [];
    for (const s of this.registry.list(filter)) {
      const sum = summaryOf(s, deviceAlerts(s, this.config, nowMs, this.clock));
      if (!filter.health || sum.health === filter.health) out.push(sum);
    }
    return out;
  }

  summary(deviceId: string, nowMs = Date.now()): DeviceSummary | undefined {
    const s = this.registry.get(deviceId);
    return s ? summaryOf(s, deviceAlerts(s, this.config, nowMs, this.clock)) : undefined;
  }

  detail(deviceId: string, nowMs = Date.now()): DeviceDetail | undefined {
    const s = this.registry.get(deviceId);
    return s ? detailOf(s, deviceAlerts(s, this.config, nowMs, this.clock), this.registry.history(deviceId)) : undefined;
  }

  overview(nowMs = Date.now()): FleetOverview {
    const byHealth: Record<string, number> = { ok: 0, warning: 0, critical: 0, unknown: 0 };
    const alerts: Alert[] = [];
    let online = 0;
    let revoked = 0;
    for (const s of this.registry.all()) {
      const a = deviceAlerts(s, this.config, nowMs, this.clock);
      alerts.push(...a);
      const h = healthOf(s, a);
      byHealth[h] = (byHealth[h] ?? 0) + 1;
      if (s.online) online++;
      if (s.identity.revokedAt) revoked++;
    }
    return { devices: this.registry.size, online, revoked, byHealth, alerts: alerts.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'critical' ? -1 : 1)) };
  }

  stats(days: number, nowMs = Date.now()): StatsRow[] {
    return this.registry.stats(days, nowMs);
  }

  // --- Internals -------------------------------------------------------------------------------

  private sweepAlerts(): void {
    const alerts = this.alerts();
    this.metrics.alerts.reset();
    const now = new Set<string>();
    for (const a of alerts) {
      this.metrics.alerts.inc({ kind: a.kind, severity: a.severity });
      const key = `${a.deviceId}\0${a.kind}`;
      now.add(key);
      if (!this.raised.has(key)) this.log.info({ deviceId: a.deviceId, kind: a.kind, severity: a.severity, message: a.message }, 'alert raised');
    }
    for (const key of this.raised) if (!now.has(key)) this.log.info({ deviceId: key.split('\0')[0], kind: key.split('\0')[1] }, 'alert cleared');
    this.raised = now;
  }

  private mustGet(deviceId: string): Readonly<DeviceState> {
    const s = this.registry.get(deviceId);
    if (!s) throw new UnknownDeviceError(deviceId);
    return s;
  }

  private ignore(reason: string, deviceId: string, kind: string): void {
    this.metrics.ignored.inc({ reason });
    this.log.debug({ deviceId, kind, reason }, 'device message ignored');
  }

  private invalid(kind: MessageKind, deviceId: string, errors: string[]): void {
    this.metrics.invalid.inc({ kind });
    this.registry.touch(deviceId);
    this.log.debug({ deviceId, kind, errors }, 'invalid device message dropped');
  }
}
