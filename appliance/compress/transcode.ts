// Single-threaded transcoding core: one stored Part 10 file to the syntax a destination wants,
// JPEG-LS or HTJ2K lossless or explicit VR little endian, proven lossless before it is written.
// Anything it cannot do safely goes as received, with the reason; only I/O errors throw.
import { createHash } from 'node:crypto';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import { encodingOf } from '../../shared/dicom/syntax.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import type { TargetSyntax, TranscodeRequest, TranscodeResult } from '../../shared/types/pipeline.ts';
import { CodecError, encodeHtj2k, encodeJpegLs, loadCodecs } from './codecs.ts';
import { DatasetError, elementBytes, encapsulatedPixelData, findElement, parseTopLevel, PIXEL_DATA, readUs, type TopLevel } from './elements.ts';
import { nativePixelData, patchDataset, rebuildMeta, usElement } from './output.ts';
import { encodeRestriction, frameBytes, readPixelModule, toStored, type PixelModule } from './pixels.ts';
import { classify, syntaxName, TARGET_UID } from './policy.ts';
import { toExplicitLittle } from './reencode.ts';
import { encapsulatedSource, geometryOf, nativeSource, type FrameSource } from './source.ts';
import { canonicalFrame, hashNative, samplesBytes, verifyOutput } from './verify.ts';

/** Node cannot read a file of 2 GiB or more into one Buffer. */
export const MAX_INPUT_BYTES = 2 ** 31 - 1;

export interface TranscodeTimings {
  /** Codec encode time only (the pixels' compression, summed over frames). */
  codecMs: number;
  /** Decoding the built file again and comparing hashes. */
  verifyMs: number;
  /** Everything in memory: parse, decode source, encode, assemble, verify. */
  totalMs: number;
}

export interface BufferOutcome {
  result: TranscodeResult;
  /** The file to write, when the outcome is 'transcoded'. */
  output?: Buffer;
  timings: TranscodeTimings;
}

const TAG_PLANAR = 0x00280006;
const TAG_PHOTOMETRIC = 0x00280004;

interface Prepared {
  dataset: Buffer;
  top: TopLevel;
  pm: PixelModule;
  source: FrameSource;
}

/** Parses a file down to its frame source; a string is the reason it goes as received. */
async function prepare(file: Buffer, sourceUid: string, datasetOffset: number): Promise<Prepared | string> {
  const kind = classify(sourceUid);
  if (kind === 'lossy') return `lossy source (${syntaxName(sourceUid)}) is never re-encoded`;
  if (kind === 'unknown') return `unsupported transfer syntax ${sourceUid}`;
  const enc = encodingOf(sourceUid);
  let dataset = file.subarray(datasetOffset);
  let pixelsBigEndian = false;
  let pixelVr: string | undefined;
  if (enc.deflated) {
    try {
      dataset = inflateRawSync(dataset);
    } catch (err) {
      return `deflated dataset does not inflate: ${(err as Error).message}`;
    }
  }
  if (!enc.explicitVr || !enc.littleEndian) {
    const r = toExplicitLittle(dataset, enc);
    dataset = r.dataset;
    pixelsBigEndian = r.pixelDataBigEndian;
    pixelVr = r.pixelDataVr;
  }
  const top = parseTopLevel(dataset);
  const pixels = findElement(top, PIXEL_DATA);
  if (!pixels) {
    const float = findElement(top, 0x7fe00008) ?? findElement(top, 0x7fe00009);
    return float ? 'float pixel data: no integer lossless codec applies' : 'no pixel data';
  }
  const pm = readPixelModule(dataset, top);
  if (typeof pm === 'string') return pm;
  const source =
    kind === 'native'
      ? nativeSource(dataset, pixels, pm, pixelsBigEndian, pixelVr)
      : encapsulatedSource(dataset, pixels, pm, sourceUid, await loadCodecs());
  if (typeof source === 'string') return `${syntaxName(sourceUid)} source: ${source}`;
  return { dataset, top, pm, source };
}

/** PS3.5 A.2: OW above 8 bits; OB, equally valid, for 8 bits and fewer. */
const pixelVr = (pm: PixelModule): string => (pm.bitsAllocated > 8 ? 'OW' : 'OB');

