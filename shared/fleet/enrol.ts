// The enrolment protocol between a new box and the fleet (HTTPS, JSON). A box presents a one-time
// token and a CSR for a key it generated itself; the fleet answers with a certificate naming the
// device id it assigned. Every failure has a code both sides show verbatim: no silent 401 loops.
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';

export const ENROL_PATHS = {
  /** POST EnrolRequest → EnrolResponse | EnrolErrorBody. No client certificate. */
  enrol: '/api/enrol',
  /** GET → the fleet CA certificate (PEM). The box checks it against the pin in its token. */
  ca: '/api/enrol/ca',
  /** POST RenewRequest over mutual TLS with the current device certificate → EnrolResponse. */
  renew: '/api/enrol/renew',
} as const;

export const ENROL_ERROR_CODES = [
  'token-malformed',
  'token-unknown',
  'token-used',
  'token-expired',
  'csr-invalid',
  'clock-skew',
  'revoked',
  'certificate-required',
  // Only ever produced on the box:
  'fleet-unreachable',
  'fleet-untrusted',
  'fleet-error',
] as const;
export type EnrolErrorCode = (typeof ENROL_ERROR_CODES)[number];

/** Whether the box should keep retrying (with backoff) or stop and show the error until a person acts. */
export const ENROL_RETRYABLE: ReadonlySet<EnrolErrorCode> = new Set(['fleet-unreachable', 'fleet-error', 'clock-skew']);

export const EnrolRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 200 }),
    csr: Type.String({ minLength: 100, maxLength: 16384, description: 'PKCS#10, PEM' }),
    clientTime: Type.String({ minLength: 10, maxLength: 40, description: "the box's clock (ISO 8601), for the skew check" }),
    firmware: Type.String({ maxLength: 64 }),
    hostname: Type.Optional(Type.String({ maxLength: 253 })),
  },
  { additionalProperties: false },
);
export type EnrolRequest = Static<typeof EnrolRequest>;

export const RenewRequest = Type.Object(
  { csr: Type.String({ minLength: 100, maxLength: 16384 }), clientTime: Type.String({ minLength: 10, maxLength: 40 }) },
  { additionalProperties: false },
);
export type RenewRequest = Static<typeof RenewRequest>;

export const EnrolResponse = Type.Object({
  deviceId: Type.String(),
  group: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  certificate: Type.String({ description: 'device certificate, PEM' }),
  caCertificate: Type.String({ description: 'fleet CA, PEM' }),
  notAfter: Type.String(),
  /** Where the box connects for MQTT over mutual TLS. */
  mqttUrl: Type.String(),
  serverTime: Type.String(),
});
export type EnrolResponse = Static<typeof EnrolResponse>;

export const EnrolErrorBody = Type.Object({
  error: Type.String({ description: 'an EnrolErrorCode' }),
  message: Type.String(),
  statusCode: Type.Integer(),
  serverTime: Type.String(),
});
export type EnrolErrorBody = Static<typeof EnrolErrorBody>;

/**
 * Enrolment token: `mbx1.<tokenId>.<secret>.<caPin>`, one line, QR-friendly.
 * tokenId names the record (stored in clear), secret is checked against a stored SHA-256,
 * caPin is base64url(SHA-256(CA certificate DER)) cut to 22 characters (128 bits) so a box can
 * trust the fleet's self-run CA on first contact without a separate file (like kubeadm's
 * discovery hash).
 */
export interface EnrolToken {
  tokenId: string;
  secret: string;
  caPin: string;
}

const TOKEN_RE = /^mbx1\.([a-z0-9]{10})\.([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{22})$/;

export function formatEnrolToken(t: EnrolToken): string {
  return `mbx1.${t.tokenId}.${t.secret}.${t.caPin}`;
}

export function parseEnrolToken(text: string): EnrolToken | undefined {
  const m = TOKEN_RE.exec(text.trim());
  return m ? { tokenId: m[1]!, secret: m[2]!, caPin: m[3]! } : undefined;
}

export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The pin of a CA certificate given as DER bytes. */
export function caPinOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url').slice(0, 22);
}
