// Reading a bundle without trusting it: manifest.json (size-capped) and its signature come first;
// the signature must verify with a PINNED key over the exact manifest bytes before the manifest is
// even parsed as a manifest; then every payload entry is hashed while it streams past and must
// match the manifest in order, size and sha256. Nothing after the archive's end is accepted.
import { createHash, verify as verifySig } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { BundleError, MANIFEST_ENTRY, PAYLOAD_PREFIX, SIGNATURE_ENTRY, type BundleFile, type BundleManifest, type BundleSignature } from '../../shared/update/manifest.ts';
import { MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, checkManifest, checkSignature, parseJsonEntry } from './checks.ts';
import { pinnedKeys } from './keys.ts';
import { TarReader } from './tar-read.ts';

export interface VerifyOptions {
  /** Refuse a bundle built for another architecture ('wrong-arch'). */
  arch?: 'arm64' | 'x64';
}

/** Receives each payload file while it is verified; `end` runs only once its hash matched. */
export interface PayloadSink {
  begin(file: BundleFile): Promise<void>;
  write(chunk: Buffer): Promise<void>;
  end(file: BundleFile): Promise<void>;
}

interface OpenBundle {
  reader: TarReader;
  /** Throws 'unreadable' when compressed bytes were left over (garbage after the gzip stream). */
  finish(): void;
  close(): void;
}

async function openBundle(file: string): Promise<OpenBundle> {
  let size: number;
  try {
    const fh = await open(file, 'r');
    try {
      size = (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new BundleError('unreadable', `cannot open ${file}: ${(err as Error).message}`);
  }
  const input = createReadStream(file, { highWaterMark: 1 << 18 });
  const gunzip = createGunzip({ chunkSize: 1 << 16 });
  input.on('error', (err) => gunzip.destroy(err));
  input.pipe(gunzip);
  return {
    reader: new TarReader(gunzip as AsyncIterable<Buffer>),
    finish() {
      // node:zlib silently drops bytes after a gzip member that are not another member (zeros,
      // appended junk): the count of bytes it consumed tells.
      if (gunzip.bytesWritten !== size) throw new BundleError('unreadable', `${size - gunzip.bytesWritten} bytes of trailing data after the compressed archive`);
    },
    close() {
      input.destroy();
      gunzip.destroy();
    },
  };
}

async function readHeaderEntries(reader: TarReader): Promise<{ manifestBytes: Buffer; signature: BundleSignature }> {
  const first = await reader.next();
  if (first?.path !== MANIFEST_ENTRY) throw new BundleError('unreadable', `first entry must be ${MANIFEST_ENTRY}, found ${first ? `'${first.path}'` : 'none'}`);
  const manifestBytes = await reader.readBody(MAX_MANIFEST_BYTES, MANIFEST_ENTRY);
  const second = await reader.next();
  if (second?.path !== SIGNATURE_ENTRY) throw new BundleError('unreadable', `second entry must be ${SIGNATURE_ENTRY}, found ${second ? `'${second.path}'` : 'none'}`);
  const signature = checkSignature(parseJsonEntry(await reader.readBody(MAX_SIGNATURE_BYTES, SIGNATURE_ENTRY), SIGNATURE_ENTRY, 'signature-invalid'));
  return { manifestBytes, signature };
}

function checkSigned(manifestBytes: Buffer, signature: BundleSignature, pubkeys: readonly string[]): void {
  const keys = pinnedKeys(pubkeys);
  const key = keys.get(signature.keyId);
  if (!key) throw new BundleError('unknown-key', `signed by key ${signature.keyId}, which is not pinned (pinned: ${[...keys.keys()].join(', ')})`);
  const sig = Buffer.from(signature.signature, 'base64');
  if (sig.length !== 64 || !verifySig(null, manifestBytes, key, sig)) throw new BundleError('signature-invalid', `the signature does not verify with key ${signature.keyId}`);
}

async function verifyPayload(reader: TarReader, manifest: BundleManifest, sink: PayloadSink | undefined): Promise<void> {
  const index = new Map(manifest.files.map((f, i) => [f.path, i]));
  let next = 0;
  for (;;) {
    const h = await reader.next();
    if (!h) break;
    const rel = h.path.startsWith(PAYLOAD_PREFIX) ? h.path.slice(PAYLOAD_PREFIX.length) : undefined;
    const at = rel === undefined ? undefined : index.get(rel);
    if (at === undefined) throw new BundleError('file-unexpected', `entry '${h.path}' is not in the manifest`);
    if (at < next) throw new BundleError('unreadable', `entry '${h.path}' appears twice or out of order`);
    if (at > next) throw new BundleError('unreadable', `entry '${h.path}' is out of order: '${PAYLOAD_PREFIX}${manifest.files[next]!.path}' must come first`);
    const f = manifest.files[at]!;
    if (h.size !== f.size) throw new BundleError('file-mismatch', `${f.path}: ${h.size} bytes in the bundle, the manifest says ${f.size}`);
    await sink?.begin(f);
    const hash = createHash('sha256');
    for await (const chunk of reader.body()) {
      hash.update(chunk);
      await sink?.write(chunk);
    }
    if (hash.digest('hex') !== f.sha256) throw new BundleError('file-mismatch', `${f.path}: sha256 differs from the manifest`);
    await sink?.end(f);
    next++;
  }
  if (next < manifest.files.length) {
    const missing = manifest.files.length - next;
    throw new BundleError('file-missing', `${missing} file(s) of the manifest are missing, first '${manifest.files[next]!.path}'`);
  }
}

/**
 * The whole check, in the order that never trusts unsigned bytes; `sink` sees payload files as
 * they pass. Resolves with the manifest only when everything matched.
 */
export async function readVerified(file: string, pubkeys: readonly string[], opts: VerifyOptions, sink?: PayloadSink): Promise<BundleManifest> {
  const b = await openBundle(file);
  try {
    const { manifestBytes, signature } = await readHeaderEntries(b.reader);
    checkSigned(manifestBytes, signature, pubkeys);
    const manifest = checkManifest(parseJsonEntry(manifestBytes, MANIFEST_ENTRY, 'manifest-invalid'));
    if (opts.arch && manifest.arch !== opts.arch) throw new BundleError('wrong-arch', `bundle is for ${manifest.arch}, this box is ${opts.arch}`);
    await verifyPayload(b.reader, manifest, sink);
    b.finish();
    return manifest;
  } finally {
    b.close();
  }
}

export function verifyBundle(file: string, pubkeys: string[], opts: VerifyOptions = {}): Promise<BundleManifest> {
  return readVerified(file, pubkeys, opts);
}

/** The manifest and signature, unverified: for display only, never for a decision. */
export async function readManifest(file: string): Promise<{ manifest: BundleManifest; signature: BundleSignature }> {
  const b = await openBundle(file);
  try {
    const { manifestBytes, signature } = await readHeaderEntries(b.reader);
    return { manifest: checkManifest(parseJsonEntry(manifestBytes, MANIFEST_ENTRY, 'manifest-invalid')), signature };
  } finally {
    b.close();
  }
}
