import { Type, type Static } from '@sinclair/typebox';

// Same conventions as the appliance config: flat keys, each a flag (--http-port) and an MBOX_*
// variable. Enrolment, broker and rollout keys arrive with the fleet manager's next steps.
export const FleetConfigSchema = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, default: '.data/fleet' }),
    httpHost: Type.String({ default: '127.0.0.1' }),
    httpPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
    forwardUrl: Type.Optional(Type.String({ pattern: '^https?://', description: 'DICOMweb base URL of the PACS that receives what boxes upload' })),
    forwardToken: Type.Optional(Type.String({ description: 'bearer token for forwardUrl' })),
    publicBaseUrl: Type.Optional(Type.String({ pattern: '^https?://', description: 'DICOMweb base URL as boxes see it, for RetrieveURLs' })),
    logLevel: Type.Union(
      [Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')],
      { default: 'info' },
    ),
  },
  { additionalProperties: false },
);

export type FleetConfig = Static<typeof FleetConfigSchema>;
