import { Type, type Static } from '@sinclair/typebox';

const Window = Type.Object(
  {
    days: Type.Optional(
      Type.Array(
        Type.Union([
          Type.Literal('mon'),
          Type.Literal('tue'),
          Type.Literal('wed'),
          Type.Literal('thu'),
          Type.Literal('fri'),
          Type.Literal('sat'),
          Type.Literal('sun'),
        ]),
      ),
    ),
    from: Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }),
    to: Type.String({ pattern: '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$' }),
  },
  { additionalProperties: false },
);

/** Where studies go. One queue, syntax, credential and bandwidth budget per destination. */
export const DestinationSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$' }),
    url: Type.String({ pattern: '^https?://', description: 'DICOMweb base URL (STOW-RS goes to <url>/studies)' }),
    syntax: Type.Union([Type.Literal('jpeg-ls'), Type.Literal('htj2k'), Type.Literal('explicit-le'), Type.Literal('as-received')], { default: 'jpeg-ls' }),
    token: Type.Optional(Type.String({ description: 'bearer token' })),
    username: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    caFile: Type.Optional(Type.String({ description: 'PEM CA bundle to trust for this destination' })),
    certFile: Type.Optional(Type.String({ description: 'client certificate for mutual TLS' })),
    keyFile: Type.Optional(Type.String()),
    insecureSkipVerify: Type.Boolean({ default: false, description: 'turn TLS verification off (never in production)' }),
    // About 1-2 s of a 20 Mbit/s clinic line: the receiver's work on the last batch and what a cut
    // link makes us send again both scale with the batch.
    maxBatchBytes: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024 }),
    maxBatchCount: Type.Integer({ minimum: 1, default: 50 }),
    concurrency: Type.Integer({ minimum: 1, maximum: 16, default: 2 }),
    bandwidthBytesPerSec: Type.Integer({ minimum: 0, default: 0, description: '0: unlimited' }),
    retryMaxDelayMs: Type.Integer({ minimum: 100, default: 300000, description: 'longest wait between retries of an unreachable receiver' }),
    windows: Type.Array(Window, { default: [], description: 'when routine traffic may flow (local time); empty: always' }),
    statModalities: Type.Array(Type.String(), { default: [], description: 'modalities whose studies go first, windows or not' }),
    statCallingAe: Type.Array(Type.String(), { default: [], description: 'calling AE titles whose studies go first' }),
  },
  { additionalProperties: false },
);
export type DestinationConfig = Static<typeof DestinationSchema>;

