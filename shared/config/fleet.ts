import { Type, type Static } from '@sinclair/typebox';

// Same conventions as the appliance config: flat keys, each a flag (--http-port) and an MBOX_*
// variable.
export const FleetConfigSchema = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, default: '.data/fleet' }),
    httpHost: Type.String({ default: '127.0.0.1' }),
    httpPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
    forwardUrl: Type.Optional(Type.String({ pattern: '^https?://', description: 'DICOMweb base URL of the PACS that receives what boxes upload' })),
    forwardToken: Type.Optional(Type.String({ description: 'bearer token for forwardUrl' })),
    publicBaseUrl: Type.Optional(Type.String({ pattern: '^https?://', description: 'DICOMweb base URL as boxes see it, for RetrieveURLs' })),
    tls: Type.Boolean({ default: true, description: 'serve HTTPS with a certificate from the fleet CA (off only for tests of the plain receiver)' }),
    publicHosts: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'host names / IPs boxes use to reach the fleet; added to the server certificates (localhost and 127.0.0.1 always are)',
    }),
    mqttHost: Type.Optional(Type.String({ description: 'embedded broker bind address (default: httpHost)' })),
    mqttPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8883 }),
    broker: Type.Optional(Type.String({ pattern: '^mqtts://', description: 'use this external broker (e.g. mosquitto) instead of the embedded one' })),
    brokerCrlFile: Type.Optional(
      Type.String({ minLength: 1, description: 'with --broker: keep this CRL file (the broker\'s crlfile) listing revoked and replaced box certificates' }),
    ),
    brokerCrlReload: Type.Optional(Type.String({ minLength: 1, description: 'shell command run after each CRL write, e.g. "systemctl reload mosquitto"' })),
    brokerCa: Type.Optional(Type.String({ description: 'PEM CA bundle for the external broker (default: the fleet CA)' })),
    publicMqttUrl: Type.Optional(Type.String({ pattern: '^mqtts://', description: 'broker URL handed to boxes at enrolment (default: derived)' })),
    adminToken: Type.Optional(Type.String({ minLength: 16, description: 'first admin API token (MBOX_ADMIN_TOKEN)' })),
    deviceCertValidityDays: Type.Number({ exclusiveMinimum: 0, maximum: 3650, default: 90 }),
    enrolClockSkewS: Type.Integer({ minimum: 1, default: 300, description: 'largest clock difference a box may have at enrolment' }),
    commandTimeoutMs: Type.Integer({ minimum: 100, default: 30000 }),
    releasePubkeys: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'PEM files of the ed25519 public keys the fleet accepts release bundles from (mbox keys init); none: uploads are refused',
    }),
    releaseMaxMb: Type.Number({ exclusiveMinimum: 0, maximum: 16384, default: 1024, description: 'largest release bundle an upload may carry, in MB' }),
    releaseBaseUrl: Type.Optional(Type.String({ pattern: '^https://', description: 'fleet URL as boxes reach it, for the bundle URL in update offers (default: the fleet\'s own)' })),
    rolloutHealthTimeoutMs: Type.Integer({ minimum: 1000, default: 1_800_000, description: 'a box silent this long after its offer or last update status counts as failed (timeout)' }),
    alertOfflineMinutes: Type.Number({ minimum: 0, default: 10 }),
    alertDiskPercent: Type.Number({ minimum: 1, maximum: 100, default: 85 }),
    alertQueueAgeMinutes: Type.Number({ minimum: 0, default: 60 }),
    logLevel: Type.Union(
      [Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')],
      { default: 'info' },
    ),
  },
  { additionalProperties: false },
);

export type FleetConfig = Static<typeof FleetConfigSchema>;
