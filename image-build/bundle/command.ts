// `mbox keys init` and `mbox bundle build|verify`. Usage mistakes exit 2 (ConfigError); a refused
// bundle exits 1 with `bundle refused (<code>): <message>` so scripts and the fleet can tell why.
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseFlags } from '../../provisioning/args.ts';
import { ConfigError } from '../../shared/config/load.ts';
import { createLogger } from '../../shared/log.ts';
import { BundleError, keyIdOf } from '../../shared/update/manifest.ts';
import { buildBundle } from './build.ts';
import { initKeys, signingKey } from './keys.ts';
import { DEFAULT_DATA_SCHEMA, REPO_ROOT, releaseCreatedAt, releaseNodeVersion, releaseVersion } from './release-info.ts';
import { readManifest, verifyBundle } from './verify.ts';

export const KEYS_USAGE = `usage: mbox keys init --dir <dir>

  init   a new ed25519 release-signing key pair in <dir> (refuses to overwrite one); boxes pin the
         public key at provisioning, \`mbox bundle build --key\` signs with the private key`;

export const BUNDLE_USAGE = `usage: mbox bundle build --key <private key> --out <file> [--version <semver>] [--arch arm64|x64]
                         [--stage-dir <dir>] [--cache-dir <dir>] [--data-schema <n>]
       mbox bundle verify <file> --pubkey <public key> [--pubkey <public key> ...] [--arch arm64|x64]

  build    stage the release (app, production node_modules and Node for --arch, default arm64;
           downloads cached in --cache-dir, default .cache/bundle) and sign it; --stage-dir bundles
           an already staged directory instead. createdAt comes from SOURCE_DATE_EPOCH or the last
           commit, the version from package.json unless --version.
  verify   check the signature against the pinned key(s) and every file; exit 1 if refused`;

const ARCHES = ['arm64', 'x64'] as const;
type Arch = (typeof ARCHES)[number];

function archFlag(value: string | undefined, fallback: Arch | undefined): Arch | undefined {
  if (value === undefined) return fallback;
  if (!(ARCHES as readonly string[]).includes(value)) throw new ConfigError(`--arch '${value}' must be arm64 or x64`);
  return value as Arch;
}

async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--${flag} ${path}: ${(err as Error).message}`);
  }
}

export async function keysCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'init') throw new ConfigError(`${sub ? `unknown keys command '${sub}'` : 'missing keys command'}\n${KEYS_USAGE}`);
  const flags = parseFlags(rest, { values: ['dir'] }, KEYS_USAGE);
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument '${flags.positionals[0]}'\n${KEYS_USAGE}`);
  const dir = flags.values.get('dir');
  if (!dir) throw new ConfigError(`--dir is required\n${KEYS_USAGE}`);
  let keys: Awaited<ReturnType<typeof initKeys>>;
  try {
    keys = await initKeys(dir);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  process.stdout.write(`private key: ${keys.privateKeyPath}\npublic key:  ${keys.publicKeyPath}\nkey id:      ${keys.keyId}\n`);
  process.stderr.write(`keep the private key offline; pin the public key on every box (it verifies bundles with it)\n`);
}

export async function bundleCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'build') return build(rest);
  if (sub === 'verify') return verify(rest);
  throw new ConfigError(`${sub ? `unknown bundle command '${sub}'` : 'missing bundle command'}\n${BUNDLE_USAGE}`);
}

