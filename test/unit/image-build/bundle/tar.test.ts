import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TarReader } from '../../../../image-build/bundle/tar-read.ts';
import { END_OF_ARCHIVE, entryHeader, padding, paxRecord } from '../../../../image-build/bundle/tar-write.ts';
import { BundleError } from '../../../../shared/update/manifest.ts';
import { readEntries, writeEntries, type RawEntry } from './tamper.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-tar-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const LONG = `node_modules/${'a'.repeat(90)}/lib/${'b'.repeat(120)}/index.js`;
const entries: RawEntry[] = [
  { path: 'short.txt', mode: 0o644, mtime: 1_700_000_000, body: Buffer.from('hello\n') },
  { path: 'empty', mode: 0o644, mtime: 1_700_000_000, body: Buffer.alloc(0) },
  { path: 'bin/run', mode: 0o755, mtime: 1_700_000_000, body: Buffer.from('#!/bin/sh\necho run\n') },
  { path: LONG, mode: 0o644, mtime: 1_700_000_000, body: Buffer.alloc(70_000, 7) },
  { path: 'dir/ünïcode-名前.txt', mode: 0o644, mtime: 1_700_000_000, body: Buffer.from('utf8 name') },
  { path: 'exact512', mode: 0o644, mtime: 1_700_000_000, body: Buffer.alloc(512, 1) },
];

async function refusal(blocks: Buffer[]): Promise<BundleError> {
  const reader = new TarReader(Readable.from([Buffer.concat(blocks)]));
  try {
    for (let h = await reader.next(); h; h = await reader.next()) for await (const _ of reader.body());
  } catch (err) {
    expect(err).toBeInstanceOf(BundleError);
    return err as BundleError;
  }
  throw new Error('the archive was accepted');
}

/** A header with another type flag, checksum fixed up (what a symlink or device entry looks like). */
function withType(header: Buffer, type: string): Buffer {
  const h = Buffer.from(header);
  h.write(type, 156, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

describe('tar writer and reader', () => {
  it('round-trips long (pax) and UTF-8 paths, empty files, exec bits and block-sized bodies', async () => {
    const file = join(dir, 't.tar.gz');
    await writeEntries(file, entries);
    const back = await readEntries(file);
    expect(back.map((e) => e.path)).toEqual(entries.map((e) => e.path));
    for (const [i, e] of entries.entries()) {
      expect(back[i]!.body.equals(e.body)).toBe(true);
      expect(back[i]!.mode).toBe(e.mode);
      expect(back[i]!.mtime).toBe(e.mtime);
    }
  });

  it('writes archives GNU tar reads the same way (names, modes, owners, contents)', async () => {
    const file = join(dir, 't.tar.gz');
    await writeEntries(file, entries);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvzf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toHaveLength(entries.length);
    expect(listing[2]).toMatch(/^-rwxr-xr-x 0\/0 .* bin\/run$/);
    expect(listing[3]).toContain(LONG);
    const out = join(dir, 'x');
    await mkdir(out);
    execFileSync('tar', ['-xzf', file, '-C', out]);
    expect(await readFile(join(out, LONG))).toEqual(entries[3]!.body);
    expect(((await stat(join(out, 'bin/run'))).mode & 0o777).toString(8)).toBe('755');
    expect(await readFile(join(out, 'dir/ünïcode-名前.txt'), 'utf8')).toBe('utf8 name');
  });

  it('reads what GNU tar writes in POSIX format with long names', async () => {
    const src = join(dir, 'src');
    const deep = `${'c'.repeat(80)}/${'d'.repeat(80)}/file.txt`;
    await mkdir(join(src, `${'c'.repeat(80)}/${'d'.repeat(80)}`), { recursive: true });
    await writeFile(join(src, deep), 'from gnu tar');
    const file = join(dir, 'gnu.tar.gz');
    execFileSync('tar', ['--format=posix', '-czf', file, '-C', src, deep]);
    const back = await readEntries(file);
    expect(back.map((e) => [e.path, e.body.toString()])).toEqual([[deep, 'from gnu tar']]);
  });

  it('encodes pax record lengths that count their own digits', () => {
    for (const n of [1, 80, 89, 90, 91, 985, 990, 995, 9990]) {
      const rec = paxRecord('path', 'p'.repeat(n));
      expect(Number(rec.toString().split(' ')[0])).toBe(rec.length);
    }
  });

  it('refuses links, devices, directories and global pax headers', async () => {
    const header = entryHeader({ path: 'x', size: 0, mode: 0o644, mtime: 0 });
    for (const type of ['1', '2', '3', '4', '5', '6', 'g', 'L']) {
      const err = await refusal([withType(header, type), END_OF_ARCHIVE]);
      expect(err.code).toBe('unreadable');
      expect(err.message).toMatch(/entry type/);
    }
  });

  it('refuses absolute and dot-dot paths, bad checksums, truncation and data after the end', async () => {
    const body = Buffer.from('x');
    const file = (path: string) => [entryHeader({ path, size: 1, mode: 0o644, mtime: 0 }), body, padding(1)];
    for (const path of ['/etc/passwd', '../escape', 'a/../../b', 'a//b', './a', `${'q'.repeat(120)}/../../x`]) {
      expect((await refusal([...file(path), END_OF_ARCHIVE])).message).toMatch(/unsafe entry path/);
    }
    const bad = Buffer.from(entryHeader({ path: 'a', size: 1, mode: 0o644, mtime: 0 }));
    bad[0] = 'b'.charCodeAt(0);
    expect((await refusal([bad, body, padding(1), END_OF_ARCHIVE])).message).toMatch(/checksum/);
    expect((await refusal(file('a'))).message).toMatch(/truncated/);
    expect((await refusal([entryHeader({ path: 'a', size: 10, mode: 0o644, mtime: 0 }), body])).message).toMatch(/truncated/);
    expect((await refusal([...file('a'), END_OF_ARCHIVE, Buffer.alloc(10240)])).message).toMatch(/trailing data/);
    expect((await refusal([...file('a'), END_OF_ARCHIVE, Buffer.alloc(512), Buffer.from([1])])).message).toMatch(/trailing data/);
    expect((await refusal([...file('a'), END_OF_ARCHIVE, Buffer.from('junk')])).message).toMatch(/trailing data/);
  });
});
