// The updater's outward types (appliance.ts, the agent, the local API).
import type { ApplianceConfig } from '../../../shared/config/appliance.ts';
import type { Logger } from '../../../shared/log.ts';
import type { UpdateStatus } from '../../../shared/update/messages.ts';
import type { Slot, SlotState } from '../../../shared/update/slots.ts';
import type { UpdateContext } from './context.ts';
import type { DownloadTls } from './download.ts';
import type { Migration } from './schema.ts';

/** The exit status of a process that ends to let the supervisor start the other slot. */
export const UPDATE_RESTART_EXIT_CODE = 75;

/** How the updater reaches the fleet; the agent provides it once the box has an identity. */
export interface FleetPort {
  publishStatus(status: UpdateStatus): Promise<void>;
  /** The device identity for mutual TLS downloads (undefined before enrolment). */
  tls(): DownloadTls | undefined;
  connected(): boolean;
}

export interface UpdaterOptions {
  progressIntervalMs?: number;
  /** Download retry back-off, and how many failures in a row (without progress) end the attempt. */
  retry?: { minMs: number; maxMs: number; maxFailures: number };
  /** Replaces this release's migrations (tests of the mechanism). */
  migrations?: { list: readonly Migration[]; base: number; target: number };
  context?: UpdateContext;
}

export interface UpdateInfo {
  updatable: boolean;
  slot?: Slot;
  root?: string;
  reason?: string;
  runningVersion: string;
  status: UpdateStatus | null;
  trial: { version: string; boots: number; windowMs: number } | null;
  versions: SlotState['versions'];
  failed: SlotState['failed'];
}

export interface UpdaterDeps {
  config: ApplianceConfig;
  dataDir: string;
  log: Logger;
  runningVersion: string;
  /** Stops the box and ends the process so the supervisor (systemd) starts the launcher again. */
  restart: (why: string) => Promise<void>;
  options?: UpdaterOptions;
}
