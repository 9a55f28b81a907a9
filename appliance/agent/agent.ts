// The box's agent: enrols in the background (DICOM intake never waits for the fleet), keeps the MQTT
// link, sends telemetry, reconciles the desired config and runs commands.
import type { ApplianceConfig } from '../../shared/config/appliance.ts';
import type { ReportedConfig, Telemetry } from '../../shared/fleet/messages.ts';
import { logRingOf, type Logger } from '../../shared/log.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import type { ApplianceRuntime } from '../runtime/runtime.ts';
import type { DiskGuard } from '../store/disk-guard.ts';
import { discardHeld, releaseHeld, requeueStudy } from '../store/operator.ts';
import type { Store } from '../store/store.ts';
import { handleCommand, type CommandTarget } from './commands.ts';
import { attachDaily, DailyBook } from './daily.ts';
import { DesiredReconciler, type BootConfig } from './desired.ts';
import { ensureIdentity, scheduleRenewal } from './enrol.ts';
import { FIRMWARE_VERSION } from './firmware.ts';
import type { AgentIdentity, EnrolmentStatus } from './identity.ts';
import { FleetLink, type LinkState } from './link.ts';
import { dailyPath, readJson, writeJsonDurable } from './state-files.ts';
import { createSystemProbe, type SystemInfoSource } from './system.ts';
import { collectTelemetry } from './telemetry.ts';
import type { Updater } from './update/updater.ts';

/** Knobs for tests (and a box on a flaky line); the defaults suit production. */
export interface AgentOptions {
  linkBackoff?: { minMs: number; maxMs: number };
  refusedRetryMs?: number;
  enrolRetry?: { minMs: number; maxMs: number };
  keepaliveS?: number;
  systemSource?: SystemInfoSource;
}

export interface AgentDeps {
  /** The box's local config (what a desired config is merged over). */
  config: ApplianceConfig;
  dataDir: string;
  runtime: ApplianceRuntime;
  store: Store;
  disk: DiskGuard;
  metrics: ApplianceMetrics;
  /** The box's root logger (its ring buffer answers fetch-logs). */
  log: Logger;
  boot: BootConfig;
  startedAt: number;
  options?: AgentOptions;
  /** The box's updater: gets the fleet's update offers and link events, reports through the link. */
  updates?: Updater;
}

export interface AgentStatus {
  enrolment: EnrolmentStatus;
  deviceId: string | null;
  connected: boolean;
  link: LinkState | 'not-started';
  linkError: string | null;
  connectedAt: string | null;
  lastTelemetryAt: string | null;
  telemetrySeq: number;
  /** The highest desired config version handled. */
  desiredVersion: number;
  reported: Pick<ReportedConfig, 'version' | 'status' | 'error'>;
}

export interface RunningAgent {
  status(): AgentStatus;
  /** Collects and sends one telemetry message now (tests, an operator's "report now"). */
  telemetryNow(): Promise<Telemetry>;
  stop(): Promise<void>;
}

