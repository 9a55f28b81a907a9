// The releases registry: signed bundles under <dataDir>/releases/<version>.mbx plus index.json
// (ReleaseRecord[]). An upload streams to a temp file beside them while it is hashed, is verified
// against the fleet's pinned release keys (signature and every file), and only then takes its
// version's name; a refused upload leaves nothing behind.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Value } from '@sinclair/typebox/value';
import { readManifest, verifyBundle } from '../../image-build/bundle/index.ts';
import { renameDurable, writeFileDurable } from '../../shared/crypto/durable-file.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import { BundleError } from '../../shared/update/manifest.ts';
import { ReleaseRecord } from './schemas.ts';

export class ReleaseConflictError extends Error {
  override name = 'ReleaseConflictError';
}
export class UploadTooLargeError extends Error {
  override name = 'UploadTooLargeError';
}

export class ReleaseStore {
  readonly dir: string;
  private readonly pubkeys: string[];
  private readonly maxBytes: number;
  private records = new Map<string, ReleaseRecord>();
  private changing: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, pubkeys: string[], maxBytes: number) {
    this.dir = dir;
    this.pubkeys = pubkeys;
    this.maxBytes = maxBytes;
  }

  /** `pubkeys`: PEM text of the accepted release keys. */
  static async open(dir: string, pubkeys: string[], maxBytes: number): Promise<ReleaseStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const store = new ReleaseStore(dir, pubkeys, maxBytes);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(store.indexPath, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${store.indexPath} cannot be read (${(err as Error).message}); fix or remove it`, { cause: err });
    }
    if (Array.isArray(raw)) for (const r of raw) if (Value.Check(ReleaseRecord, r)) store.records.set(r.version, r);
    return store;
  }

  get indexPath(): string {
    return join(this.dir, 'index.json');
  }

  get keyCount(): number {
    return this.pubkeys.length;
  }

  list(): ReleaseRecord[] {
    return [...this.records.values()].sort((a, b) => (a.uploadedAt < b.uploadedAt ? 1 : -1));
  }

  get(version: string): ReleaseRecord | undefined {
    return this.records.get(version);
  }

  /** Where the bundle of a listed version lies. */
  bundlePath(version: string): string {
    return join(this.dir, `${version}.mbx`);
  }

  /**
   * Streams `body` to disk, verifies it and records it. Throws BundleError (refused bundle),
   * UploadTooLargeError, or ReleaseConflictError (the version exists with other bytes). The same
   * bytes again return the existing record with `created: false`.
   */
  async add(body: Readable, uploadedBy: string): Promise<{ record: ReleaseRecord; created: boolean }> {
    const tmp = join(this.dir, `.upload-${randomBytes(6).toString('hex')}.tmp`);
    try {
      const { sha256, size } = await this.receive(body, tmp);
      if (size === 0) throw new BundleError('unreadable', 'the upload is empty');
      if (this.pubkeys.length === 0) throw new BundleError('unknown-key', 'the fleet pins no release keys (config releasePubkeys): it cannot verify any bundle');
      const manifest = await verifyBundle(tmp, this.pubkeys);
      const { signature } = await readManifest(tmp);
      const record: ReleaseRecord = {
        version: manifest.version,
        sha256,
        size,
        keyId: signature.keyId,
        arch: manifest.arch,
        nodeVersion: manifest.nodeVersion,
        dataSchema: manifest.dataSchema,
        files: manifest.files.length,
        createdAt: manifest.createdAt,
        uploadedBy,
        uploadedAt: new Date().toISOString(),
      };
      return await this.change(async () => {
        const existing = this.records.get(record.version);
        if (existing) {
          if (existing.sha256 === sha256) return { record: existing, created: false };
          throw new ReleaseConflictError(`release ${record.version} exists already with other bytes (sha256 ${existing.sha256.slice(0, 16)}…); a version is immutable, build a new one`);
        }
        await fsyncPath(tmp);
        await renameDurable(tmp, this.bundlePath(record.version));
        this.records.set(record.version, record);
        await this.writeIndex();
        return { record, created: true };
      });
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async remove(version: string): Promise<boolean> {
    return this.change(async () => {
      if (!this.records.delete(version)) return false;
      await this.writeIndex();
      await rm(this.bundlePath(version), { force: true });
      await fsyncPath(this.dir);
      return true;
    });
  }

  /** Size on disk of a listed bundle (a missing file is a broken registry: say so). */
  async bundleSize(version: string): Promise<number> {
    return (await stat(this.bundlePath(version))).size;
  }

  private async receive(body: Readable, tmp: string): Promise<{ sha256: string; size: number }> {
    const hash = createHash('sha256');
    let size = 0;
    const max = this.maxBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > max) return done(new UploadTooLargeError(`the bundle is larger than the ${Math.round(max / 1e6)} MB the fleet accepts (config releaseMaxMb)`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(body, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    return { sha256: hash.digest('hex'), size };
  }

  private writeIndex(): Promise<void> {
    return writeFileDurable(this.indexPath, `${JSON.stringify(this.list(), null, 1)}\n`, 0o600);
  }

  private change<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.changing.then(fn);
    this.changing = run.catch(() => undefined);
    return run;
  }
}
