// The data-migration mechanism with test migrations on real files: backup of what a migration
// names, undo on failure, undo of a half-run migration after a crash, restore by the old release.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dropBackup, migrateData, migrationPath, MigrationError, readDataSchema, recoverData, type Migration } from '../../../../../appliance/agent/update/schema.ts';
import { DATA_SCHEMA, MIGRATIONS } from '../../../../../appliance/agent/update/migrations.ts';
import { createLogger } from '../../../../../shared/log.ts';

const log = createLogger('silent');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mbox-schema-'));
  dirs.push(d);
  mkdirSync(join(d, 'notes'));
  writeFileSync(join(d, 'notes/a.txt'), 'alpha v1');
  writeFileSync(join(d, 'untouched.txt'), 'keep');
  return d;
}

/** Schema 2: rewrites notes/a.txt and adds notes/b.txt; schema 3: adds extra.json. */
const toTwo: Migration = {
  to: 2,
  description: 'notes v2',
  touches: ['notes'],
  up: async (d) => {
    await writeFile(join(d, 'notes/a.txt'), 'alpha v2');
    await writeFile(join(d, 'notes/b.txt'), 'beta');
  },
};
const toThree = (fail = false): Migration => ({
  to: 3,
  description: 'extra index',
  touches: ['extra.json', 'notes/a.txt'],
  up: async (d) => {
    await writeFile(join(d, 'extra.json'), '{}');
    await writeFile(join(d, 'notes/a.txt'), 'alpha v3 half');
    if (fail) throw new Error('index would not build');
  },
});

describe('data schema migrations', () => {
  it('this release declares no migrations yet: schema 1', () => {
    expect(MIGRATIONS).toEqual([]);
    expect(DATA_SCHEMA).toBe(1);
  });

  it('finds the chain or names the gap', () => {
    expect(migrationPath([toTwo, toThree()], 1, 3).map((m) => m.to)).toEqual([2, 3]);
    expect(() => migrationPath([toThree()], 1, 3)).toThrow(/no migration to data schema 2/);
  });

  it('migrates with a backup; the old release restores it after a rollback, untouched files stay', async () => {
    const d = dataDir();
    expect(await readDataSchema(d, 1)).toBe(1);
    expect(await migrateData(d, [toTwo, toThree()], 3, 1, log)).toEqual({ kind: 'migrated', from: 1, to: 3, ran: ['notes v2', 'extra index'] });
    expect(await readDataSchema(d, 1)).toBe(3);
    expect(readFileSync(join(d, 'notes/a.txt'), 'utf8')).toBe('alpha v3 half');
    // Running again is a no-op.
    expect(await migrateData(d, [toTwo, toThree()], 3, 1, log)).toEqual({ kind: 'current', schema: 3 });

    // The release rolled back: the old one (schema 1) finds the data ahead of it.
    expect(await recoverData(d, 1, 1)).toEqual({ action: 'restored', why: 'rolled-back', from: 3, to: 1 });
    expect(readFileSync(join(d, 'notes/a.txt'), 'utf8')).toBe('alpha v1');
    expect(existsSync(join(d, 'notes/b.txt'))).toBe(false);
    expect(existsSync(join(d, 'extra.json'))).toBe(false);
    expect(readFileSync(join(d, 'untouched.txt'), 'utf8')).toBe('keep');
    expect(await readDataSchema(d, 1)).toBe(1);
    expect(existsSync(join(d, '.update-backup'))).toBe(false);
    expect(await recoverData(d, 1, 1)).toEqual({ action: 'none', schema: 1 });
  });

  it('undoes a migration that throws, says which one failed, and keeps no backup behind', async () => {
    const d = dataDir();
    const err = await migrateData(d, [toTwo, toThree(true)], 3, 1, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toBe('data migration to schema 3 (extra index) failed: index would not build');
    expect(await readDataSchema(d, 1)).toBe(1);
    expect(readFileSync(join(d, 'notes/a.txt'), 'utf8')).toBe('alpha v1');
    expect(existsSync(join(d, 'notes/b.txt'))).toBe(false);
    expect(existsSync(join(d, 'extra.json'))).toBe(false);
    // No stale backup: weeks later it would otherwise "restore" old data over new.
    expect(existsSync(join(d, '.update-backup'))).toBe(false);
  });

  it('puts back the data a crash left half-migrated, under either release, and only then migrates again', async () => {
    const d = dataDir();
    // What a crash in the middle of migrateData leaves: the complete backup, schema.json still at
    // 1, half-changed data. (Made by letting a migration finish, then rewinding schema.json.)
    await migrateData(d, [toTwo], 2, 1, log);
    await writeFile(join(d, 'schema.json'), '{"schema":1}');
    await writeFile(join(d, 'notes/a.txt'), 'garbage from a half-run migration');
    // The old release (schema 1) after the launcher rolled the crash loop back, or the new one
    // starting its next trial boot: both restore first.
    expect(await recoverData(d, 1, 1)).toEqual({ action: 'restored', why: 'interrupted', from: 1, to: 1 });
    expect(readFileSync(join(d, 'notes/a.txt'), 'utf8')).toBe('alpha v1');
    expect(existsSync(join(d, 'notes/b.txt'))).toBe(false);
    expect(existsSync(join(d, '.update-backup'))).toBe(false);
    // A finished migration's backup under the release that ran it (on trial) is left alone.
    await migrateData(d, [toTwo], 2, 1, log);
    expect(await recoverData(d, 2, 1)).toEqual({ action: 'none', schema: 2 });
    expect(existsSync(join(d, '.update-backup/backup.json'))).toBe(true);
    // … until the commit drops it.
    await dropBackup(d);
    expect(existsSync(join(d, '.update-backup'))).toBe(false);
  });

  it('refuses data newer than it can read when no backup can take it back', async () => {
    const d = dataDir();
    await writeFile(join(d, 'schema.json'), '{"schema":4}');
    await expect(recoverData(d, 2, 1)).rejects.toThrow(/schema 4, newer than this release's 2, and there is no backup/);
    await expect(migrateData(d, [], 2, 1, log)).rejects.toThrow(/newer than this release's 2/);
    await rm(join(d, 'schema.json'));
    expect(await readDataSchema(d, 1)).toBe(1);
    expect(await readFile(join(d, 'untouched.txt'), 'utf8')).toBe('keep');
  });
});