/** The new Pixel Data and attribute patches, plus the source pixels' hash. */
async function encode(p: Prepared, target: Exclude<TargetSyntax, 'as-received'>, timings: TranscodeTimings): Promise<{ patches: Map<number, Buffer | null>; hash: string; pmOut: PixelModule }> {
  const { pm, source, dataset, top } = p;
  const patches = new Map<number, Buffer | null>();
  // An Extended Offset Table (and its lengths) describes the source's fragments, not the new ones.
  patches.set(0x7fe00001, null);
  patches.set(0x7fe00002, null);
  if (source.photometric) patches.set(TAG_PHOTOMETRIC, elementBytes(TAG_PHOTOMETRIC, 'CS', Buffer.from(source.photometric, 'latin1')));
  if (target === 'explicit-le' && source.nativeValue) {
    // Native to native: the stored bytes go across as they are (only byte order may change).
    const need = Math.ceil(frameBytes(pm) * pm.frames);
    patches.set(PIXEL_DATA, nativePixelData(source.nativeValue.subarray(0, need), pixelVr(pm)));
    return { patches, hash: hashNative(source, pm), pmOut: pm };
  }
  // Decoded or encoded frames are colour-by-pixel: PS3.5 8.2.3/8.2.4 want Planar Configuration 0.
  const planar = findElement(top, TAG_PLANAR);
  if (planar && readUs(dataset, planar) !== 0) patches.set(TAG_PLANAR, usElement(TAG_PLANAR, 0));
  // HTJ2K colour is coded with the reversible colour transform (see encodeHtj2k).
  if (target === 'htj2k' && pm.samplesPerPixel === 3) patches.set(TAG_PHOTOMETRIC, elementBytes(TAG_PHOTOMETRIC, 'CS', Buffer.from('YBR_RCT', 'latin1')));
  const pmOut = { ...pm, planar: 0, photometric: source.photometric ?? pm.photometric };
  const hash = createHash('sha256');
  const parts: Uint8Array[] = [];
  const codecs = target === 'explicit-le' ? undefined : await loadCodecs();
  const g = geometryOf(pm);
  for (let i = 0; i < pm.frames; i++) {
    const samples = canonicalFrame(source, pm, i);
    hash.update(samplesBytes(samples));
    if (!codecs) {
      parts.push(toStored(samples, pm));
      continue;
    }
    const t = performance.now();
    parts.push(target === 'jpeg-ls' ? encodeJpegLs(codecs, samples, g) : encodeHtj2k(codecs, samples, g));
    timings.codecMs += performance.now() - t;
  }
  if (codecs) patches.set(PIXEL_DATA, encapsulatedPixelData(parts));
  else patches.set(PIXEL_DATA, nativePixelData(Buffer.concat(parts), pixelVr(pm)));
  return { patches, hash: hash.digest('hex'), pmOut };
}

async function run(file: Buffer, target: TargetSyntax, timings: TranscodeTimings): Promise<{ output: Buffer; hash: string; uid: string } | { reason: string }> {
  if (target === 'as-received') return { reason: 'as-received requested' };
  let meta;
  try {
    meta = parseFileMeta(file);
  } catch (err) {
    return { reason: `not a readable Part 10 file: ${(err as Error).message}` };
  }
  const uid = TARGET_UID[target];
  if (meta.transferSyntaxUid === uid) return { reason: `already ${syntaxName(uid)}` };
  const p = await prepare(file, meta.transferSyntaxUid, meta.datasetOffset);
  if (typeof p === 'string') return { reason: p };
  if (target !== 'explicit-le') {
    const restriction = encodeRestriction({ ...p.pm, photometric: p.source.photometric ?? p.pm.photometric }, target);
    if (restriction) return { reason: restriction };
  }
  const { patches, hash, pmOut } = await encode(p, target, timings);
  const output = Buffer.concat([rebuildMeta(file, meta.datasetOffset, uid), ...patchDataset(p.dataset, p.top, patches)]);
  const t = performance.now();
  const failed = verifyOutput(output, uid, pmOut, await loadCodecs(), hash);
  timings.verifyMs = performance.now() - t;
  return failed ? { reason: failed } : { output, hash, uid };
}

/** Transcodes a whole file held in memory; nothing is written. Never throws for bad content. */
export async function transcodeBuffer(file: Buffer, target: TargetSyntax): Promise<BufferOutcome> {
  const started = performance.now();
  const timings: TranscodeTimings = { codecMs: 0, verifyMs: 0, totalMs: 0 };
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run(file, target, timings);
  } catch (err) {
    // Malformed content surfaces as parse or codec errors; anything else is still about this
    // object's bytes (no I/O happens here), so it is recorded rather than thrown.
    const e = err as Error;
    r = { reason: err instanceof DatasetError || err instanceof CodecError ? e.message : `transcoding failed: ${e.name}: ${e.message}` };
  }
  timings.totalMs = performance.now() - started;
  const base = { inputSize: file.length, encodeMs: timings.totalMs };
  if ('reason' in r) {
    let sourceUid = '';
    try {
      sourceUid = parseFileMeta(file).transferSyntaxUid;
    } catch {
      // Not Part 10: nothing to name.
    }
    return { result: { outcome: 'unchanged', transferSyntaxUid: sourceUid, size: file.length, reason: r.reason, ...base }, timings };
  }
  return { result: { outcome: 'transcoded', transferSyntaxUid: r.uid, size: r.output.length, pixelSha256: r.hash, ...base }, output: r.output, timings };
}

/**
 * Transcodes `inputPath` for `target`. When the outcome is 'transcoded' the file is written to
 * `outputPath` and fsynced; otherwise nothing is written. Throws only when reading or writing fails.
 */
export async function transcodeFile(req: TranscodeRequest): Promise<TranscodeResult> {
  const io = async <T>(what: string, path: string, op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw new Error(`transcode ${req.target}: ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const info = await io('stat', req.inputPath, () => stat(req.inputPath));
  if (req.target === 'as-received' || info.size > MAX_INPUT_BYTES) {
    const head = await io('read', req.inputPath, () => readHead(req.inputPath));
    let uid = '';
    try {
      uid = parseFileMeta(head).transferSyntaxUid;
    } catch {
      // Not Part 10: nothing to name.
    }
    const reason = req.target === 'as-received' ? 'as-received requested' : `${info.size} bytes is too large to transcode in memory`;
    return { outcome: 'unchanged', transferSyntaxUid: uid, inputSize: info.size, size: info.size, reason, encodeMs: 0 };
  }
  const file = await io('read', req.inputPath, () => readFile(req.inputPath));
  const { result, output } = await transcodeBuffer(file, req.target);
  if (output) {
    await io('write', req.outputPath, () => writeFile(req.outputPath, output));
    await io('fsync', req.outputPath, () => fsyncPath(req.outputPath));
  }
  return result;
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
