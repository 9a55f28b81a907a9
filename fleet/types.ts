// Contracts between the fleet manager's parts. fleet/fleet.ts wires them; no part reaches into
// another's files. Implementations: pki/ (FleetPki), enrol/ (TokenStore), devices/ (DeviceRegistry),
// broker/ (FleetBus, BrokerControl), api/audit.ts (AuditLog).
import type { AuditEntry } from '../shared/fleet/api.ts';

/** The fleet CA and what it signs. Keys live under <dataDir>/ca (0600). */
export interface FleetPki {
  caCertPem: string;
  /** base64url SHA-256 pin of the CA certificate (see shared/fleet/enrol.ts). */
  caPin: string;
  /** Verifies the CSR's signature and key, then issues a client certificate with CN = deviceId. Throws CsrError. */
  issueDeviceCertificate(csrPem: string, deviceId: string, validityDays: number): Promise<IssuedCertificate>;
  /** TLS server certificate for the fleet's HTTPS and MQTT listeners (localhost, 127.0.0.1 + hosts). */
  serverCredentials(hosts: string[]): Promise<{ certPem: string; keyPem: string }>;
  /** Client certificate for the fleet's own MQTT connection (CN = FLEET_SERVICE_IDENTITY). */
  serviceCredentials(): Promise<{ certPem: string; keyPem: string }>;
  /** A CRL (PEM) over these serials, for an external broker that cannot ask the registry. */
  signCrl(entries: RevokedSerial[], now?: Date): Promise<string>;
}

/** A device certificate that must no longer connect. */
export interface RevokedSerial {
  serial: string;
  revokedAt: string;
  /** `revoked`: the device was; `superseded`: a renewal replaced the certificate. */
  reason: 'revoked' | 'superseded';
  /** After this the certificate is expired anyway and the entry can leave the list. */
  notAfter: string;
}

export interface IssuedCertificate {
  certPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export class CsrError extends Error {
  override name = 'CsrError';
}

export interface DeviceIdentityRecord {
  id: string;
  group: string;
  labels: Record<string, string>;
  tags: string[];
  hostname: string | null;
  firmware: string | null;
  enrolledAt: string;
  enrolToken: string;
  certSerial: string;
  certNotAfter: string;
  revokedAt: string | null;
  /**
   * Earlier certificates of this id (replaced by a renewal, or left by a re-enrolment), kept until
   * they expire so an external broker's CRL can list them. Absent in records from before it existed.
   */
  retiredCerts?: RetiredCert[];
}

export interface RetiredCert {
  serial: string;
  notAfter: string;
  retiredAt: string;
  reason: RevokedSerial['reason'];
}

/** What enrolment and the broker need from the device registry. */
export interface DeviceDirectory {
  getIdentity(id: string): DeviceIdentityRecord | undefined;
  /** Synchronous and in memory: the broker calls it on every connect. */
  isRevoked(id: string): boolean;
  /** Also true for a certificate serial that was replaced by a renewal (only the newest serial is valid). */
  isCurrentSerial(id: string, serial: string): boolean;
  register(record: Omit<DeviceIdentityRecord, 'tags' | 'revokedAt'>): Promise<void>;
  renewed(id: string, serial: string, notAfter: string): Promise<void>;
}

/** Enrolment tokens, as files under <dataDir>/tokens so `mbox token create` works while the fleet runs. */
export interface TokenRecord {
  tokenId: string;
  secretSha256: string;
  group: string;
  labels: Record<string, string>;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  usedAt?: string;
  deviceId?: string;
  revokedAt?: string;
}

/** How the fleet talks MQTT, whether the broker is embedded aedes or an external mosquitto. */
export interface FleetBus {
  /** `undefined` sends the empty message, which clears a retained topic (a withdrawn offer). */
  publish(topic: string, payload: unknown, opts?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /** Raw JSON payloads from devices, already routed by topic kind; the caller validates. */
  onDeviceMessage(handler: (deviceId: string, kind: 'status' | 'telemetry' | 'config/reported' | 'commands/res' | 'update/status', payload: unknown) => void): void;
  readonly connected: boolean;
  close(): Promise<void>;
}

/** What only an embedded broker can do. */
export interface BrokerControl {
  /** Drops a device's live connection (after revocation). */
  disconnect(deviceId: string): void;
  connectedCount(): number;
  close(): Promise<void>;
}

export interface AuditLog {
  record(entry: Omit<AuditEntry, 'at'>): Promise<void>;
  list(opts: { limit: number; action?: string; target?: string; before?: string }): Promise<AuditEntry[]>;
}
