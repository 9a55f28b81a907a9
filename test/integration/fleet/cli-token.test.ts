// `mbox ca init` and `mbox token create|list|revoke` as operators run them (scripts/mbox as a child
// process): the token is the last stdout line, carries the CA's pin, is audited, and a box enrols
// with it against a fleet running on the same data dir.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureIdentity } from '../../../appliance/agent/enrol.ts';
import { FileAuditLog } from '../../../fleet/api/audit.ts';
import { pemToDer } from '../../../shared/crypto/x509.ts';
import { caPinOf, parseEnrolToken } from '../../../shared/fleet/enrol.ts';
import type { EnrolTokenInfo } from '../../../shared/fleet/api.ts';
import { enrolFleet, silent } from './enrol-harness.ts';

const MBOX = resolve(import.meta.dirname, '../../../scripts/mbox');

function mbox(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(MBOX, args, { env: { ...process.env, MBOX_DATA_DIR: undefined } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}
const lastLine = (s: string) => s.trimEnd().split('\n').at(-1) ?? '';

let dir: string;
let boxDir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-cli-fleet-'));
  boxDir = await mkdtemp(join(tmpdir(), 'mbox-cli-box-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(boxDir, { recursive: true, force: true });
});

describe('mbox ca / mbox token', () => {
  it('needs a CA before it can make tokens, and says how to get one', async () => {
    const res = await mbox('token', 'create', '--data-dir', dir, '--group', 'north');
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`no fleet CA in ${join(dir, 'ca')}: run \`mbox ca init --data-dir ${dir}\` or start the fleet once`);
    expect(res.stdout).toBe('');
  });

  it('creates the CA once, refuses to replace it without --force, and prints path and pin', async () => {
    const first = await mbox('ca', 'init', '--data-dir', dir);
    expect(first.code).toBe(0);
    const pin = caPinOf(pemToDer(await readFile(join(dir, 'ca', 'ca.crt'), 'utf8')));
    expect(first.stdout).toContain(join(dir, 'ca', 'ca.crt'));
    expect(first.stdout).toContain(`pin: ${pin}`);
    const again = await mbox('ca', 'init', '--data-dir', dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists.*--force/);
    const forced = await mbox('ca', 'init', '--data-dir', dir, '--force');
    expect(forced.code).toBe(0);
    expect(forced.stdout).not.toContain(`pin: ${pin}`);
  });

  it('prints a token (after its QR code) that carries the pin, is listed, audited, revocable, and enrols a box', async () => {
    expect((await mbox('ca', 'init', '--data-dir', dir)).code).toBe(0);
    const pin = caPinOf(pemToDer(await readFile(join(dir, 'ca', 'ca.crt'), 'utf8')));
    const made = await mbox('token', 'create', '--data-dir', dir, '--group', 'north', '--label', 'clinic=Northside', '--expires', '2h', '--qr');
    expect(made.code).toBe(0);
    const token = parseEnrolToken(lastLine(made.stdout));
    expect(token).toBeDefined();
    expect(token!.caPin).toBe(pin);
    expect(made.stdout.split('\n').length).toBeGreaterThan(10); // the QR code came first
    expect(made.stderr).toContain(`enrolment token ${token!.tokenId} for group north (clinic=Northside)`);

    const listed = await mbox('token', 'list', '--data-dir', dir, '--json');
    const infos = JSON.parse(listed.stdout) as EnrolTokenInfo[];
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ tokenId: token!.tokenId, state: 'pending', group: 'north', labels: { clinic: 'Northside' }, createdBy: 'cli' });
    const expiresIn = Date.parse(infos[0]!.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(7_100_000);
    expect(expiresIn).toBeLessThanOrEqual(7_200_000);
    const [audited] = await new FileAuditLog(dir).list({ limit: 1, action: 'token.create' });
    expect(audited).toMatchObject({ actor: 'cli', action: 'token.create', target: token!.tokenId, outcome: 'ok' });

    // The fleet runs on the same data dir (its CA, its token files); the box enrols with the CLI's token.
    const fleet = await enrolFleet({ dataDir: dir });
    try {
      const id = await ensureIdentity({ dataDir: boxDir, fleetUrl: fleet.url, enrolToken: lastLine(made.stdout), firmware: 't', log: silent, onStatus: () => undefined });
      expect(id?.group).toBe('north');
      const table = await mbox('token', 'list', '--data-dir', dir);
      expect(table.stdout).toMatch(new RegExp(`${token!.tokenId}\\s+used\\s+north\\s+clinic=Northside\\s+\\S+\\s+${id!.deviceId}`));

      const second = parseEnrolToken(lastLine((await mbox('token', 'create', '--data-dir', dir)).stdout))!;
      const revoked = await mbox('token', 'revoke', second.tokenId, '--data-dir', dir);
      expect(revoked).toMatchObject({ code: 0, stdout: `revoked ${second.tokenId}\n` });
      expect((await mbox('token', 'revoke', second.tokenId, '--data-dir', dir)).code).toBe(1);
      expect((await mbox('token', 'revoke', token!.tokenId, '--data-dir', dir)).code).toBe(1);
      const states = (JSON.parse((await mbox('token', 'list', '--data-dir', dir, '--json')).stdout) as EnrolTokenInfo[]).map((t) => [t.tokenId, t.state]);
      expect(states).toEqual(
        expect.arrayContaining([
          [token!.tokenId, 'used'],
          [second.tokenId, 'revoked'],
        ]),
      );
    } finally {
      await fleet.destroy();
    }
  });

  it('refuses bad flags with exit code 2 and a message naming the flag', async () => {
    expect((await mbox('ca', 'init', '--data-dir', dir)).code).toBe(0);
    const cases: Array<[string[], RegExp]> = [
      [['token', 'create', '--data-dir', dir, '--expires', '3y'], /--expires: invalid duration '3y'/],
      [['token', 'create', '--data-dir', dir, '--label', 'clinic'], /--label 'clinic' must be key=value/],
      [['token', 'create', '--data-dir', dir, '--group', 'no spaces'], /--group 'no spaces'/],
      [['token', 'create', '--data-dir', dir, '--colour', 'red'], /unknown flag --colour/],
      [['token', 'create', '--data-dir'], /flag --data-dir needs a value/],
      [['token', 'frobnicate'], /unknown token command 'frobnicate'/],
      [['ca', 'init', '--data-dir', dir, '--import-cert', 'x.pem'], /--import-cert and --import-key go together/],
    ];
    const results = await Promise.all(cases.map(([args]) => mbox(...args)));
    for (const [i, [args, message]] of cases.entries()) {
      expect({ args, code: results[i]!.code }).toEqual({ args, code: 2 });
      expect(results[i]!.stderr).toMatch(message);
    }
  });
});
