// The data schema of a box's data directory and the migrations between schemas, with a backup that
// makes every migration undoable:
//
//   <dataDir>/schema.json                  {"schema": n} (absent: the base schema)
//   <dataDir>/.update-backup/backup.json   {from, to, paths, present} — written last: the backup is complete
//   <dataDir>/.update-backup/files/<path>  copies of what the migrations name in `touches`
//
// The new slot migrates at its first start. A migration that throws is undone at once; one that a
// crash interrupted is undone before it runs again. When the health window fails later (or the
// launcher rolls a crash loop back), the old slot finds the data ahead of its own schema and puts
// the backup back before it opens the store. The backup is dropped when the new release commits.
import { cp, lstat, mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../../shared/log.ts';
import { writeFileDurable } from '../../../shared/crypto/durable-file.ts';
import { fsyncPath } from '../../../shared/storage/fsync.ts';

export interface Migration {
  /** The schema it produces, from `to - 1`. */
  to: number;
  description: string;
  /** Paths relative to the data directory it may change, create or delete (files or directories). */
  touches: readonly string[];
  up(dataDir: string, log: Logger): Promise<void>;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

interface BackupMeta {
  from: number;
  to: number;
  paths: string[];
  /** Which of `paths` existed before (the others are removed on restore). */
  present: string[];
}

const schemaFile = (dataDir: string): string => join(dataDir, 'schema.json');
const backupDir = (dataDir: string): string => join(dataDir, '.update-backup');
const backupMeta = (dataDir: string): string => join(backupDir(dataDir), 'backup.json');
const backupFiles = (dataDir: string): string => join(backupDir(dataDir), 'files');

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** The data directory's schema; `base` when it has never been written. */
export async function readDataSchema(dataDir: string, base: number): Promise<number> {
  let text: string;
  try {
    text = await readFile(schemaFile(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return base;
    throw err;
  }
  const n = (JSON.parse(text) as { schema?: unknown }).schema;
  if (!Number.isInteger(n) || (n as number) < 1) throw new MigrationError(`${schemaFile(dataDir)} has no valid schema number`);
  return n as number;
}

export async function writeDataSchema(dataDir: string, schema: number): Promise<void> {
  await writeFileDurable(schemaFile(dataDir), `${JSON.stringify({ schema })}\n`);
}

async function readBackup(dataDir: string): Promise<BackupMeta | undefined> {
  try {
    return JSON.parse(await readFile(backupMeta(dataDir), 'utf8')) as BackupMeta;
  } catch {
    return undefined;
  }
}

/** fsyncs every file and directory under `p` (fs.cp does not). */
async function syncTree(p: string): Promise<void> {
  const st = await lstat(p);
  if (st.isDirectory()) for (const name of await readdir(p)) await syncTree(join(p, name));
  if (st.isDirectory() || st.isFile()) {
    const fh = await open(p, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

async function copyDurable(from: string, to: string): Promise<void> {
  await rm(to, { recursive: true, force: true });
  await mkdir(dirname(to), { recursive: true });
  await cp(from, to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  await syncTree(to);
  await fsyncPath(dirname(to));
}

async function makeBackup(dataDir: string, from: number, to: number, paths: string[]): Promise<void> {
  await rm(backupDir(dataDir), { recursive: true, force: true });
  await mkdir(backupFiles(dataDir), { recursive: true });
  const present: string[] = [];
  for (const p of paths) {
    if (!(await exists(join(dataDir, p)))) continue;
    await copyDurable(join(dataDir, p), join(backupFiles(dataDir), p));
    present.push(p);
  }
  await fsyncPath(backupDir(dataDir));
  const meta: BackupMeta = { from, to, paths, present };
  await writeFileDurable(backupMeta(dataDir), `${JSON.stringify(meta)}\n`);
}

/** Puts the backed-up paths back and the schema to the backup's `from`; the backup stays until dropped. */
async function restoreBackup(dataDir: string, meta: BackupMeta): Promise<void> {
  for (const p of meta.paths) {
    const target = join(dataDir, p);
    if (meta.present.includes(p)) await copyDurable(join(backupFiles(dataDir), p), target);
    else {
      await rm(target, { recursive: true, force: true });
      await fsyncPath(dirname(target)).catch(() => undefined);
    }
  }
  await writeDataSchema(dataDir, meta.from);
}

export async function dropBackup(dataDir: string): Promise<void> {
  if (!(await exists(backupDir(dataDir)))) return;
  await rm(backupDir(dataDir), { recursive: true, force: true });
  await fsyncPath(dataDir);
}

/** The migrations from `from` to `to`, in order; throws when the chain has a gap. */
export function migrationPath(migrations: readonly Migration[], from: number, to: number): Migration[] {
  const out: Migration[] = [];
  for (let s = from + 1; s <= to; s++) {
    const m = migrations.find((x) => x.to === s);
    if (!m) throw new MigrationError(`no migration to data schema ${s} (from ${from} to ${to})`);
    out.push(m);
  }
  return out;
}

export type MigrateResult = { kind: 'current'; schema: number } | { kind: 'migrated'; from: number; to: number; ran: string[] };

/**
 * Brings the data directory up to `target`. A migration that throws is undone (the backup goes
 * back and is dropped) and a MigrationError says which one and why. Data newer than `target` is an
 * error too: this code cannot read it (recoverData should have run first).
 */
export async function migrateData(dataDir: string, migrations: readonly Migration[], target: number, base: number, log: Logger): Promise<MigrateResult> {
  const current = await readDataSchema(dataDir, base);
  if (current > target) throw new MigrationError(`the data is at schema ${current}, newer than this release's ${target}, and no backup can take it back`);
  if (current === target) return { kind: 'current', schema: current };
  const steps = migrationPath(migrations, current, target);
  const paths = [...new Set(steps.flatMap((m) => m.touches))].sort();
  await makeBackup(dataDir, current, target, paths);
  const ran: string[] = [];
  for (const m of steps) {
    try {
      log.info({ to: m.to, description: m.description }, 'data migration');
      await m.up(dataDir, log);
      ran.push(m.description);
    } catch (err) {
      const meta = await readBackup(dataDir);
      if (meta) await restoreBackup(dataDir, meta);
      await dropBackup(dataDir);
      throw new MigrationError(`data migration to schema ${m.to} (${m.description}) failed: ${(err as Error).message}`);
    }
  }
  await writeDataSchema(dataDir, target);
  return { kind: 'migrated', from: current, to: target, ran };
}

export type RecoverResult = { action: 'none'; schema: number } | { action: 'restored'; why: 'rolled-back' | 'interrupted'; from: number; to: number };

/**
 * Run at every start, before the store opens. Every path that finishes with a backup drops it (a
 * commit, a restore, a failed migration), so a backup that is still there means one of two things:
 * the data is ahead of this release's schema (a newer release migrated it and was rolled back), or
 * the data is still at the backup's `from` (a crash cut its migrations short, the data is half
 * changed). Both put the backup back. A backup whose migrations finished, under the release that
 * ran them, stays: that release is on trial and a rollback still needs it.
 */
export async function recoverData(dataDir: string, own: number, base: number): Promise<RecoverResult> {
  const current = await readDataSchema(dataDir, base);
  const meta = await readBackup(dataDir);
  if (current > own) {
    // A backup from below `own` is fine too: migrateData then brings it up to `own` again.
    if (!meta || meta.from > own) throw new MigrationError(`the data is at schema ${current}, newer than this release's ${own}, and there is no backup of schema ${own} to restore`);
    await restoreBackup(dataDir, meta);
    await dropBackup(dataDir);
    return { action: 'restored', why: 'rolled-back', from: current, to: meta.from };
  }
  if (meta && meta.from === current && meta.to > current) {
    await restoreBackup(dataDir, meta);
    await dropBackup(dataDir);
    return { action: 'restored', why: 'interrupted', from: current, to: meta.from };
  }
  return { action: 'none', schema: current };
}
