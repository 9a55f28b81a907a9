// Pixel values of a native DICOM file as dcmtk reads them (dcmdump +W), reduced to a form that
// two encodings of the same image share: colour-by-pixel, each sample masked to Bits Stored.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dcmdumpTags, run } from '../../helpers/dcmtk.ts';

export interface DcmtkPixels {
  /** sha256 of the normalised samples. */
  sha256: string;
  samples: number;
  bitsStored: number;
}

const TAGS = ['0028,0002', '0028,0006', '0028,0008', '0028,0010', '0028,0011', '0028,0100', '0028,0101'];

/** Reads `file` (native syntax) with dcmtk; `scratch` receives dcmdump's raw pixel file. */
export async function dcmtkPixels(file: string, scratch: string): Promise<DcmtkPixels> {
  const tags = await dcmdumpTags(file, TAGS);
  const num = (t: string, dflt?: number): number => {
    const v = tags.get(t);
    if (v === undefined || v === '') {
      if (dflt === undefined) throw new Error(`${file}: ${t} missing`);
      return dflt;
    }
    return Number(v.split('\\')[0]);
  };
  const spp = num('0028,0002', 1);
  const planar = num('0028,0006', 0);
  const frames = num('0028,0008', 1);
  const pixels = num('0028,0010') * num('0028,0011');
  const allocated = num('0028,0100');
  const stored = num('0028,0101');
  const dump = await run('dcmdump', ['-q', '+L', '+W', scratch, '+P', '7fe0,0010', file]);
  if (dump.code !== 0) throw new Error(`dcmdump +W ${file} failed: ${dump.stderr}`);
  // "(7fe0,0010) OW =<scratch>/<name>.N.raw  # ...": the top-level Pixel Data comes last in file
  // order, after any icon image inside a sequence.
  const lines = [...dump.stdout.matchAll(/\(7fe0,0010\) O[BW] =(\S+)/g)];
  const path = lines[lines.length - 1]?.[1];
  if (!path) throw new Error(`dcmdump +W ${file}: no native Pixel Data line`);
  const raw = readFileSync(path.startsWith('/') ? path : join(process.cwd(), path));
  const hash = createHash('sha256');
  const total = pixels * spp * frames;
  if (allocated === 1) {
    // Bit-packed: compared as stored.
    hash.update(raw.subarray(0, Math.ceil(total / 8)));
    return { sha256: hash.digest('hex'), samples: total, bitsStored: stored };
  }
  const bytes = allocated / 8;
  const mask = stored >= 32 ? 0xffffffff : 2 ** stored - 1;
  const out = Buffer.alloc(total * 4);
  const per = pixels * spp;
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < per; i++) {
      // Colour-by-plane: sample c of pixel p sits at c * pixels + p.
      const src = planar === 1 && spp > 1 ? (i % spp) * pixels + Math.floor(i / spp) : i;
      const at = (f * per + src) * bytes;
      const v = bytes === 1 ? raw[at]! : bytes === 2 ? raw.readUInt16LE(at) : raw.readUInt32LE(at);
      out.writeUInt32LE((v & mask) >>> 0, (f * per + i) * 4);
    }
  }
  hash.update(out);
  return { sha256: hash.digest('hex'), samples: total, bitsStored: stored };
}
