// The box's fleet identity and where enrolment stands. Files live in <dataDir>/agent/:
//   device.key (0600, never leaves the box) · device.crt · ca.crt · identity.json
import type { EnrolErrorCode } from '../../shared/fleet/enrol.ts';

export interface AgentIdentity {
  deviceId: string;
  group: string;
  labels: Record<string, string>;
  fleetUrl: string;
  mqttUrl: string;
  keyPem: string;
  certPem: string;
  caPem: string;
  notBefore: string;
  notAfter: string;
  enrolledAt: string;
}

/** Shown by the local API (/api/agent), the TUI and the logs, so a failed enrolment is never silent. */
export type EnrolmentStatus =
  | { state: 'not-configured' }
  | { state: 'enrolling'; attempt: number; since: string }
  | { state: 'enrolled'; deviceId: string; notAfter: string }
  | { state: 'failed'; code: EnrolErrorCode; message: string; at: string; retryAt?: string };
