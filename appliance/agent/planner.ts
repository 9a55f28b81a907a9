// The reconciler's pure half: is a desired config acceptable, what config does it make, and which
// steps take the running box there. No I/O, so every case is a unit test.
import { Ajv, type ErrorObject } from 'ajv';
import { ApplianceConfigSchema, destinationsOf, type ApplianceConfig } from '../../shared/config/appliance.ts';
import { REMOTE_CONFIG_KEYS, RemoteConfig, type DesiredConfig, type RemoteConfigKey } from '../../shared/fleet/messages.ts';
import { STEP_KINDS, type Step, type StepKind } from '../runtime/steps.ts';

// No type coercion: a fleet that sends "11112" for a port has a bug worth hearing about.
const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false, verbose: true });
const validateRemote = ajv.compile(RemoteConfig);
const validateWhole = ajv.compile(ApplianceConfigSchema);
const REMOTE = new Set<string>(REMOTE_CONFIG_KEYS);
const ALL_KEYS = new Set(Object.keys(ApplianceConfigSchema.properties));

export type Validation = { ok: true; next: ApplianceConfig } | { ok: false; error: string };

/**
 * Checks a desired config and merges it over the box's LOCAL config: a remote key the desired
 * config leaves out falls back to the local value (so removing a key undoes it).
 */
export function validateDesired(local: ApplianceConfig, desired: Pick<DesiredConfig, 'config'>): Validation {
  const raw: unknown = desired.config;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, error: 'config must be an object' };
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (REMOTE.has(key)) continue;
    problems.push(ALL_KEYS.has(key) ? `forbidden key '${key}': only the box's local config may set it` : `unknown key '${key}'`);
  }
  if (problems.length > 0) return { ok: false, error: problems.join('; ') };
  // Ajv fills defaults in place: work on a copy, never on the message.
  const checked = structuredClone(raw) as Record<string, unknown>;
  if (!validateRemote(checked)) return { ok: false, error: describe(validateRemote.errors ?? []) };
  // Defaults inside a value (a destination's batch sizes) stay; top-level defaults for keys the
  // fleet left out would override the local config, so only the keys it named are taken.
  const remote = Object.fromEntries(Object.keys(raw).map((k) => [k, checked[k]]));
  const whole = structuredClone({ ...local, ...remote });
  if (!validateWhole(whole)) return { ok: false, error: describe(validateWhole.errors ?? []) };
  return { ok: true, next: whole as ApplianceConfig };
}

/** "config.destinations[0].url: must match pattern "^https?://"" — the path, then what was expected. */
function describe(errors: ErrorObject[]): string {
  // A union of literals (logLevel, syntax) fails once per branch; say "one of …" once instead.
  const unions = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const lines: string[] = [];
  for (const e of errors) {
    const path = `config${e.instancePath.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.')}`;
    if (e.keyword === 'anyOf') {
      const options = ((e.parentSchema as { anyOf?: Array<{ const?: unknown }> } | undefined)?.anyOf ?? []).map((b) => b.const);
      lines.push(
        options.length > 0 && options.every((o) => o !== undefined)
          ? `${path}: must be one of ${options.map((o) => JSON.stringify(o)).join(', ')} (got ${JSON.stringify(e.data)})`
          : `${path}: ${e.message ?? 'is invalid'}`,
      );
    } else if (unions.has(e.instancePath) && e.keyword === 'const') {
      continue;
    } else if (e.keyword === 'additionalProperties') {
      lines.push(`${path}: unknown key '${String(e.params.additionalProperty)}'`);
    } else {
      lines.push(`${path}: ${e.message ?? 'is invalid'}${e.keyword === 'type' ? ` (got ${JSON.stringify(e.data)})` : ''}`);
    }
  }
  return [...new Set(lines)].join('; ');
}

/** Which step each config key calls for when it changes. Keys missing here need none. */
const KEY_STEP: Partial<Record<keyof ApplianceConfig, StepKind>> = {
  logLevel: 'log-level',
  quietTimeMs: 'quiet-time',
  diskHighWaterPercent: 'disk-guard',
  diskMinFreeBytes: 'disk-guard',
  retentionHours: 'retention',
  telemetryIntervalMs: 'telemetry-interval',
  aeTitle: 'dimse-settings',
  checkCalledAe: 'dimse-settings',
  allowedCallingAe: 'dimse-settings',
  maxAssociations: 'dimse-settings',
  maxPduLength: 'dimse-settings',
  dicomPort: 'dimse-listener',
  dicomHost: 'dimse-listener',
  tlsCert: 'dimse-listener',
  tlsKey: 'dimse-listener',
  tlsCa: 'dimse-listener',
  tlsRequireClientCert: 'dimse-listener',
  watchDirs: 'watchers',
  watchSettleMs: 'watchers',
  watchIntervalMs: 'watchers',
  watchGiveUpMs: 'watchers',
  destinations: 'uplink',
  destination: 'uplink',
  destinationSyntax: 'uplink',
  destinationToken: 'uplink',
  destinationRetryMaxDelayMs: 'uplink',
  compressWorkers: 'uplink',
};

/** The ordered, minimal steps from `current` to `next` (none when nothing that matters changed). */
export function plan(current: ApplianceConfig, next: ApplianceConfig): Step[] {
  const byKind = new Map<StepKind, Array<keyof ApplianceConfig>>();
  for (const key of Object.keys(KEY_STEP) as Array<keyof ApplianceConfig>) {
    if (sameValue(current[key], next[key])) continue;
    const kind = KEY_STEP[key]!;
    byKind.set(kind, [...(byKind.get(kind) ?? []), key]);
  }
  // A rebinding listener picks up the association settings too.
  const settings = byKind.get('dimse-settings');
  const listener = byKind.get('dimse-listener');
  if (settings && listener) {
    byKind.set('dimse-listener', [...listener, ...settings]);
    byKind.delete('dimse-settings');
  }
  // Nothing runs that would need restarting: the new values are simply in effect when it does.
  if (current.watchDirs.length === 0 && next.watchDirs.length === 0) byKind.delete('watchers');
  if (destinationsOf(current).length === 0 && destinationsOf(next).length === 0) byKind.delete('uplink');
  return STEP_KINDS.filter((k) => byKind.has(k)).map((kind) => ({ kind, keys: byKind.get(kind)! }));
}

/**
 * The remote keys' values in effect, for ReportedConfig.effective. Destination credentials are
 * masked: a token set in the box's local config is not the fleet's to read.
 */
export function effectiveRemote(config: ApplianceConfig): Record<RemoteConfigKey, unknown> {
  const out = Object.fromEntries(REMOTE_CONFIG_KEYS.map((k) => [k, config[k]])) as Record<RemoteConfigKey, unknown>;
  out.destinations = config.destinations.map((d) => ({
    ...d,
    ...(d.token !== undefined ? { token: REDACTED } : {}),
    ...(d.password !== undefined ? { password: REDACTED } : {}),
  }));
  return out;
}

export const REDACTED = '[redacted]';

/** Structural equality for config values (plain JSON: objects compare regardless of key order). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
