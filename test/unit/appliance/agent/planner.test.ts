import { describe, expect, it } from 'vitest';
import { effectiveRemote, plan, REDACTED, sameValue, validateDesired } from '../../../../appliance/agent/planner.ts';
import { ApplianceConfigSchema, type ApplianceConfig } from '../../../../shared/config/appliance.ts';
import { loadConfig } from '../../../../shared/config/load.ts';

const local: ApplianceConfig = loadConfig(ApplianceConfigSchema, { argv: ['--ae-title', 'LOCAL', '--data-dir', '/var/lib/mbox'] });
const desired = (config: Record<string, unknown>) => ({ config });
const dest = { name: 'cloud', url: 'https://pacs.example/dicomweb' };

function next(config: Record<string, unknown>, base = local): ApplianceConfig {
  const v = validateDesired(base, desired(config));
  if (!v.ok) throw new Error(v.error);
  return v.next;
}

function errorOf(config: unknown): string {
  const v = validateDesired(local, { config } as { config: Record<string, unknown> });
  if (v.ok) throw new Error('expected a rejection');
  return v.error;
}

describe('validateDesired', () => {
  it('accepts an empty desired config: the local config as it is', () => {
    expect(next({})).toEqual(local);
  });

  it('merges remote keys over the local config and leaves the rest alone', () => {
    const n = next({ aeTitle: 'FLEET', quietTimeMs: 2500 });
    expect(n.aeTitle).toBe('FLEET');
    expect(n.quietTimeMs).toBe(2500);
    expect(n.dataDir).toBe('/var/lib/mbox');
    expect(n.dicomPort).toBe(local.dicomPort);
  });

  it('falls back to the local value for a remote key the desired config no longer names', () => {
    const first = next({ aeTitle: 'FLEET' });
    expect(first.aeTitle).toBe('FLEET');
    // The next desired config is judged against the local config, not the previous merge.
    expect(next({ quietTimeMs: 1000 }).aeTitle).toBe('LOCAL');
  });

  it('refuses keys only the box may set, naming each', () => {
    const e = errorOf({ dataDir: '/tmp/x', httpPort: 1, aeTitle: 'OK' });
    expect(e).toMatch(/forbidden key 'dataDir'/);
    expect(e).toMatch(/forbidden key 'httpPort'/);
  });

  it('refuses identity and fleet keys (a remote mistake there would cut the box off)', () => {
    for (const key of ['fleetUrl', 'enrolToken', 'fleetCa', 'tlsKey', 'watchDirs', 'httpHost', 'dicomHost']) {
      expect(errorOf({ [key]: 'x' })).toContain(`forbidden key '${key}'`);
    }
  });

  it('refuses unknown keys as unknown, not forbidden', () => {
    expect(errorOf({ colour: 'blue' })).toBe("unknown key 'colour'");
  });

  it('names the key path and what was expected for a wrong type', () => {
    expect(errorOf({ dicomPort: '11112' })).toBe('config.dicomPort: must be integer (got "11112")');
  });

  it('names range violations', () => {
    expect(errorOf({ maxAssociations: 0 })).toBe('config.maxAssociations: must be >= 1');
    expect(errorOf({ telemetryIntervalMs: 10 })).toBe('config.telemetryIntervalMs: must be >= 1000');
    expect(errorOf({ dicomPort: 70000 })).toBe('config.dicomPort: must be <= 65535');
  });

  it('lists the allowed values of a union once', () => {
    expect(errorOf({ logLevel: 'loud' })).toBe('config.logLevel: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent" (got "loud")');
  });

  it('reports every error, not only the first', () => {
    const e = errorOf({ quietTimeMs: -1, aeTitle: 'A'.repeat(17) });
    expect(e).toContain('config.quietTimeMs: must be >= 0');
    expect(e).toContain('config.aeTitle: must match pattern');
  });

  it('checks destinations inside the list, with their index', () => {
    expect(errorOf({ destinations: [dest, { name: 'b' }] })).toBe("config.destinations[1]: must have required property 'url'");
    expect(errorOf({ destinations: [{ ...dest, url: 'ftp://x' }] })).toMatch(/^config\.destinations\[0\]\.url: must match pattern/);
    expect(errorOf({ destinations: [{ ...dest, colour: 1 }] })).toBe("config.destinations[0]: unknown key 'colour'");
    expect(errorOf({ destinations: [{ ...dest, syntax: 'jpeg' }] })).toMatch(/config\.destinations\[0\]\.syntax: must be one of "jpeg-ls", "htj2k"/);
  });

  it('fills the defaults of a destination', () => {
    const n = next({ destinations: [dest] });
    expect(n.destinations[0]).toMatchObject({ ...dest, syntax: 'jpeg-ls', concurrency: 2, windows: [], insecureSkipVerify: false });
  });

  it('does not change the message it was given', () => {
    const config = { destinations: [{ ...dest }] };
    next(config);
    expect(config).toEqual({ destinations: [dest] });
  });

  it('refuses a config that is not an object', () => {
    for (const bad of [null, [], 'x', 3]) expect(errorOf(bad)).toBe('config must be an object');
  });
});

