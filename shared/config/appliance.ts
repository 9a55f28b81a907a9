import { Type, type Static } from '@sinclair/typebox';

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
    logLevel: Type.Union(
      [Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')],
      { default: 'info' },
    ),
  },
  { additionalProperties: false },
);

export type ApplianceConfig = Static<typeof ApplianceConfigSchema>;
