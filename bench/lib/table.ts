// Result tables for the benches: one definition rendered as aligned text for the terminal and as
// markdown for bench/results/, plus the JSON dump next to it.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Cell = string | number | null;

export interface Column {
  header: string;
  /** Numbers default to right alignment, text to left. */
  align?: 'left' | 'right';
  /** Digits after the point for numeric cells (default 1). */
  digits?: number;
}

export interface Table {
  title: string;
  columns: Column[];
  rows: Cell[][];
  /** Printed under the table: methodology, failures, caveats. */
  notes?: string[];
}

export const RESULTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'results');

function cellText(cell: Cell, col: Column): string {
  if (cell === null) return '—';
  if (typeof cell === 'number') {
    if (!Number.isFinite(cell)) return '—';
    return cell.toLocaleString('en-US', { minimumFractionDigits: col.digits ?? 1, maximumFractionDigits: col.digits ?? 1 });
  }
  return cell;
}

function alignOf(t: Table, i: number): 'left' | 'right' {
  const col = t.columns[i];
  if (col?.align) return col.align;
  return col?.digits !== undefined || t.rows.some((r) => typeof r[i] === 'number') ? 'right' : 'left';
}

function grid(t: Table): string[][] {
  return t.rows.map((r) => t.columns.map((c, i) => cellText(r[i] ?? null, c)));
}

export function formatText(t: Table): string {
  const body = grid(t);
  const widths = t.columns.map((c, i) => Math.max(c.header.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((s, i) => {
        const w = widths[i] ?? 0;
        return alignOf(t, i) === 'right' ? s.padStart(w) : s.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  const out = [t.title, line(t.columns.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  ')];
  out.push(...body.map(line));
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join('\n');
}

export function formatMarkdown(t: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const out = [`### ${t.title}`, '', `| ${t.columns.map((c) => esc(c.header)).join(' | ')} |`];
  out.push(`|${t.columns.map((_, i) => (alignOf(t, i) === 'right' ? ' ---: ' : ' --- ')).join('|')}|`);
  for (const r of grid(t)) out.push(`| ${r.map(esc).join(' | ')} |`);
  if (t.notes?.length) out.push('', ...t.notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}

/** Filesystem-safe UTC timestamp, e.g. 2026-01-31T12-00-00Z. */
export function stamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

export interface WrittenResults {
  jsonPath: string;
  markdownPath: string;
}

/**
 * Writes `<name>-<stamp>.json` (kept, one per run, for comparing over time) and
 * `<name>-latest.md` (overwritten, the one to read or paste).
 */
export async function writeResults(name: string, data: unknown, tables: Table[], opts: { dir?: string; when?: Date; preamble?: string[] } = {}): Promise<WrittenResults> {
  const dir = opts.dir ?? RESULTS_DIR;
  const when = opts.when ?? new Date();
  await mkdir(dir, { recursive: true });
  const jsonPath = join(dir, `${name}-${stamp(when)}.json`);
  const markdownPath = join(dir, `${name}-latest.md`);
  await writeFile(jsonPath, JSON.stringify(data, null, 2) + '\n');
  const md = [`# ${name} benchmark — ${when.toISOString()}`, '', ...(opts.preamble ?? []).flatMap((p) => [p, '']), ...tables.map(formatMarkdown)];
  await writeFile(markdownPath, md.join('\n'));
  return { jsonPath, markdownPath };
}
