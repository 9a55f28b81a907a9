// `buildBundle`: a staged directory → a signed, reproducible `.mbx` (see shared/update/manifest.ts).
// Two passes over the stage: hash every file for the manifest, then stream them into the tar; the
// second pass re-hashes so a file that changed in between fails the build instead of the install.
import { createHash, randomBytes, sign } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { BUNDLE_FORMAT, MANIFEST_ENTRY, PAYLOAD_PREFIX, SIGNATURE_ENTRY, canonicalJson, type BundleFile, type BundleManifest, type BundleSignature } from '../../shared/update/manifest.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import { checkManifest } from './checks.ts';
import { signingKey } from './keys.ts';
import { TarWriter } from './tar-write.ts';

export interface BuildOptions {
  stageDir: string;
  out: string;
  version: string;
  arch: 'arm64' | 'x64';
  nodeVersion: string;
  createdAt: string;
  dataSchema: number;
  privateKeyPem: string;
}

export interface StagedFile {
  path: string;
  abs: string;
  size: number;
  mode: 0o755 | 0o644;
}

/** Every regular file under `dir`, sorted by path; anything else (links, devices …) is refused. */
export async function listStage(dir: string): Promise<StagedFile[]> {
  const root = resolve(dir);
  const out: StagedFile[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    for (const name of await readdir(abs)) {
      const childAbs = join(abs, name);
      const childRel = rel ? `${rel}/${name}` : name;
      const st = await lstat(childAbs);
      if (st.isDirectory()) await walk(childAbs, childRel);
      else if (st.isFile()) out.push({ path: childRel, abs: childAbs, size: st.size, mode: st.mode & 0o111 ? 0o755 : 0o644 });
      else throw new Error(`stage ${root} holds ${st.isSymbolicLink() ? 'a symbolic link' : 'a special file'} at ${childRel}: bundles carry regular files only`);
    }
  };
  await walk(root, '');
  // Code-unit order, the same comparison checkManifest applies: independent of locale.
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Files up to this size are read in one call: a stream per file costs more than the hashing. */
const SMALL_FILE = 1 << 20;

async function sha256File(file: StagedFile): Promise<{ sha256: string; size: number }> {
  if (file.size <= SMALL_FILE) {
    const buf = await readFile(file.abs);
    return { sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length };
  }
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file.abs, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    size += chunk.length;
  }
  return { sha256: h.digest('hex'), size };
}

/** A file's bytes for the tar, checked to still hash to what the manifest says (whole if small, else streamed). */
async function checkedBody(file: StagedFile & { sha256: string }): Promise<Buffer | AsyncIterable<Buffer>> {
  if (file.size > SMALL_FILE) return checkedChunks(file);
  const buf = await readFile(file.abs);
  if (createHash('sha256').update(buf).digest('hex') !== file.sha256) throw new Error(`${file.path} changed while being bundled`);
  return buf;
}

async function* checkedChunks(file: StagedFile & { sha256: string }): AsyncGenerator<Buffer> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file.abs, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    yield chunk;
  }
  if (h.digest('hex') !== file.sha256) throw new Error(`${file.path} changed while being bundled`);
}

export function isoToEpochSeconds(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`createdAt '${iso}' is not an ISO 8601 date`);
  return Math.floor(ms / 1000);
}

export async function buildBundle(opts: BuildOptions): Promise<{ manifest: BundleManifest; sha256: string; size: number }> {
  const { key, keyId } = signingKey(opts.privateKeyPem);
  const staged = await listStage(opts.stageDir);
  if (staged.length === 0) throw new Error(`stage ${opts.stageDir} holds no files`);
  const files: (StagedFile & BundleFile)[] = [];
  for (const f of staged) {
    const { sha256, size } = await sha256File(f);
    files.push({ ...f, size, sha256 });
  }
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    version: opts.version,
    arch: opts.arch,
    nodeVersion: opts.nodeVersion,
    createdAt: opts.createdAt,
    dataSchema: opts.dataSchema,
    files: files.map(({ path, size, sha256, mode }) => ({ path, size, sha256, mode })),
  };
  // The builder signs nothing the verifier would refuse.
  checkManifest(manifest);
  const manifestBytes = Buffer.from(canonicalJson(manifest), 'utf8');
  const signature: BundleSignature = { algorithm: 'ed25519', keyId, signature: sign(null, manifestBytes, key).toString('base64') };
  const signatureBytes = Buffer.from(canonicalJson(signature), 'utf8');
  const mtime = isoToEpochSeconds(opts.createdAt);

  const out = resolve(opts.out);
  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(4).toString('hex')}.tmp`);
  const outHash = createHash('sha256');
  let outSize = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      outHash.update(chunk);
      outSize += chunk.length;
      cb(null, chunk);
    },
  });
  // Level 9: a release is built once and downloaded by every box. No file name or time in the gzip
  // header (node:zlib writes neither), so the bytes depend on the inputs alone.
  const gzip = createGzip({ level: 9 });
  const written = pipeline(gzip, counter, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
  // Observed here so an early failure of either side never becomes an unhandled rejection; the race
  // below stops feeding a pipeline that failed (disk full) instead of waiting for 'drain' forever.
  written.catch(() => undefined);
  try {
    const tar = new TarWriter(gzip);
    await Promise.race([
      (async () => {
        await tar.addFile({ path: MANIFEST_ENTRY, size: manifestBytes.length, mode: 0o644, mtime }, manifestBytes);
        await tar.addFile({ path: SIGNATURE_ENTRY, size: signatureBytes.length, mode: 0o644, mtime }, signatureBytes);
        for (const f of files) await tar.addFile({ path: PAYLOAD_PREFIX + f.path, size: f.size, mode: f.mode, mtime }, await checkedBody(f));
        await tar.finish();
        gzip.end();
      })(),
      written.then(() => undefined),
    ]);
    await written;
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, out);
    await fsyncPath(dirname(out));
  } catch (err) {
    gzip.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  return { manifest, sha256: outHash.digest('hex'), size: outSize };
}