export async function startAgent(deps: AgentDeps): Promise<RunningAgent> {
  const { config, dataDir, runtime, store, options = {} } = deps;
  const log = deps.log.child({ component: 'agent' });
  const daily = new DailyBook();
  try {
    daily.load(await readJson(dailyPath(dataDir)));
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'daily figures could not be read; starting from zero');
  }
  const detachDaily = attachDaily(store, daily, log);
  const system = createSystemProbe(dataDir, options.systemSource);
  void system.warm();
  const reconciler = new DesiredReconciler({ dataDir, local: config, runtime, firmware: FIRMWARE_VERSION, log, boot: deps.boot });
  if (deps.boot.error) log.error({ error: deps.boot.error }, 'desired config not applied at boot; running on the local config');

  let enrolment: EnrolmentStatus = { state: 'enrolling', attempt: 0, since: new Date().toISOString() };
  let identity: AgentIdentity | undefined;
  let link: FleetLink | undefined;
  let renewal: { stop(): void } | undefined;
  let stopped = false;
  const abort = new AbortController();

  const publishReported = (r: ReportedConfig) =>
    link?.publish('config/reported', r, { retain: true }).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'reported config not sent'));

  const target: CommandTarget = {
    restart: async () => {
      await runtime.restart();
      return { dicomPort: runtime.dicomPort };
    },
    resendStudy: async (uid, by) => {
      if (!runtime.uplink) throw new Error('no destinations configured: nowhere to send the study');
      return requeueStudy(store, uid, by);
    },
    releaseHeld: (id, by, note) => releaseHeld(store, id, by, note),
    discardHeld: (id, by, reason) => discardHeld(store, id, by, reason),
    logs: (lines, level) => logRingOf(deps.log)?.recent(lines, level),
    uptimeS: () => Math.round((Date.now() - deps.startedAt) / 1000),
  };

  const onMessage = (kind: 'config/desired' | 'commands/req', payload: unknown): void => {
    if (kind === 'config/desired') {
      void reconciler.handle(payload).then((r) => r && publishReported(r), (err: unknown) => log.error({ err }, 'handling desired config failed'));
      return;
    }
    void handleCommand(payload, target).then(
      (res) => {
        if (!res) return log.warn('command without a usable id; ignored');
        log.info({ id: res.id, name: (payload as { name?: unknown }).name, status: res.status, error: res.error }, 'command handled');
        return link?.publish('commands/res', res, { whenOffline: 'queue' }).catch((err: unknown) => log.warn({ err: (err as Error).message, id: res.id }, 'command response not sent'));
      },
      (err: unknown) => log.error({ err }, 'handling a command failed'),
    );
  };

  const connectFleet = async (): Promise<void> => {
    identity = await ensureIdentity({
      dataDir,
      ...(config.fleetUrl ? { fleetUrl: config.fleetUrl } : {}),
      ...(config.enrolToken ? { enrolToken: config.enrolToken } : {}),
      ...(config.fleetCa ? { fleetCaFile: config.fleetCa } : {}),
      firmware: FIRMWARE_VERSION,
      log,
      onStatus: (s) => (enrolment = s),
      signal: abort.signal,
      ...(options.enrolRetry ? { retry: options.enrolRetry } : {}),
    });
    if (!identity || stopped) return;
    const id = identity;
    deps.updates?.attachFleet({
      publishStatus: async (status) => {
        await link?.publish('update/status', status, { retain: true });
      },
      tls: () => (identity ? { key: identity.keyPem, cert: identity.certPem, ca: identity.caPem } : undefined),
      connected: () => link?.connected ?? false,
    });
    link = new FleetLink({
      identity: id,
      firmware: FIRMWARE_VERSION,
      log,
      onConnected: () => {
        if (enrolment.state === 'failed' && identity) enrolment = { state: 'enrolled', deviceId: identity.deviceId, notAfter: identity.notAfter };
        void publishReported(reconciler.report());
        deps.updates?.onConnected();
        // The fleet sees fresh figures at once instead of one interval later (the link sends a
        // waiting one itself).
        if (!link?.telemetryPending) void tick().catch((err: unknown) => log.warn({ err }, 'telemetry failed'));
      },
      onMessage,
      ...(deps.updates ? { onUpdateOffer: (offer: unknown) => deps.updates?.onOffer(offer) } : {}),
      onRefused: (message, retryAt) => (enrolment = { state: 'failed', code: 'revoked', message, at: new Date().toISOString(), retryAt: retryAt.toISOString() }),
      ...(options.linkBackoff ? { backoff: options.linkBackoff } : {}),
      ...(options.refusedRetryMs !== undefined ? { refusedRetryMs: options.refusedRetryMs } : {}),
      ...(options.keepaliveS !== undefined ? { keepaliveS: options.keepaliveS } : {}),
    });
    link.start();
    renewal = scheduleRenewal(
      () => identity ?? id,
      (renewed) => {
        identity = renewed;
        enrolment = { state: 'enrolled', deviceId: renewed.deviceId, notAfter: renewed.notAfter };
        link?.replaceIdentity(renewed);
      },
      { dataDir, log },
    );
  };

  // Telemetry: a timer chain that reads the interval each time, re-armed when the config changes it.
  let seq = 0;
  let lastTelemetryAt: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<Telemetry> => {
    const t = await collectTelemetry(
      {
        store,
        disk: deps.disk,
        metrics: deps.metrics,
        system,
        daily,
        lastError: () => {
          const e = runtime.lastError;
          return e ? `${e.at} ${e.source}: ${e.message}`.slice(0, 500) : null;
        },
        firmware: FIRMWARE_VERSION,
        startedAt: deps.startedAt,
      },
      seq++,
    );
    if (link) {
      link.publishTelemetry(t);
      if (link.connected) lastTelemetryAt = t.at;
    }
    await writeJsonDurable(dailyPath(dataDir), daily.toJSON()).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'daily figures not saved'));
    return t;
  };
  const arm = (): void => {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(() => void tick().catch((err: unknown) => log.error({ err }, 'telemetry failed')).finally(arm), runtime.config.telemetryIntervalMs);
  };
  let interval = runtime.config.telemetryIntervalMs;
  const onConfig = (next: ApplianceConfig): void => {
    if (next.telemetryIntervalMs === interval) return;
    interval = next.telemetryIntervalMs;
    arm();
  };
  runtime.on('config', onConfig);
  arm();
  void connectFleet().catch((err: unknown) => {
    enrolment = { state: 'failed', code: 'fleet-error', message: (err as Error).message, at: new Date().toISOString() };
    log.error({ err }, 'fleet agent could not start; the box keeps working without the fleet');
  });

  return {
    status: () => {
      const r = reconciler.report();
      return {
        enrolment,
        deviceId: identity?.deviceId ?? null,
        connected: link?.connected ?? false,
        link: link?.state ?? 'not-started',
        linkError: link?.lastError ?? null,
        connectedAt: link?.connectedAt ?? null,
        lastTelemetryAt,
        telemetrySeq: seq,
        desiredVersion: reconciler.handledVersion,
        reported: { version: r.version, status: r.status, ...(r.error ? { error: r.error } : {}) },
      };
    },
    telemetryNow: tick,
    async stop() {
      if (stopped) return;
      stopped = true;
      abort.abort();
      clearTimeout(timer);
      runtime.off('config', onConfig);
      renewal?.stop();
      await link?.stop();
      detachDaily();
      await writeJsonDurable(dailyPath(dataDir), daily.toJSON()).catch(() => undefined);
    },
  };
}
