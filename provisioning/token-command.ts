// `mbox token create|list|revoke`: enrolment tokens, straight on the fleet's data dir (files, so
// this works while the fleet runs). The token is always the last line of stdout, for scripts.
import { join, resolve } from 'node:path';
import QRCode from 'qrcode';
import { FileAuditLog } from '../fleet/api/audit.ts';
import { parseDuration, TokenStore } from '../fleet/enrol/tokens.ts';
import { readCaCertPem } from '../fleet/pki/pki.ts';
import { ConfigError } from '../shared/config/load.ts';
import { pemToDer } from '../shared/crypto/x509.ts';
import { caPinOf } from '../shared/fleet/enrol.ts';
import type { EnrolTokenInfo } from '../shared/fleet/api.ts';
import { fleetDataDir, parseFlags } from './args.ts';

export const TOKEN_USAGE = `usage: mbox token create [--data-dir <fleet dir>] [--group <g>] [--expires <dur>] [--label key=value ...] [--qr]
       mbox token list   [--data-dir <fleet dir>] [--json]
       mbox token revoke <token id> [--data-dir <fleet dir>]

  create   a one-time enrolment token (group default "default", --expires default 24h: 90s, 30m, 24h, 7d);
           the token is the last line of stdout, --qr prints it as a QR code too
  list     every token and its state (pending, used, expired, revoked)
  revoke   make a pending token unusable`;

const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const LABEL_KEY_RE = /^[A-Za-z][A-Za-z0-9._-]{0,31}$/;

export async function tokenCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'create') return create(rest);
  if (sub === 'list') return list(rest);
  if (sub === 'revoke') return revoke(rest);
  throw new ConfigError(`${sub ? `unknown token command '${sub}'` : 'missing token command'}\n${TOKEN_USAGE}`);
}

async function create(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { values: ['data-dir', 'group', 'expires'], lists: ['label'], switches: ['qr'] }, TOKEN_USAGE);
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument '${flags.positionals[0]}'\n${TOKEN_USAGE}`);
  const dataDir = resolve(fleetDataDir(flags));
  const group = flags.values.get('group') ?? 'default';
  if (!GROUP_RE.test(group)) throw new ConfigError(`--group '${group}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  let expiresInMs: number;
  try {
    expiresInMs = parseDuration(flags.values.get('expires') ?? '24h');
  } catch (err) {
    throw new ConfigError(`--expires: ${(err as Error).message}`);
  }
  const labels: Record<string, string> = {};
  for (const l of flags.lists.get('label') ?? []) {
    const eq = l.indexOf('=');
    const key = eq > 0 ? l.slice(0, eq) : '';
    const value = eq > 0 ? l.slice(eq + 1) : '';
    if (!LABEL_KEY_RE.test(key) || value === '' || value.length > 128) throw new ConfigError(`--label '${l}' must be key=value (key: a letter then letters, digits, '.', '_', '-'; value: 1-128 characters)`);
    labels[key] = value;
  }
  const caPem = await readCaCertPem(join(dataDir, 'ca'));
  if (caPem === undefined) throw new ConfigError(`no fleet CA in ${join(dataDir, 'ca')}: run \`mbox ca init --data-dir ${dataDir}\` or start the fleet once`);
  const caPin = caPinOf(pemToDer(caPem));

  const { token, record } = await new TokenStore(join(dataDir, 'tokens')).create({ group, labels, expiresInMs, createdBy: 'cli', caPin });
  await new FileAuditLog(dataDir).record({ actor: 'cli', action: 'token.create', target: record.tokenId, outcome: 'ok', detail: { group, labels, expiresAt: record.expiresAt } });
  const labelText = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(', ');
  process.stderr.write(
    `enrolment token ${record.tokenId} for group ${group}${labelText ? ` (${labelText})` : ''}, valid until ${record.expiresAt}, for one box:\n` +
      `  mbox appliance --fleet-url https://<fleet host>:<port> --enrol-token <token>\n`,
  );
  if (flags.switches.has('qr')) {
    const qr = await QRCode.toString(token, { type: 'terminal', small: true });
    process.stdout.write(qr.endsWith('\n') ? qr : `${qr}\n`);
  }
  process.stdout.write(`${token}\n`);
}

async function list(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { values: ['data-dir'], switches: ['json'] }, TOKEN_USAGE);
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument '${flags.positionals[0]}'\n${TOKEN_USAGE}`);
  const tokens = await new TokenStore(join(resolve(fleetDataDir(flags)), 'tokens')).list();
  if (flags.switches.has('json')) {
    process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
    return;
  }
  process.stdout.write(table(tokens));
}

function table(tokens: EnrolTokenInfo[]): string {
  if (tokens.length === 0) return 'no enrolment tokens\n';
  const rows = [
    ['TOKEN ID', 'STATE', 'GROUP', 'LABELS', 'EXPIRES', 'DEVICE'],
    ...tokens.map((t) => [t.tokenId, t.state, t.group, Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', t.expiresAt, t.deviceId ?? '-']),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

async function revoke(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { values: ['data-dir'] }, TOKEN_USAGE);
  const [tokenId, extra] = flags.positionals;
  if (!tokenId || extra !== undefined) throw new ConfigError(`token revoke needs exactly one token id\n${TOKEN_USAGE}`);
  const dataDir = resolve(fleetDataDir(flags));
  const done = await new TokenStore(join(dataDir, 'tokens')).revoke(tokenId, 'cli');
  if (!done) {
    process.stderr.write(`mbox: no pending token '${tokenId}' (used, revoked or unknown; see \`mbox token list\`)\n`);
    process.exitCode = 1;
    return;
  }
  await new FileAuditLog(dataDir).record({ actor: 'cli', action: 'token.revoke', target: tokenId, outcome: 'ok' });
  process.stdout.write(`revoked ${tokenId}\n`);
}
