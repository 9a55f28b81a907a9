// External-broker mode: a mosquitto (2.x) configuration that enforces the same identity and ACL
// rules as the embedded broker. The ACL lines are generated from the kind lists in
// shared/fleet/acl.ts, so the two modes cannot drift apart.
//
// What mosquitto enforces the same way: client certificate from the fleet CA required (identity =
// CN via use_identity_as_username), the client id replaced by that identity (no session takeover
// by claiming another box's id), per-kind publish/subscribe rules, and the fleet service's
// readwrite on mbox/#. What it cannot do like the embedded broker: consult the device directory —
// revocation and superseded certificates are refused only when they are in the CRL (crlPem) — and
// restrict a box's will to its status topic (a will is checked like any publish).
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEVICE_PUBLISH_KINDS, DEVICE_SUBSCRIBE_KINDS } from '../../shared/fleet/acl.ts';
import { FLEET_SERVICE_IDENTITY, TOPIC_ROOT } from '../../shared/fleet/topics.ts';

export interface MosquittoConfigOptions {
  /** Where mosquitto.conf, the ACL and the PEM files are written (created if missing). */
  dir: string;
  host: string;
  port: number;
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Revoked (and superseded) client certificates; mosquitto refuses them at the TLS handshake. */
  crlPem?: string;
  /** Keep sessions, queued QoS 1 and retained messages across restarts in <dir>/data (default off). */
  persistence?: boolean;
  /**
   * The `user` mosquitto switches to when started as root (default: its own, "mosquitto", which
   * then must be able to read `dir`). Tests running as root pass "root".
   */
  runAsUser?: string;
}

/** The mosquitto ACL file: the rules of shared/fleet/acl.ts with %u = certificate CN. */
export function mosquittoAcl(): string {
  return [
    '# m-box fleet broker ACL — generated from shared/fleet/acl.ts; %u is the client certificate CN.',
    `user ${FLEET_SERVICE_IDENTITY}`,
    `topic readwrite ${TOPIC_ROOT}/#`,
    '',
    '# Every box: publish only its own outbound kinds, read only what the fleet sends it.',
    ...DEVICE_PUBLISH_KINDS.map((kind) => `pattern write ${TOPIC_ROOT}/%u/${kind}`),
    ...DEVICE_SUBSCRIBE_KINDS.map((kind) => `pattern read ${TOPIC_ROOT}/%u/${kind}`),
    '',
  ].join('\n');
}

// mosquitto.conf has no quoting: a value is the rest of the line.
function confValue(name: string, value: string): string {
  if (/[\r\n]/.test(value) || value.trim() !== value || value === '') throw new Error(`mosquitto config: ${name} must be a single line without surrounding spaces: ${JSON.stringify(value)}`);
  return value;
}

export async function writeMosquittoConfig(opts: MosquittoConfigOptions): Promise<{ confPath: string }> {
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`mosquitto config: port must be 1-65535, got ${opts.port}`);
  const dir = confValue('dir', opts.dir);
  await mkdir(dir, { recursive: true });
  const path = (name: string) => join(dir, name);
  const files: Array<[string, string, number]> = [
    ['ca.pem', opts.caPem, 0o644],
    ['server.crt', opts.serverCertPem, 0o644],
    ['server.key', opts.serverKeyPem, 0o600],
    ['acl', mosquittoAcl(), 0o644],
  ];
  if (opts.crlPem) files.push(['crl.pem', opts.crlPem, 0o644]);
  for (const [name, content, mode] of files) {
    await writeFile(path(name), content, { mode });
    await chmod(path(name), mode);
  }

  const lines = [
    '# m-box fleet: external MQTT broker (fleet/broker/mosquitto.ts). Same identity and ACL rules as the embedded broker.',
    'per_listener_settings false',
    'allow_anonymous false',
    `acl_file ${path('acl')}`,
    'check_retain_source true',
    'max_queued_messages 1000',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'connection_messages true',
  ];
  if (opts.persistence) {
    await mkdir(path('data'), { recursive: true });
    lines.push('persistence true', `persistence_location ${path('data')}/`);
  } else {
    lines.push('persistence false');
  }
  if (opts.runAsUser) lines.push(`user ${confValue('runAsUser', opts.runAsUser)}`);
  lines.push(
    '',
    `listener ${opts.port} ${confValue('host', opts.host)}`,
    'protocol mqtt',
    `cafile ${path('ca.pem')}`,
    `certfile ${path('server.crt')}`,
    `keyfile ${path('server.key')}`,
    ...(opts.crlPem ? [`crlfile ${path('crl.pem')}`] : []),
    'require_certificate true',
    'use_identity_as_username true',
    // A listener option: the certificate identity replaces the client id, so a box cannot take
    // over (disconnect) another box's session by claiming its id.
    'use_username_as_clientid true',
    'tls_version tlsv1.2',
    '',
  );
  const confPath = path('mosquitto.conf');
  await writeFile(confPath, lines.join('\n'), { mode: 0o644 });
  return { confPath };
}
