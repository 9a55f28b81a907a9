import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import type { TObject, Static } from '@sinclair/typebox';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Arguments after the sub-command, e.g. ['--config', 'box.json', '--dicom-port', '11112']. */
  argv?: string[];
  env?: Record<string, string | undefined>;
}

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (key: string): string => `MBOX_${kebab(key).replace(/-/g, '_').toUpperCase()}`;

/**
 * Builds a config from (lowest to highest precedence) schema defaults, a JSON file given by
 * --config, MBOX_* variables and flags, then validates it. Any bad key or value throws a
 * ConfigError naming the key, where it came from and what was expected.
 */
export function loadConfig<S extends TObject>(schema: S, sources: ConfigSources = {}): Static<S> {
  const argv = sources.argv ?? [];
  const env = sources.env ?? {};
  const keys = Object.keys(schema.properties);
  const byFlag = new Map(keys.map((k) => [kebab(k), k]));
  const origin = new Map<string, string>();
  let raw: Record<string, unknown> = {};

  const flagValues: Array<[string, string]> = [];
  let configFile = env.MBOX_CONFIG;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    let value = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (value === undefined) {
      const next = argv[i + 1];
      const isBool = name !== 'config' && schemaType(schema, byFlag.get(name)) === 'boolean';
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        i++;
      } else if (isBool || name.startsWith('no-')) {
        value = name.startsWith('no-') ? 'false' : 'true';
      } else {
        throw new ConfigError(`flag --${name} needs a value`);
      }
    }
    if (name === 'config') configFile = value;
    else flagValues.push([name.startsWith('no-') && !byFlag.has(name) ? name.slice(3) : name, value]);
  }

  if (configFile) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${configFile}: ${(err as Error).message}`);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('top level must be an object');
      raw = parsed as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${configFile} is not valid JSON: ${(err as Error).message}`);
    }
    for (const k of Object.keys(raw)) origin.set(k, `config file ${configFile}`);
  }

  for (const key of keys) {
    const value = env[envName(key)];
    if (value !== undefined) {
      raw[key] = coerceList(schema, key, value);
      origin.set(key, `environment ${envName(key)}`);
    }
  }
  for (const [name, value] of flagValues) {
    const key = byFlag.get(name);
    if (!key) throw new ConfigError(`unknown flag --${name} (known: ${[...byFlag.keys()].map((f) => `--${f}`).join(', ')})`);
    raw[key] = coerceList(schema, key, value);
    origin.set(key, `flag --${name}`);
  }

  const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  if (!validate(raw)) {
    throw new ConfigError(describeErrors(validate.errors ?? [], origin));
  }
  return raw as Static<S>;
}

function schemaType(schema: TObject, key: string | undefined): string | undefined {
  if (!key) return undefined;
  const prop = schema.properties[key] as { type?: string } | undefined;
  return prop?.type;
}

/** Lists in flags and env vars are comma-separated. */
function coerceList(schema: TObject, key: string, value: string): unknown {
  if (schemaType(schema, key) !== 'array') return value;
  return value === '' ? [] : value.split(',').map((s) => s.trim());
}

function describeErrors(errors: ErrorObject[], origin: Map<string, string>): string {
  const lines = errors.map((e) => {
    if (e.keyword === 'additionalProperties') {
      const key = String(e.params.additionalProperty);
      return `unknown config key '${key}'${origin.has(key) ? ` (from ${origin.get(key)})` : ''}`;
    }
    const key = e.instancePath.replace(/^\//, '').split('/')[0] ?? '';
    const where = origin.get(key) ?? 'default';
    return `config key '${key}' (from ${where}) ${e.message ?? 'is invalid'}`;
  });
  return `invalid configuration:\n  ${[...new Set(lines)].join('\n  ')}`;
}
