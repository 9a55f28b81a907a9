// A private dcmtk storescp on a free loopback port, writing into a temp dir: the "bare network +
// write(2)" baseline (storescp does not fsync) and a simple C-STORE sink for tests.
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { earlyExitError, freePort, spawnPeer, waitForPort } from './ports.ts';

export const STORESCP_BIN = 'storescp';

export interface StorescpOptions {
  aet?: string;
  /**
   * One forked child per association. Without it storescp serves associations one after another,
   * so concurrent senders queue up (and can hit their ACSE timeout).
   */
  fork?: boolean;
  /** Parent of the temp dir (default: the OS temp dir). */
  parentDir?: string;
  /** Appended to the generated command line, e.g. ['--ignore']. */
  extraArgs?: string[];
  startTimeoutMs?: number;
}

export interface StorescpInstance {
  port: number;
  aet: string;
  /** Where received files land, flat; names per storescp's options (default <modality>.<SOPInstanceUID>). */
  dir: string;
  /** The exact argv used, for reports. */
  args: readonly string[];
  fileCount(): Promise<number>;
  stop(): Promise<void>;
}

export async function startStorescp(opts: StorescpOptions = {}): Promise<StorescpInstance> {
  const aet = opts.aet ?? 'STORESCP';
  const base = await mkdtemp(join(opts.parentDir ?? tmpdir(), 'mbox-storescp-'));
  const dir = join(base, 'in');
  await mkdir(dir);
  const port = await freePort();
  const args = [
    ...(opts.fork ? ['--fork'] : []),
    '-aet', aet,
    '+xa', // accept every transfer syntax storescp knows, compressed ones included
    '-dhl', // no reverse DNS per association
    '-od', dir,
    ...(opts.extraArgs ?? []),
    String(port),
  ];
  const peer = spawnPeer(STORESCP_BIN, args, { scratchDir: base });
  const cleanup = async (): Promise<void> => {
    await peer.stop(5_000);
    await rm(base, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, opts.startTimeoutMs ?? 10_000, () => earlyExitError('storescp', peer));
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    port,
    aet,
    dir,
    args: [STORESCP_BIN, ...args],
    // Exact once the sender has exited: storescp answers each C-STORE only after writing the file.
    fileCount: async () => (await readdir(dir)).length,
    stop: cleanup,
  };
}
