// The box's Node runtime: the registry's platform package node-linux-<arch>@<version> (the same
// version development runs), fetched once with `npm pack` (npm checks the registry's integrity
// hash) and kept in the cache. Only bin/node and Node's LICENSE go into a release.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../../shared/log.ts';

const run = promisify(execFile);
const ELF_MACHINE: Record<'arm64' | 'x64', number> = { arm64: 183, x64: 62 };

export interface NodeRuntime {
  /** The unpacked `node` binary for the box. */
  node: string;
  license: string;
  /** The registry tarball it came from. */
  tarball: string;
  cached: boolean;
}

async function checkElf(file: string, arch: 'arm64' | 'x64'): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(20), 0, 20, 0);
    const machine = bytesRead === 20 && buffer.readUInt32BE(0) === 0x7f454c46 ? buffer.readUInt16LE(18) : undefined;
    if (machine !== ELF_MACHINE[arch]) throw new Error(`${file} is not a ${arch} ELF executable (e_machine ${machine ?? 'none'})`);
  } finally {
    await fh.close();
  }
}

export async function nodeRuntime(opts: { arch: 'arm64' | 'x64'; nodeVersion: string; cacheDir: string; env?: NodeJS.ProcessEnv; log?: Logger }): Promise<NodeRuntime> {
  const spec = `node-linux-${opts.arch}@${opts.nodeVersion}`;
  const base = join(opts.cacheDir, `node-linux-${opts.arch}-${opts.nodeVersion}`);
  const tarball = `${base}.tgz`;
  const unpacked = base;
  const node = join(unpacked, 'bin', 'node');
  const license = join(unpacked, 'LICENSE');
  if (existsSync(node) && existsSync(license)) {
    await checkElf(node, opts.arch);
    return { node, license, tarball, cached: true };
  }
  await mkdir(opts.cacheDir, { recursive: true });
  let cached = true;
  if (!existsSync(tarball)) {
    cached = false;
    const tmp = await mkdtemp(join(opts.cacheDir, 'pack-'));
    try {
      opts.log?.info({ spec }, 'fetching the Node runtime from the npm registry');
      await run('npm', ['pack', '--silent', spec, '--pack-destination', tmp], { env: opts.env ?? process.env, maxBuffer: 16 << 20 });
      const tgz = (await readdir(tmp)).find((f) => f.endsWith('.tgz'));
      if (!tgz) throw new Error(`npm pack ${spec} produced no tarball`);
      await rename(join(tmp, tgz), tarball);
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`npm pack ${spec} failed: ${e.stderr?.trim() || e.message}`);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const work = `${unpacked}.tmp`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', work, '--strip-components=1', '--no-same-owner', 'package/bin/node', 'package/LICENSE']);
  await checkElf(join(work, 'bin', 'node'), opts.arch);
  await rm(unpacked, { recursive: true, force: true });
  await mkdir(dirname(unpacked), { recursive: true });
  await rename(work, unpacked);
  return { node, license, tarball, cached };
}
