// The facts a release is stamped with, from the source tree — never from the build's wall clock,
// so rebuilding the same commit gives the same manifest.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/** The box's data schema when no module declares one yet; `--data-schema` overrides. */
export const DEFAULT_DATA_SCHEMA = 1;

interface PackageJson {
  version: string;
  engines?: { node?: string };
}

/** HEAD's package.json (what a release is built from, see source-tree.ts), else the file on disk. */
function packageJson(root: string): PackageJson {
  let text: string;
  try {
    text = execFileSync('git', ['show', 'HEAD:package.json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    text = readFileSync(join(root, 'package.json'), 'utf8');
  }
  return JSON.parse(text) as PackageJson;
}

export function releaseVersion(root = REPO_ROOT): string {
  return packageJson(root).version;
}

/** The exact Node version development runs (package.json engines.node): the box runs the same. */
export function releaseNodeVersion(root = REPO_ROOT): string {
  const wanted = packageJson(root).engines?.node ?? '';
  if (!/^\d+\.\d+\.\d+$/.test(wanted)) throw new Error(`package.json engines.node must be an exact version (x.y.z), found '${wanted}'`);
  return wanted;
}

/** SOURCE_DATE_EPOCH (reproducible-builds.org) when set, else the last commit's time. */
export function releaseCreatedAt(root = REPO_ROOT, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.SOURCE_DATE_EPOCH;
  let seconds: number;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d{1,12}$/.test(fromEnv)) throw new Error(`SOURCE_DATE_EPOCH '${fromEnv}' is not a number of seconds`);
    seconds = Number(fromEnv);
  } else {
    let out: string;
    try {
      out = execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (err) {
      throw new Error(`no SOURCE_DATE_EPOCH and no git history in ${root} to date the release: ${(err as Error).message}`);
    }
    if (!/^\d+$/.test(out)) throw new Error(`git log gave '${out}' for the last commit time`);
    seconds = Number(out);
  }
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}
