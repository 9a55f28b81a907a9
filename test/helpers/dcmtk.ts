// Typed wrappers around the dcmtk command line tools that the integration and crash tests use as
// real DICOM peers. They never throw on a non-zero exit: tests assert on `code`. (A long-running
// storescp comes from ./storescp.ts.)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';

export interface RunResult {
  /** Exit status; 128 + signal number when the tool was killed (e.g. on timeout). */
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface PeerOptions extends RunOptions {
  host?: string;
  port: number;
  /** Our AE title (-aet). */
  callingAe?: string;
  /** The peer's AE title (-aec). */
  calledAe?: string;
  /** Inserted before the host/port/file arguments. */
  extraArgs?: string[];
}

// dcmtk turns Nagle off only when TCP_NODELAY is set in its environment; without it each small
// PDU (every C-STORE command and response) can sit ~40 ms waiting on the peer's delayed ACK.
// Measured here: 19 MR slices to storescp took ~50 ms with it and ~300 ms without.
const DCMTK_ENV = { TCP_NODELAY: '1' };

// storescu logs one warning per bogus element, so a padded file can yield tens of MB of stderr;
// keep only the end, where the summary and the errors are.
const MAX_OUTPUT = 1 << 20;

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function run(tool: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(tool, args, {
      env: { ...process.env, ...DCMTK_ENV, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = tail();
    const err = tail();
    child.stdout.on('data', out.push);
    child.stderr.on('data', err.push);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    const finish = (code: number) => {
      clearTimeout(timer);
      resolve({ code, stdout: out.text(), stderr: err.text(), durationMs: performance.now() - started, timedOut });
    };
    child.on('error', (e) => {
      err.push(Buffer.from(`${tool}: ${e.message}\n`));
      finish(127);
    });
    child.on('close', (code, signal) => finish(code ?? 128 + (SIGNALS[signal ?? ''] ?? 0)));
  });
}

function tail() {
  let chunks: Buffer[] = [];
  let size = 0;
  let dropped = 0;
  return {
    push: (b: Buffer) => {
      chunks.push(b);
      size += b.length;
      if (size > 2 * MAX_OUTPUT) {
        const all = Buffer.concat(chunks);
        dropped += all.length - MAX_OUTPUT;
        chunks = [all.subarray(all.length - MAX_OUTPUT)];
        size = MAX_OUTPUT;
      }
    },
    text: () => (dropped ? `[... ${dropped} bytes dropped]\n` : '') + Buffer.concat(chunks).toString('utf8'),
  };
}

function aeArgs(o: PeerOptions): string[] {
  return [...(o.callingAe ? ['-aet', o.callingAe] : []), ...(o.calledAe ? ['-aec', o.calledAe] : [])];
}

function peer(o: PeerOptions): string[] {
  return [o.host ?? '127.0.0.1', String(o.port)];
}

// Directories are only accepted with +sd (scan); plain file lists do not need it.
async function scanArgs(paths: string[]): Promise<string[]> {
  const dirs = await Promise.all(paths.map(async (p) => (await stat(p)).isDirectory()));
  return dirs.some(Boolean) ? ['+sd', '+r'] : [];
}

export function echoscu(opts: PeerOptions): Promise<RunResult> {
  return run('echoscu', [...aeArgs(opts), ...(opts.extraArgs ?? []), ...peer(opts)], opts);
}

/**
 * Which storescu option makes it propose a given transfer syntax, so a file goes out as it is
 * stored instead of being converted (or failing: dcmtk has no JPEG 2000 decoder, so a J2K file
 * sent without -xw aborts the association). storescu proposes one compressed syntax per run (plus
 * the uncompressed ones), so files in different compressed syntaxes need separate runs. Its
 * default (-x=) proposes explicit LE in one context and big endian + implicit in another: an SCP
 * that prefers explicit LE therefore receives implicit files converted; -xi keeps them implicit.
 */
export const STORESCU_PROPOSE: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': '-xi',
  '1.2.840.10008.1.2.1': '-xe',
  '1.2.840.10008.1.2.1.99': '-xd',
  '1.2.840.10008.1.2.2': '-xb',
  '1.2.840.10008.1.2.4.50': '-xy',
  '1.2.840.10008.1.2.4.51': '-xx',
  '1.2.840.10008.1.2.4.70': '-xs',
  '1.2.840.10008.1.2.4.80': '-xt',
  '1.2.840.10008.1.2.4.81': '-xu',
  '1.2.840.10008.1.2.4.90': '-xv',
  '1.2.840.10008.1.2.4.91': '-xw',
  '1.2.840.10008.1.2.5': '-xr',
  '1.2.840.10008.1.2.4.100': '-xm',
  '1.2.840.10008.1.2.4.102': '-xn',
};

export interface StorescuOptions extends PeerOptions {
  /** Transfer syntax UID to propose (see STORESCU_PROPOSE); default: uncompressed only. */
  propose?: string;
  /**
   * -R: propose only the SOP classes found in the files. Needed for classes outside storescu's
   * built-in list (it fills the 128 presentation contexts with its own list otherwise).
   */
  requiredOnly?: boolean;
}

/**
 * storescu halts at the first file it cannot send. Beware -nh (in extraArgs): after a failed
 * send the association is aborted, the rest are not sent, and the exit status is still 0.
 */
export async function storescu(files: string[], opts: StorescuOptions): Promise<RunResult> {
  const flag = opts.propose === undefined ? undefined : STORESCU_PROPOSE[opts.propose];
  if (opts.propose !== undefined && !flag) throw new Error(`storescu cannot propose ${opts.propose}`);
  const args = [
    ...aeArgs(opts),
    ...(flag ? [flag] : []),
    ...(opts.requiredOnly ? ['-R'] : []),
    ...(await scanArgs(files)),
    ...(opts.extraArgs ?? []),
    ...peer(opts),
    ...files,
  ];
  return run('storescu', args, opts);
}

export interface DcmsendOptions extends PeerOptions {
  /** -nh: keep going after a file that cannot be read or stored (default true). */
  noHalt?: boolean;
  /** Default 'never' (-dn): compressed files go out in their own syntax. */
  decompress?: 'never' | 'lossless' | 'lossy';
}

/**
 * dcmsend proposes, per SOP class, the syntaxes of the files it is given: with -dn each compressed
 * file is sent in its own syntax (mixed syntaxes in one run work). Uncompressed files share one
 * context listing explicit LE, big endian and implicit, so the SCP picks which one they arrive in.
 */
export async function dcmsend(files: string[], opts: DcmsendOptions): Promise<RunResult> {
  const decompress = { never: '-dn', lossless: '+dls', lossy: '+dly' }[opts.decompress ?? 'never'];
  const args = [
    ...aeArgs(opts),
    ...(opts.noHalt === false ? [] : ['-nh']),
    decompress,
    ...(await scanArgs(files)),
    ...(opts.extraArgs ?? []),
    ...peer(opts),
    ...files,
  ];
  return run('dcmsend', args, opts);
}

/**
 * Values of top-level elements, by tag ("gggg,eeee") or dcmtk dictionary name. Absent tags are
 * missing from the map; empty ones map to ''. UIDs come back as numbers, not dcmtk's names.
 * +E reads damaged files too (a truncated file still yields its UIDs); +uc decodes standard
 * elements that a writer stored with VR UN (gdcmconv does that).
 */
export async function dcmdumpTags(file: string, tags: string[]): Promise<Map<string, string>> {
  return (await dcmdumpTagsOfFiles([file], tags))[0] ?? new Map();
}

/**
 * dcmdumpTags for many files in one dcmdump run per 200 files: loading dcmtk's dictionary costs
 * ~20 ms per process, far more than reading a header.
 */
export async function dcmdumpTagsOfFiles(files: string[], tags: string[]): Promise<Map<string, string>[]> {
  const out: Map<string, string>[] = [];
  for (let i = 0; i < files.length; i += 200) {
    const batch = files.slice(i, i + 200);
    const args = ['-q', '+E', '+uc', '-Un', '+L', '+F', ...tags.flatMap((t) => ['+P', t]), ...batch];
    const res = await run('dcmdump', args);
    // +F heads each file's output with "# dcmdump (n/total): path".
    const sections = new Map<number, string>();
    for (const part of res.stdout.split(/^# dcmdump \(/m).slice(1)) {
      sections.set(parseInt(part, 10) - 1, part);
    }
    batch.forEach((_, j) => {
      const elements = parseDump(sections.get(j) ?? '');
      const found = new Map<string, string>();
      for (const t of tags) {
        const el = elements.find((e) => e.tag === t.toLowerCase() || e.name === t);
        if (el) found.set(t, el.value);
      }
      out.push(found);
    });
  }
  return out;
}

export interface DumpElement {
  tag: string;
  vr: string;
  value: string;
  name: string;
}

/** The unindented (file meta and top-level dataset) elements of dcmdump output; run it with -Un +L. */
export function parseDump(stdout: string): DumpElement[] {
  return stdout.split('\n').flatMap((line) => {
    // "(0008,0016) UI [1.2.840...]   #  26, 1 SOPClassUID"; nested elements are indented.
    const m = /^\(([0-9a-f]{4},[0-9a-f]{4})\) (\S\S) (.*?)\s+#\s*\d+,\s*\d+\s+(\S+)$/.exec(line);
    return m ? [{ tag: m[1] ?? '', vr: m[2] ?? '', value: parseValue(m[3] ?? ''), name: m[4] ?? '' }] : [];
  });
}

function parseValue(raw: string): string {
  if (raw === '(no value available)') return '';
  const bracketed = /^\[(.*)\]$/.exec(raw);
  return bracketed ? (bracketed[1] ?? '') : raw;
}

export async function dcmdumpTag(file: string, tag: string): Promise<string | undefined> {
  return (await dcmdumpTags(file, [tag])).get(tag);
}

// Explicit VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/**
 * The bytes of a Part 10 file after its file meta group: what travels in a C-STORE. Walks the
 * group 0002 elements (always explicit VR little endian) rather than trusting (0002,0000), which
 * some files lack.
 */
export function datasetBytes(file: string): Buffer {
  const buf = readFileSync(file);
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new Error(`${file}: not a DICOM Part 10 file (no DICM prefix)`);
  }
  let pos = 132;
  while (pos + 8 <= buf.length && buf.readUInt16LE(pos) === 0x0002) {
    const vr = buf.toString('latin1', pos + 4, pos + 6);
    if (LONG_VRS.has(vr)) pos += 12 + buf.readUInt32LE(pos + 8);
    else pos += 8 + buf.readUInt16LE(pos + 6);
  }
  if (pos > buf.length) throw new Error(`${file}: file meta group runs past the end of the file`);
  return buf.subarray(pos);
}
