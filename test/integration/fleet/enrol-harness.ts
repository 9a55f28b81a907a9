// A real HTTPS enrolment endpoint for tests: the fleet CA, token store and audit log on disk, the
// enrolment routes in fastify over TLS (client certificates requested, not required), and an
// in-memory device directory standing in for the registry.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { FileAuditLog } from '../../../fleet/api/audit.ts';
import { enrolRoutes, httpsOptions } from '../../../fleet/enrol/routes.ts';
import { TokenStore } from '../../../fleet/enrol/tokens.ts';
import { openPki, type OpenedPki } from '../../../fleet/pki/pki.ts';
import type { DeviceDirectory, DeviceIdentityRecord } from '../../../fleet/types.ts';
import { createLogger } from '../../../shared/log.ts';
import { freePort, LOOPBACK } from '../../helpers/ports.ts';

export const silent = createLogger('silent');

/** Test-only DeviceDirectory: the registry's enrolment-facing behaviour, in memory. */
export class MemoryDirectory implements DeviceDirectory {
  readonly records = new Map<string, DeviceIdentityRecord>();

  getIdentity(id: string): DeviceIdentityRecord | undefined {
    return this.records.get(id);
  }
  isRevoked(id: string): boolean {
    return this.records.get(id)?.revokedAt != null;
  }
  isCurrentSerial(id: string, serial: string): boolean {
    return this.records.get(id)?.certSerial === serial;
  }
  async register(record: Omit<DeviceIdentityRecord, 'tags' | 'revokedAt'>): Promise<void> {
    this.records.set(record.id, { ...record, tags: [], revokedAt: null });
  }
  async renewed(id: string, serial: string, notAfter: string): Promise<void> {
    const r = this.records.get(id);
    if (!r) throw new Error(`unknown device ${id}`);
    this.records.set(id, { ...r, certSerial: serial, certNotAfter: notAfter });
  }
  revoke(id: string): void {
    const r = this.records.get(id);
    if (r) this.records.set(id, { ...r, revokedAt: new Date().toISOString() });
  }
}

export interface EnrolFleet {
  dataDir: string;
  pki: OpenedPki;
  tokens: TokenStore;
  directory: MemoryDirectory;
  audit: FileAuditLog;
  port: number;
  url: string;
  /** Starts (or restarts) listening on `port`. */
  listen(): Promise<void>;
  /** Stops listening; the data stays. */
  close(): Promise<void>;
  token(opts?: { group?: string; labels?: Record<string, string>; expiresInMs?: number }): Promise<string>;
  /** Removes everything. */
  destroy(): Promise<void>;
}

export const MQTT_URL = 'mqtts://127.0.0.1:8883';

/** `dataDir` lets a test share the fleet's data dir with the CLI; it is removed by destroy() all the same. */
export async function enrolFleet(opts: { validityDays?: number; skewS?: number; listen?: boolean; dataDir?: string } = {}): Promise<EnrolFleet> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'mbox-enrol-fleet-')));
  const pki = await openPki(join(dataDir, 'ca'), silent);
  const tokens = new TokenStore(join(dataDir, 'tokens'));
  const directory = new MemoryDirectory();
  const audit = new FileAuditLog(dataDir);
  const port = await freePort();
  let app: FastifyInstance | undefined;
  const fleet: EnrolFleet = {
    dataDir,
    pki,
    tokens,
    directory,
    audit,
    port,
    url: `https://${LOOPBACK}:${port}`,
    async listen() {
      app = Fastify({ https: await httpsOptions(pki, []) });
      await app.register(enrolRoutes, {
        pki,
        tokens,
        directory,
        audit,
        config: { deviceCertValidityDays: opts.validityDays ?? 30, enrolClockSkewS: opts.skewS ?? 300 },
        mqttUrl: MQTT_URL,
        log: silent,
      });
      await app.listen({ port, host: LOOPBACK });
    },
    async close() {
      await app?.close();
      app = undefined;
    },
    async token(t = {}) {
      const created = await tokens.create({ group: t.group ?? 'north', labels: t.labels ?? { clinic: 'Northside' }, expiresInMs: t.expiresInMs ?? 3_600_000, createdBy: 'test', caPin: pki.caPin });
      return created.token;
    },
    async destroy() {
      await fleet.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  if (opts.listen !== false) await fleet.listen();
  return fleet;
}
