// Commands sent to devices, kept in LevelDB: the last MAX_COMMANDS per device plus an index of the
// ones still pending, so a restarted fleet can time them out or keep waiting.
import type { CommandRecord } from '../../shared/fleet/api.ts';
import type { RegistryDb } from './store.ts';

export const MAX_COMMANDS = 200;

const indexKey = (r: CommandRecord): string => `${r.deviceId}!${r.issuedAt}!${r.id}`;

export class CommandLog {
  private readonly db: RegistryDb;

  constructor(db: RegistryDb) {
    this.db = db;
  }

  /** Stores a new or updated record (synced); a new one may push the device's oldest out. */
  async save(record: CommandRecord, isNew: boolean): Promise<void> {
    const pending = record.status === 'pending';
    await this.db.write([
      { table: 'commands', key: record.id, value: record },
      ...(isNew ? [{ table: 'commandIndex' as const, key: indexKey(record), value: record.id }] : []),
      pending ? { table: 'pending' as const, key: record.id, value: record.deviceId } : { table: 'pending' as const, key: record.id, del: true as const },
    ]);
    if (isNew) await this.prune(record.deviceId);
  }

  async get(cmdId: string): Promise<CommandRecord | undefined> {
    return (await this.db.get('commands', cmdId)) as CommandRecord | undefined;
  }

  /** Newest first. */
  async list(deviceId: string, limit = MAX_COMMANDS): Promise<CommandRecord[]> {
    const out: CommandRecord[] = [];
    for await (const [, cmdId] of this.db.entries('commandIndex', { gte: `${deviceId}!`, lt: `${deviceId}!\xff`, reverse: true, limit })) {
      const rec = await this.get(cmdId as string);
      if (rec) out.push(rec);
    }
    return out;
  }

  async pending(): Promise<CommandRecord[]> {
    const out: CommandRecord[] = [];
    for await (const cmdId of this.db.keys('pending')) {
      const rec = await this.get(cmdId);
      if (rec?.status === 'pending') out.push(rec);
    }
    return out;
  }

  private async prune(deviceId: string): Promise<void> {
    const keys: Array<[string, string]> = [];
    for await (const [key, cmdId] of this.db.entries('commandIndex', { gte: `${deviceId}!`, lt: `${deviceId}!\xff` })) keys.push([key, cmdId as string]);
    const excess = keys.length - MAX_COMMANDS;
    if (excess <= 0) return;
    await this.db.write(
      keys.slice(0, excess).flatMap(([key, cmdId]) => [
        { table: 'commandIndex' as const, key, del: true as const },
        { table: 'commands' as const, key: cmdId, del: true as const },
        { table: 'pending' as const, key: cmdId, del: true as const },
      ]),
    );
  }
}