describe('plan', () => {
  it('has no steps when nothing changed', () => {
    expect(plan(local, next({}))).toEqual([]);
    expect(plan(local, next({ aeTitle: 'LOCAL' }))).toEqual([]);
  });

  it('maps each key to its step', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ logLevel: 'debug' }, 'log-level'],
      [{ quietTimeMs: 1 }, 'quiet-time'],
      [{ diskHighWaterPercent: 50 }, 'disk-guard'],
      [{ diskMinFreeBytes: 5 }, 'disk-guard'],
      [{ retentionHours: 1 }, 'retention'],
      [{ telemetryIntervalMs: 5000 }, 'telemetry-interval'],
      [{ aeTitle: 'NEW' }, 'dimse-settings'],
      [{ checkCalledAe: false }, 'dimse-settings'],
      [{ allowedCallingAe: ['CT1'] }, 'dimse-settings'],
      [{ maxAssociations: 3 }, 'dimse-settings'],
      [{ maxPduLength: 16384 }, 'dimse-settings'],
      [{ dicomPort: 104 }, 'dimse-listener'],
      [{ destinations: [dest] }, 'uplink'],
    ];
    for (const [config, kind] of cases) expect(plan(local, next(config)).map((s) => s.kind), JSON.stringify(config)).toEqual([kind]);
  });

  it('names the keys behind each step', () => {
    expect(plan(local, next({ diskHighWaterPercent: 50, diskMinFreeBytes: 5 }))).toEqual([{ kind: 'disk-guard', keys: ['diskHighWaterPercent', 'diskMinFreeBytes'] }]);
  });

  it('folds the association settings into a listener rebind', () => {
    const steps = plan(local, next({ dicomPort: 104, aeTitle: 'NEW' }));
    expect(steps).toEqual([{ kind: 'dimse-listener', keys: ['dicomPort', 'aeTitle'] }]);
  });

  it('orders live settings before restarts', () => {
    const steps = plan(local, next({ destinations: [dest], dicomPort: 104, logLevel: 'warn', quietTimeMs: 5, telemetryIntervalMs: 2000 }));
    expect(steps.map((s) => s.kind)).toEqual(['log-level', 'quiet-time', 'telemetry-interval', 'dimse-listener', 'uplink']);
  });

  it('compares values structurally (key order and defaults do not make a change)', () => {
    const a = next({ destinations: [dest] });
    const b = next({ destinations: [{ url: dest.url, name: 'cloud', syntax: 'jpeg-ls' }] });
    expect(plan(a, b)).toEqual([]);
    const c = next({ destinations: [{ ...dest, concurrency: 4 }] });
    expect(plan(a, c).map((s) => s.kind)).toEqual(['uplink']);
  });

  it('restarts no watchers and no uplink when there are none to restart', () => {
    expect(plan(local, next({ watchSettleMs: 1, watchIntervalMs: 100, compressWorkers: 4 }))).toEqual([]);
    const watching = { ...local, watchDirs: ['/srv/export'] };
    expect(plan(watching, next({ watchSettleMs: 1 }, watching)).map((s) => s.kind)).toEqual(['watchers']);
    const sending = next({ destinations: [dest] });
    expect(plan(sending, next({ destinations: [dest], compressWorkers: 4 })).map((s) => s.kind)).toEqual(['uplink']);
  });

  it('stops the uplink when the destinations go away', () => {
    expect(plan(next({ destinations: [dest] }), local).map((s) => s.kind)).toEqual(['uplink']);
  });

  it('plans back to the local config when a desired config is withdrawn', () => {
    const applied = next({ aeTitle: 'FLEET', quietTimeMs: 5 });
    expect(plan(applied, local).map((s) => s.kind)).toEqual(['quiet-time', 'dimse-settings']);
  });
});

describe('effectiveRemote', () => {
  it('lists exactly the remote keys, with destination credentials masked', () => {
    const n = next({ destinations: [{ ...dest, token: 'secret', username: 'u', password: 'p' }] });
    const e = effectiveRemote(n);
    expect(Object.keys(e).sort()).toContain('aeTitle');
    expect(e).not.toHaveProperty('dataDir');
    expect(e.destinations).toEqual([expect.objectContaining({ token: REDACTED, password: REDACTED, username: 'u' })]);
    expect(JSON.stringify(e)).not.toContain('secret');
  });
});

describe('sameValue', () => {
  it('compares JSON values structurally', () => {
    expect(sameValue({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true);
    expect(sameValue([1, 2], [2, 1])).toBe(false);
    expect(sameValue({ a: 1 }, { a: 1, b: undefined })).toBe(true);
    expect(sameValue({ a: 1 }, [1])).toBe(false);
    expect(sameValue(null, {})).toBe(false);
  });
});
