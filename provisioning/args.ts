// Flag parsing for the provisioning sub-commands (`mbox ca …`, `mbox token …`). Their flags are not
// config keys, so the config loader does not apply; mistakes still exit 2 with the flag named.
import { FleetConfigSchema } from '../shared/config/fleet.ts';
import { ConfigError } from '../shared/config/load.ts';

export interface FlagSpec {
  /** Flags that take a value (last one wins). */
  values?: readonly string[];
  /** Flags that may repeat, each with a value. */
  lists?: readonly string[];
  /** Flags without a value. */
  switches?: readonly string[];
}

export interface ParsedFlags {
  values: Map<string, string>;
  lists: Map<string, string[]>;
  switches: Set<string>;
  positionals: string[];
}

export function parseFlags(argv: readonly string[], spec: FlagSpec, usage: string): ParsedFlags {
  const out: ParsedFlags = { values: new Map(), lists: new Map(), switches: new Set(), positionals: [] };
  const known = [...(spec.values ?? []), ...(spec.lists ?? []), ...(spec.switches ?? [])].map((f) => `--${f}`);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (spec.switches?.includes(name)) {
      if (inline !== undefined) throw new ConfigError(`flag --${name} takes no value\n${usage}`);
      out.switches.add(name);
      continue;
    }
    const isValue = spec.values?.includes(name);
    const isList = spec.lists?.includes(name);
    if (!isValue && !isList) throw new ConfigError(`unknown flag --${name} (known: ${known.join(', ') || 'none'})\n${usage}`);
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError(`flag --${name} needs a value\n${usage}`);
      value = next;
      i++;
    }
    if (isList) out.lists.set(name, [...(out.lists.get(name) ?? []), value]);
    else out.values.set(name, value);
  }
  return out;
}

/** The fleet data dir as `mbox fleet` resolves it: --data-dir, MBOX_DATA_DIR, then the default. */
export function fleetDataDir(flags: ParsedFlags, env: NodeJS.ProcessEnv = process.env): string {
  return flags.values.get('data-dir') ?? env.MBOX_DATA_DIR ?? String(FleetConfigSchema.properties.dataDir.default);
}
