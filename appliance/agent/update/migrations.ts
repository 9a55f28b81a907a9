// The box's data schema migrations, oldest first. A release whose code changes what it keeps in
// the data directory adds one here (and builds its bundle with `--data-schema` = DATA_SCHEMA); the
// new slot runs it at its first start, inside the health window, after a backup of exactly the
// paths it names in `touches` — which is what a rollback restores. None are needed yet.
import type { Migration } from './schema.ts';

/** The schema of a data directory that has never been migrated (no schema.json). */
export const BASE_DATA_SCHEMA = 1;

export const MIGRATIONS: readonly Migration[] = [];

/** The schema this release's code reads and writes. */
export const DATA_SCHEMA = MIGRATIONS.reduce((max, m) => Math.max(max, m.to), BASE_DATA_SCHEMA);
