// What the rollout planner decides, carried out: the rollout saved first, then retained offers
// published or withdrawn, device events, audit entries and log lines.
import { topics } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { UpdateOffer } from '../../shared/update/messages.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import type { AuditLog, FleetBus } from '../types.ts';
import type { Action } from './plan.ts';
import type { Rollout } from './schemas.ts';
import type { RolloutStore } from './store.ts';

const FLEET_ACTOR = 'fleet';

export interface EffectDeps {
  store: RolloutStore;
  registry: DeviceRegistry;
  bus: FleetBus;
  audit: AuditLog;
  log: Logger;
  baseUrl: () => string;
}

export class Effects {
  private readonly opts: EffectDeps;
  private readonly log: Logger;

  constructor(deps: EffectDeps) {
    this.opts = deps;
    this.log = deps.log;
  }

  /** Saves the rollout, then carries out the actions (offers only once their state is on disk). */
  async execute(r: Rollout, actions: Action[]): Promise<void> {
    await this.opts.store.saveRollout(r);
    const sends: Promise<void>[] = [];
    for (const a of actions) {
      switch (a.kind) {
        case 'offer':
          this.opts.registry.addEvent(a.deviceId, 'update', `offered ${r.version} (rollout ${r.id}${a.retryApproved ? ', retry approved' : ''})`);
          sends.push(this.publishOffer(r, a.deviceId, a.retryApproved));
          break;
        case 'withdraw':
          // An empty retained payload clears the offer. FleetBus.publish JSON-encodes its payload;
          // undefined encodes to nothing, which mqtt.js sends as a zero-length payload.
          sends.push(this.opts.bus.publish(topics.updateOffer(a.deviceId), undefined, { retain: true, qos: 1 }).catch((err: unknown) => this.log.warn({ err, deviceId: a.deviceId }, 'could not withdraw an update offer')));
          break;
        case 'final':
          this.opts.registry.addEvent(a.deviceId, 'update', `${r.version} ${a.status}: ${a.reason}`);
          break;
        case 'paused':
          this.log.warn({ rolloutId: r.id, version: r.version, wave: a.wave + 1, reason: a.reason }, 'rollout paused');
          sends.push(this.opts.audit.record({ actor: FLEET_ACTOR, action: 'rollout.auto-pause', target: r.id, outcome: 'ok', detail: { version: r.version, wave: a.wave + 1, reason: a.reason } }).catch((err: unknown) => this.log.error({ err }, 'audit write failed')));
          break;
        case 'wave-complete':
          this.log.info({ rolloutId: r.id, version: r.version, wave: a.wave + 1 }, 'rollout wave complete');
          break;
        case 'completed':
          this.log.info({ rolloutId: r.id, version: r.version }, 'rollout completed');
          break;
      }
    }
    await Promise.all(sends);
  }

  async publishOffer(r: Rollout, deviceId: string, retryApproved: boolean, offeredAt?: string): Promise<void> {
    const offer: UpdateOffer = {
      rolloutId: r.id,
      version: r.version,
      url: `${this.opts.baseUrl()}/api/releases/${encodeURIComponent(r.version)}/bundle`,
      sha256: r.sha256,
      size: r.size,
      retryApproved,
      offeredAt: offeredAt ?? new Date().toISOString(),
    };
    try {
      await this.opts.bus.publish(topics.updateOffer(deviceId), offer, { retain: true, qos: 1 });
    } catch (err) {
      this.log.warn({ err, deviceId, rolloutId: r.id }, 'could not publish an update offer; it is republished at the next start');
    }
  }
}
