// A private Orthanc (Debian package) with its own config, ports and storage in a temp dir, for the
// ingest benchmark and for integration tests against a reference PACS (STOW-RS, QIDO-RS, C-STORE).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { earlyExitError, freePort, LOOPBACK, spawnPeer, waitForPort, waitUntil } from './ports.ts';

export const ORTHANC_BIN = '/usr/sbin/Orthanc';
/** Where the Debian orthanc-* plugin packages drop their .so files (symlinks into /usr/lib/orthanc). */
export const ORTHANC_PLUGIN_DIR = '/usr/share/orthanc/plugins';
export const ORTHANC_DICOMWEB_PLUGIN = join(ORTHANC_PLUGIN_DIR, 'libOrthancDicomWeb.so');

export interface OrthancOptions {
  /** DICOM AE title (default ORTHANC). */
  aet?: string;
  /** Load the DICOMweb plugin and enable it under /dicom-web/ (default false). */
  dicomWeb?: boolean;
  /** Further plugin files or directories to load (default none). */
  plugins?: string[];
  /** Known remote modalities, Orthanc syntax: { NAME: [aet, host, port] }. */
  modalities?: Record<string, [string, string, number]>;
  /** Merged last over the generated config, for anything not covered above. */
  config?: Record<string, unknown>;
  /** Parent of the temp dir (default: the OS temp dir). */
  parentDir?: string;
  /** Orthanc on a cold cache takes 1-3 s to open SQLite and start both servers. */
  startTimeoutMs?: number;
  /** Pass --verbose to Orthanc (its output only surfaces in startup errors). */
  verbose?: boolean;
  /** Listen on this HTTP port (e.g. where an uploader is already pointed) instead of a free one. */
  httpPort?: number;
  /**
   * Run Orthanc elsewhere than the root namespace on loopback: `exec` wraps the command (e.g.
   * `ip netns exec`), clients reach it at `host`, on fixed ports (the namespace is ours alone).
   */
  placement?: { host: string; dicomPort: number; httpPort: number; exec: (cmd: string, args: string[]) => [string, string[]] };
}

export interface OrthancInstance {
  aet: string;
  dicomPort: number;
  httpPort: number;
  /** Base URL of the REST API, no trailing slash. */
  url: string;
  /** Temp dir holding config, storage and index; removed by stop(). */
  dir: string;
  /** The generated configuration, for reports. */
  config: Readonly<Record<string, unknown>>;
  /** Milliseconds from spawn to ready. */
  startupMs: number;
  /** GET a REST path (e.g. '/statistics') and parse JSON; throws on non-2xx. */
  getJson<T = unknown>(path: string): Promise<T>;
  instanceCount(): Promise<number>;
  stop(): Promise<void>;
}

export async function startOrthanc(opts: OrthancOptions = {}): Promise<OrthancInstance> {
  const aet = opts.aet ?? 'ORTHANC';
  const dir = await mkdtemp(join(opts.parentDir ?? tmpdir(), 'mbox-orthanc-'));
  const [freeDicom, freeHttp] = opts.placement ? [opts.placement.dicomPort, opts.placement.httpPort] : await twoFreePorts();
  const dicomPort = freeDicom;
  const httpPort = opts.placement?.httpPort ?? opts.httpPort ?? freeHttp;
  const host = opts.placement?.host ?? LOOPBACK;
  const plugins = [...(opts.dicomWeb ? [ORTHANC_DICOMWEB_PLUGIN] : []), ...(opts.plugins ?? [])];
  const config: Record<string, unknown> = {
    Name: `mbox-test-${aet}`,
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    // Stored bytes stay comparable with the other targets' on-disk size.
    StorageCompression: false,
    DicomAet: aet,
    DicomPort: dicomPort,
    HttpPort: httpPort,
    // Inside a namespace the box connects from the other end of the veth, not from loopback.
    RemoteAccessAllowed: Boolean(opts.placement),
    AuthenticationEnabled: false,
    DicomCheckCalledAet: false,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowEcho: true,
    // Wildcards over every transfer syntax UID, plus classes Orthanc does not know by name.
    AcceptedTransferSyntaxes: ['1.2.840.10008.1.*'],
    UnknownSopClassAccepted: true,
    DicomModalities: opts.modalities ?? {},
    Plugins: plugins,
    // Persisted job history only adds writes unrelated to what tests look at.
    SaveJobs: false,
    ...(opts.dicomWeb ? { DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: true, Host: host, Ssl: false } } : {}),
    ...opts.config,
  };
  await mkdir(join(dir, 'storage'));
  await mkdir(join(dir, 'index'));
  const configPath = join(dir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));

  const url = `http://${host}:${httpPort}`;
  const started = performance.now();
  // Orthanc is launched directly, never through /etc/init.d/orthanc, so the package's system
  // instance (port 4242/8042, /var/lib/orthanc) is neither needed nor touched.
  const argv = [...(opts.verbose ? ['--verbose'] : []), configPath];
  const [cmd, args] = opts.placement ? opts.placement.exec(ORTHANC_BIN, argv) : [ORTHANC_BIN, argv];
  const peer = spawnPeer(cmd, args, { cwd: dir, scratchDir: dir });
  const getJson = async <T>(path: string): Promise<T> => {
    const res = await fetch(url + path, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`Orthanc GET ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const stop = async (): Promise<void> => {
    await peer.stop(10_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const timeout = opts.startTimeoutMs ?? 30_000;
    const abort = (): Error | null => earlyExitError('Orthanc', peer);
    await waitUntil(async () => (await fetch(`${url}/system`, { signal: AbortSignal.timeout(2000) })).ok, timeout, `Orthanc HTTP ${url}/system`, abort);
    // The REST API can come up before the DICOM listener; senders need both.
    await waitForPort(dicomPort, timeout, abort, host);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    aet,
    dicomPort,
    httpPort,
    url,
    dir,
    config,
    startupMs: performance.now() - started,
    getJson,
    instanceCount: async () => (await getJson<{ CountInstances: number }>('/statistics')).CountInstances,
    stop,
  };
}

// Two freePort() calls in a row can hand back the same number once the first socket is closed.
async function twoFreePorts(): Promise<[number, number]> {
  const a = await freePort();
  let b = await freePort();
  while (b === a) b = await freePort();
  return [a, b];
}
