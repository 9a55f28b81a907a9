// External-broker mode: the fleet keeps a CRL file current for mosquitto (`crlfile`), because that
// broker cannot ask the registry whether a box was revoked or its certificate replaced. Written on
// start, after every revocation, renewal or re-enrolment, and daily (the CRL's nextUpdate must not
// pass); then the reload command runs (mosquitto 2 re-reads its TLS files on SIGHUP). Connections
// that are already open stay open until they drop — the fleet ignores whatever a revoked box sends.
import { execFile } from 'node:child_process';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import type { Logger } from '../../shared/log.ts';
import type { FleetPki, RevokedSerial } from '../types.ts';

const DAY_MS = 86_400_000;

export interface CrlFileOptions {
  path: string;
  /** Run through /bin/sh after each write, e.g. `systemctl reload mosquitto`. */
  reloadCommand?: string;
  pki: Pick<FleetPki, 'signCrl'>;
  source: { revokedSerials(): RevokedSerial[]; onCertificatesChanged(listener: () => void): void };
  log: Logger;
}

export interface CrlFile {
  /** Writes (and reloads) now; resolves when this and any change before it are on disk. */
  refresh(): Promise<void>;
  /** Times the file was written (tests). */
  readonly writes: number;
  close(): Promise<void>;
}

export async function startCrlFile(opts: CrlFileOptions): Promise<CrlFile> {
  const { log } = opts;
  let writes = 0;
  let closed = false;
  let running: Promise<void> | undefined;
  let again = false;

  const write = async (): Promise<void> => {
    const entries = opts.source.revokedSerials();
    await writeFileDurable(opts.path, await opts.pki.signCrl(entries), 0o644);
    writes++;
    log.info({ path: opts.path, entries: entries.length }, 'broker CRL written');
  };
  const writeOnce = async (): Promise<void> => {
    await write();
    if (opts.reloadCommand) await reload(opts.reloadCommand);
  };
  // Changes arriving during a write coalesce into one more write after it.
  const refresh = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await writeOnce();
        } while (again && !closed);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  // A CRL that cannot be written at start is a setup error: the broker would keep admitting revoked
  // boxes. A reload that fails then is not: a broker that is not up yet reads the file when it starts.
  await write();
  if (opts.reloadCommand) {
    await reload(opts.reloadCommand).catch((err: unknown) => log.error({ err }, 'broker reload after the start-up CRL write failed; the broker reads the file when it next (re)starts'));
  }
  opts.source.onCertificatesChanged(() => {
    if (!closed) refresh().catch((err: unknown) => log.error({ err, path: opts.path }, 'broker CRL update failed; revoked certificates may still connect'));
  });
  const timer = setInterval(() => {
    refresh().catch((err: unknown) => log.error({ err, path: opts.path }, 'daily broker CRL refresh failed'));
  }, DAY_MS);
  timer.unref();

  return {
    refresh,
    get writes() {
      return writes;
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}

function reload(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { timeout: 30_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`broker reload command failed (${command}): ${stderr.trim() || err.message}`)) : resolve(),
    );
  });
}
