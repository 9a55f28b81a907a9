// The source a release is made from: the checkout's HEAD commit — not the working tree, where
// uncommitted edits (say, a new import of a file not yet added) would ship half a change and the
// same commit could give different bundles. Outside a git checkout (a source tarball), the files
// on disk.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface SourceTree {
  /** The commit the files come from; undefined for a plain directory. */
  commit: string | undefined;
  /** Every regular file, repository-relative. */
  files: Set<string>;
  read(path: string): Buffer;
  executable(path: string): boolean;
  /** Paths whose working-tree state differs from the commit (not in the release). */
  dirty: string[];
  /** Loads many files at once (one git process instead of one per file). */
  prefetch(paths: Iterable<string>): void;
}

const git = (root: string, args: string[]): Buffer => execFileSync('git', args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 });

function gitTree(root: string): SourceTree | undefined {
  let commit: string;
  try {
    commit = git(root, ['rev-parse', '--verify', 'HEAD']).toString().trim();
  } catch {
    return undefined;
  }
  const blobs = new Map<string, { sha: string; mode: string }>();
  for (const rec of git(root, ['ls-tree', '-r', '-z', '--full-tree', commit]).toString('utf8').split('\0')) {
    const m = /^(\d{6}) blob ([0-9a-f]+)\t(.+)$/s.exec(rec);
    // Symlinks (120000) and submodules never ship; bundles carry regular files only.
    if (m && (m[1] === '100644' || m[1] === '100755')) blobs.set(m[3]!, { mode: m[1], sha: m[2]! });
  }
  const cache = new Map<string, Buffer>();
  const dirty: string[] = [];
  const recs = git(root, ['status', '--porcelain', '-z', '--untracked-files=no']).toString('utf8').split('\0');
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i]!;
    if (r.length < 4) continue;
    dirty.push(r.slice(3));
    if (r[0] === 'R' || r[0] === 'C') i++; // a rename's second record is its old path
  }
  return {
    commit,
    files: new Set(blobs.keys()),
    read(path) {
      const b = blobs.get(path);
      if (!b) throw new Error(`${path} is not in commit ${commit}`);
      let buf = cache.get(b.sha);
      if (!buf) {
        buf = git(root, ['cat-file', 'blob', b.sha]);
        cache.set(b.sha, buf);
      }
      return buf;
    },
    executable: (path) => blobs.get(path)?.mode === '100755',
    dirty,
    prefetch(paths) {
      const shas = [...new Set([...paths].map((p) => blobs.get(p)?.sha).filter((sha): sha is string => !!sha && !cache.has(sha)))];
      if (shas.length === 0) return;
      const out = execFileSync('git', ['cat-file', '--batch'], { cwd: root, input: `${shas.join('\n')}\n`, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 30 });
      // Each object: "<sha> blob <size>\n<size bytes>\n".
      let off = 0;
      while (off < out.length) {
        const nl = out.indexOf(0x0a, off);
        const [sha, type, size] = out.subarray(off, nl).toString('ascii').split(' ');
        if (type !== 'blob' || !sha || size === undefined) throw new Error(`git cat-file --batch: unexpected '${out.subarray(off, nl).toString()}'`);
        cache.set(sha, out.subarray(nl + 1, nl + 1 + Number(size)));
        off = nl + 1 + Number(size) + 1;
      }
    },
  };
}

async function dirTree(root: string, dirs: readonly string[], files: readonly string[]): Promise<SourceTree> {
  const out = new Set<string>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory() && e.name !== 'node_modules') await walk(p);
      else if (e.isFile()) out.add(p);
    }
  };
  for (const d of dirs) if (existsSync(join(root, d))) await walk(d);
  for (const f of files) if (existsSync(join(root, f))) out.add(f);
  return {
    commit: undefined,
    files: out,
    read: (path) => readFileSync(join(root, path)),
    executable: (path) => (statSync(join(root, path)).mode & 0o111) !== 0,
    dirty: [],
    prefetch: () => undefined,
  };
}

/** HEAD of the git checkout at `root`, else the given directories and files on disk. */
export async function sourceTree(root: string, fallback: { dirs: readonly string[]; files: readonly string[] }): Promise<SourceTree> {
  return gitTree(root) ?? dirTree(root, fallback.dirs, fallback.files);
}