async function build(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { values: ['key', 'out', 'version', 'arch', 'stage-dir', 'cache-dir', 'data-schema'] }, BUNDLE_USAGE);
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument '${flags.positionals[0]}'\n${BUNDLE_USAGE}`);
  const keyPath = flags.values.get('key');
  const out = flags.values.get('out');
  if (!keyPath || !out) throw new ConfigError(`--key and --out are required\n${BUNDLE_USAGE}`);
  const arch = archFlag(flags.values.get('arch'), 'arm64')!;
  const version = flags.values.get('version') ?? releaseVersion();
  const dataSchemaText = flags.values.get('data-schema') ?? String(DEFAULT_DATA_SCHEMA);
  if (!/^[1-9]\d{0,8}$/.test(dataSchemaText)) throw new ConfigError(`--data-schema '${dataSchemaText}' must be a positive integer`);
  const privateKeyPem = await readFlagFile('key', keyPath);
  let keyId: string;
  try {
    keyId = signingKey(privateKeyPem).keyId;
  } catch (err) {
    throw new ConfigError(`--key ${keyPath}: ${(err as Error).message}`);
  }
  const stageFlag = flags.values.get('stage-dir');
  if (stageFlag && !(existsSync(stageFlag) && statSync(stageFlag).isDirectory())) throw new ConfigError(`--stage-dir ${stageFlag} is not a directory`);
  const nodeVersion = releaseNodeVersion();
  const createdAt = releaseCreatedAt();
  const log = createLogger('info', 'mbox-bundle', { ringLines: 0, destination: process.stderr });

  let stageDir = stageFlag ? resolve(stageFlag) : undefined;
  let scratch: string | undefined;
  try {
    if (!stageDir) {
      const cacheDir = resolve(flags.values.get('cache-dir') ?? join(REPO_ROOT, '.cache', 'bundle'));
      await mkdir(cacheDir, { recursive: true });
      scratch = await mkdtemp(join(cacheDir, `stage-${arch}-`));
      stageDir = scratch;
      const { stageRelease } = await import('./stage.ts');
      await stageRelease({ arch, nodeVersion, outDir: stageDir, cacheDir, log });
      // The box reports package.json's version: it must be the bundle's.
      await setPackageVersion(join(stageDir, 'package.json'), version);
    }
    const result = await buildBundle({ stageDir, out, version, arch, nodeVersion, createdAt, dataSchema: Number(dataSchemaText), privateKeyPem });
    const raw = result.manifest.files.reduce((a, f) => a + f.size, 0);
    process.stdout.write(
      [
        `bundle:     ${resolve(out)}`,
        `version:    ${version} (${arch}, node ${nodeVersion}, data schema ${dataSchemaText}, created ${createdAt})`,
        `key id:     ${keyId}`,
        `files:      ${result.manifest.files.length} (${raw} bytes)`,
        `size:       ${result.size} bytes (${(result.size / 1e6).toFixed(1)} MB)`,
        `sha256:     ${result.sha256}`,
        '',
      ].join('\n'),
    );
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

async function setPackageVersion(file: string, version: string): Promise<void> {
  if (!existsSync(file)) return;
  const text = await readFile(file, 'utf8');
  const pkg = JSON.parse(text) as { version?: string };
  if (pkg.version === version) return;
  await writeFile(file, text.replace(/("version"\s*:\s*)"[^"]*"/, `$1${JSON.stringify(version)}`));
}

async function verify(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { lists: ['pubkey'], values: ['arch'] }, BUNDLE_USAGE);
  const [file, extra] = flags.positionals;
  if (!file || extra !== undefined) throw new ConfigError(`${file ? `unexpected argument '${extra}'` : 'which bundle? give its path'}\n${BUNDLE_USAGE}`);
  const pubkeyPaths = flags.lists.get('pubkey') ?? [];
  if (pubkeyPaths.length === 0) throw new ConfigError(`at least one --pubkey is required\n${BUNDLE_USAGE}`);
  const arch = archFlag(flags.values.get('arch'), undefined);
  if (!existsSync(file)) throw new ConfigError(`no bundle at ${file}`);
  const pubkeys: string[] = [];
  for (const p of pubkeyPaths) {
    const pem = await readFlagFile('pubkey', p);
    try {
      keyIdOf(pem);
    } catch (err) {
      throw new ConfigError(`--pubkey ${p}: not a public key (${(err as Error).message})`);
    }
    pubkeys.push(pem);
  }
  try {
    const m = await verifyBundle(file, pubkeys, arch ? { arch } : {});
    const { signature } = await readManifest(file); // verified above; only for the key id shown
    const raw = m.files.reduce((a, f) => a + f.size, 0);
    process.stdout.write(`bundle ok: ${m.version} for ${m.arch} (node ${m.nodeVersion}, data schema ${m.dataSchema}), ${m.files.length} files, ${raw} bytes, created ${m.createdAt}, signed by key ${signature.keyId}\n`);
  } catch (err) {
    if (!(err instanceof BundleError)) {
      // A pinned key that is not an ed25519 public key is the operator's mistake, not the bundle's.
      if (err instanceof Error && /pinned key/.test(err.message)) throw new ConfigError(err.message);
      throw err;
    }
    process.stderr.write(`bundle refused (${err.code}): ${err.message}\n`);
    process.exitCode = 1;
  }
}