// Flat keys on purpose: each maps 1:1 to a flag (--dicom-port) and an env variable (MBOX_DICOM_PORT),
// and a fleet can later push the same document as desired state.
export const ApplianceConfigSchema = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, default: '.data/appliance', description: 'where the store lives' }),
    aeTitle: Type.String({ pattern: '^[ -~]{1,16}$', default: 'MBOX', description: 'called AE title of the box' }),
    dicomHost: Type.String({ default: '0.0.0.0' }),
    dicomPort: Type.Integer({ minimum: 0, maximum: 65535, default: 11112 }),
    checkCalledAe: Type.Boolean({ default: true, description: 'reject associations addressed to another AE title' }),
    allowedCallingAe: Type.Array(Type.String({ pattern: '^[ -~]{1,16}$' }), {
      default: [],
      description: 'calling AE titles allowed to connect; empty allows all',
    }),
    maxAssociations: Type.Integer({ minimum: 1, maximum: 1000, default: 32 }),
    maxPduLength: Type.Integer({ minimum: 4096, maximum: 4194304, default: 262144 }),
    tlsCert: Type.Optional(Type.String({ description: 'PEM certificate file; enables DICOM TLS' })),
    tlsKey: Type.Optional(Type.String({ description: 'PEM private key file for tlsCert' })),
    tlsCa: Type.Optional(Type.String({ description: 'PEM CA bundle to verify client certificates' })),
    tlsRequireClientCert: Type.Boolean({ default: false }),
    httpHost: Type.String({ default: '127.0.0.1' }),
    httpPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    watchDirs: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'export folders to ingest from' }),
    watchSettleMs: Type.Integer({ minimum: 0, default: 2000, description: 'a file must keep its size this long' }),
    watchIntervalMs: Type.Integer({ minimum: 50, default: 1000 }),
    watchGiveUpMs: Type.Integer({
      minimum: 0,
      default: 120000,
      description: 'a file that still looks cut off after this long without change is quarantined, not waited for',
    }),
    quietTimeMs: Type.Integer({ minimum: 0, default: 10000, description: 'a study is complete after this long without new instances' }),
    diskHighWaterPercent: Type.Number({ minimum: 1, maximum: 100, default: 90 }),
    diskMinFreeBytes: Type.Integer({ minimum: 0, default: 1073741824 }),
    destination: Type.Optional(Type.String({ pattern: '^https?://', description: 'shorthand for one destination named "cloud"' })),
    destinationSyntax: Type.Union([Type.Literal('jpeg-ls'), Type.Literal('htj2k'), Type.Literal('explicit-le'), Type.Literal('as-received')], {
      default: 'jpeg-ls',
    }),
    destinationToken: Type.Optional(Type.String()),
    destinationRetryMaxDelayMs: Type.Integer({ minimum: 100, default: 300000 }),
    destinations: Type.Array(DestinationSchema, { default: [] }),
    retentionHours: Type.Number({ minimum: 0, default: 72, description: 'local copies of committed instances are removed after this long' }),
    compressWorkers: Type.Integer({ minimum: 0, maximum: 16, default: 1, description: 'worker threads for transcoding (0: one per core minus one)' }),
    fleetUrl: Type.Optional(Type.String({ pattern: '^https://', description: 'fleet manager to enrol with and report to' })),
    enrolToken: Type.Optional(Type.String({ description: 'one-time enrolment token from `mbox token create` (needed once)' })),
    fleetCa: Type.Optional(Type.String({ description: "PEM file of the fleet CA, instead of the pin inside the enrolment token" })),
    telemetryIntervalMs: Type.Integer({ minimum: 1000, maximum: 3600000, default: 30000, description: 'how often the box reports telemetry to the fleet' }),
    // Updates (appliance/agent/update). Local only: the fleet can never change them (planner.ts).
    updateRoot: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'A/B slot root (slots/, current, boot/); the launcher sets it as MBOX_UPDATE_ROOT. Unset: not updatable (a development checkout)',
      }),
    ),
    updatePubkeys: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'release public keys pinned at provisioning: PEM files, or directories whose *.pem files are all pinned; none: every update is refused',
    }),
    updateHealthWindowMs: Type.Integer({
      minimum: 1000,
      maximum: 3600000,
      default: 120000,
      description: 'how long a new release must pass its health checks (C-ECHO, store, fleet link, no crash) before it is committed',
    }),
    logLevel: Type.Union(
      [Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')],
      { default: 'info' },
    ),
  },
  { additionalProperties: false },
);

export type ApplianceConfig = Static<typeof ApplianceConfigSchema>;

/** The destinations a config names: the `destinations` list plus the `--destination` shorthand. */
export function destinationsOf(config: ApplianceConfig): DestinationConfig[] {
  const list = [...config.destinations];
  if (config.destination && !list.some((d) => d.name === 'cloud')) {
    list.push({
      name: 'cloud',
      url: config.destination,
      syntax: config.destinationSyntax,
      ...(config.destinationToken ? { token: config.destinationToken } : {}),
      insecureSkipVerify: false,
      maxBatchBytes: 4 * 1024 * 1024,
      maxBatchCount: 50,
      concurrency: 2,
      bandwidthBytesPerSec: 0,
      retryMaxDelayMs: config.destinationRetryMaxDelayMs,
      windows: [],
      statModalities: [],
      statCallingAe: [],
    });
  }
  return list;
}
