// The mosquitto configuration: directives, file modes, and an ACL that grants exactly what
// shared/fleet/acl.ts grants (checked with a small model of mosquitto's pattern matching).
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mosquittoAcl, writeMosquittoConfig } from '../../../../fleet/broker/mosquitto.ts';
import { mayPublish, mayReceive } from '../../../../shared/fleet/acl.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../../../shared/fleet/topics.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-mosq-conf-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const base = () => ({ dir, host: '127.0.0.1', port: 8883, caPem: 'CA', serverCertPem: 'CERT', serverKeyPem: 'KEY' });

describe('writeMosquittoConfig', () => {
  it('writes a TLS-only listener that takes identity from the client certificate', async () => {
    const { confPath } = await writeMosquittoConfig({ ...base(), crlPem: 'CRL' });
    const conf = await readFile(confPath, 'utf8');
    const lines = conf.split('\n');
    for (const d of ['allow_anonymous false', 'persistence false', 'listener 8883 127.0.0.1', 'require_certificate true', 'use_identity_as_username true', 'use_username_as_clientid true', 'tls_version tlsv1.2', `acl_file ${join(dir, 'acl')}`, `cafile ${join(dir, 'ca.pem')}`, `crlfile ${join(dir, 'crl.pem')}`]) {
      expect(lines, d).toContain(d);
    }
    // Listener options must come after the listener line, or mosquitto applies them elsewhere.
    const listenerAt = lines.indexOf('listener 8883 127.0.0.1');
    for (const d of ['require_certificate true', 'use_identity_as_username true', 'use_username_as_clientid true', 'cafile']) {
      expect(lines.findIndex((l) => l.startsWith(d)), d).toBeGreaterThan(listenerAt);
    }
    expect(lines.some((l) => l.startsWith('user '))).toBe(false);
    expect((await stat(join(dir, 'server.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'crl.pem'), 'utf8')).toBe('CRL');
  });

  it('turns on persistence and the run-as user only when asked', async () => {
    const { confPath } = await writeMosquittoConfig({ ...base(), persistence: true, runAsUser: 'root' });
    const conf = await readFile(confPath, 'utf8');
    expect(conf).toContain('persistence true');
    expect(conf).toContain(`persistence_location ${join(dir, 'data')}/`);
    expect(conf).toContain('\nuser root\n');
  });

  it('refuses values that would break the line-based format', async () => {
    await expect(writeMosquittoConfig({ ...base(), host: '127.0.0.1\nallow_anonymous true' })).rejects.toThrow(/single line/);
    await expect(writeMosquittoConfig({ ...base(), port: 0 })).rejects.toThrow(/port/);
  });
});

// mosquitto's topic matching for ACL entries: %u substituted per level, + one level, # the rest.
function aclMatches(pattern: string, username: string, topic: string): boolean {
  const p = pattern.split('/').map((l) => (l === '%u' ? username : l));
  const t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (i >= t.length) return false;
    if (p[i] !== '+' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

function aclAllows(acl: string, username: string, topic: string, access: 'read' | 'write'): boolean {
  let user: string | undefined;
  for (const line of acl.split('\n')) {
    const [kw, ...rest] = line.trim().split(/\s+/);
    if (kw === 'user') user = rest[0];
    if (kw !== 'topic' && kw !== 'pattern') continue;
    const [mode, t] = rest.length === 2 ? rest : ['readwrite', rest[0]];
    if (kw === 'topic' && user !== username) continue;
    if (mode === 'readwrite' || mode === access) {
      if (aclMatches(t!, kw === 'pattern' ? username : '', topic)) return true;
    }
  }
  return false;
}

describe('mosquittoAcl', () => {
  it('grants exactly what shared/fleet/acl.ts grants, for every kind and identity', () => {
    const acl = mosquittoAcl();
    const ids = ['mb-aaaa1111', 'mb-bbbb2222'];
    const candidates = ids.flatMap((id) => [
      topics.status(id), topics.telemetry(id), topics.desired(id), topics.reported(id), topics.commandRequest(id), topics.commandResponse(id),
      `mbox/${id}`, `mbox/${id}/other`, `mbox/${id}/config/other`,
    ]).concat(['mbox/x', 'other/topic', '$SYS/broker/uptime']);
    for (const who of [...ids, FLEET_SERVICE_IDENTITY]) {
      for (const topic of candidates) {
        expect(aclAllows(acl, who, topic, 'write'), `${who} write ${topic}`).toBe(mayPublish(who, topic));
        expect(aclAllows(acl, who, topic, 'read'), `${who} read ${topic}`).toBe(mayReceive(who, topic));
      }
    }
  });
});
