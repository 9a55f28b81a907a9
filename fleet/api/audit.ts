// The audit log: one JSON line per change, appended to <fleet dataDir>/audit.jsonl. A plain file
// (not the fleet's LevelDB) so `mbox token create` can record what it did while the fleet runs and
// holds the database lock; appends of one short line with O_APPEND do not interleave.
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry } from '../../shared/fleet/api.ts';
import type { AuditLog } from '../types.ts';

export const auditPath = (fleetDataDir: string): string => join(fleetDataDir, 'audit.jsonl');

export class FileAuditLog implements AuditLog {
  readonly path: string;

  constructor(fleetDataDir: string) {
    this.path = auditPath(fleetDataDir);
  }

  async record(entry: Omit<AuditEntry, 'at'>): Promise<void> {
    const line = JSON.stringify({ at: new Date().toISOString(), ...entry });
    await appendFile(this.path, `${line}\n`, { flag: 'a', mode: 0o600 });
  }

  /** Newest first. A torn last line (power cut mid-append) is skipped, not fatal. */
  async list(opts: { limit: number; action?: string; target?: string; before?: string }): Promise<AuditEntry[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: AuditEntry[] = [];
    const lines = text.split('\n');
    for (let i = lines.length - 1; i >= 0 && out.length < opts.limit; i--) {
      const line = lines[i];
      if (!line) continue;
      let entry: AuditEntry;
      try {
        entry = JSON.parse(line) as AuditEntry;
      } catch {
        continue;
      }
      if (opts.action && !entry.action.startsWith(opts.action)) continue;
      if (opts.target && entry.target !== opts.target) continue;
      if (opts.before && entry.at >= opts.before) continue;
      out.push(entry);
    }
    return out;
  }
}
