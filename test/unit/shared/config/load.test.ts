import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApplianceConfigSchema } from '../../../../shared/config/appliance.ts';
import { loadConfig } from '../../../../shared/config/load.ts';

const load = (argv: string[] = [], env: Record<string, string> = {}) => loadConfig(ApplianceConfigSchema, { argv, env });

describe('loadConfig', () => {
  it('fills every key from the schema defaults', () => {
    const c = load();
    expect(c.dicomPort).toBe(11112);
    expect(c.aeTitle).toBe('MBOX');
    expect(c.quietTimeMs).toBe(10000);
    expect(c.allowedCallingAe).toEqual([]);
  });

  it('takes file < env < flag, with types coerced', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'box.json');
    writeFileSync(file, JSON.stringify({ dicomPort: 1000, httpPort: 2000, aeTitle: 'FROMFILE' }));
    const c = load(['--config', file, '--dicom-port', '3000', '--allowed-calling-ae', 'CT1, MR2'], { MBOX_HTTP_PORT: '4000', MBOX_DICOM_PORT: '5000' });
    expect(c.dicomPort).toBe(3000);
    expect(c.httpPort).toBe(4000);
    expect(c.aeTitle).toBe('FROMFILE');
    expect(c.allowedCallingAe).toEqual(['CT1', 'MR2']);
  });

  it('accepts --flag=value and bare boolean flags', () => {
    expect(load(['--dicom-port=1234', '--no-check-called-ae']).checkCalledAe).toBe(false);
    expect(load(['--tls-require-client-cert']).tlsRequireClientCert).toBe(true);
  });

  it('names the offending key, its source and what was expected', () => {
    expect(() => load(['--dicom-port', '70000'])).toThrow(/config key 'dicomPort' \(from flag --dicom-port\) must be <= 65535/);
    expect(() => load([], { MBOX_AE_TITLE: 'THIS_TITLE_IS_FAR_TOO_LONG' })).toThrow(/'aeTitle' \(from environment MBOX_AE_TITLE\)/);
    expect(() => load(['--quiet-time-ms', 'soon'])).toThrow(/'quietTimeMs'.*must be integer/);
  });

  it('refuses unknown flags and unknown file keys', () => {
    expect(() => load(['--dicom-prot', '1'])).toThrow(/unknown flag --dicom-prot/);
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ dicomPrt: 1 }));
    expect(() => load(['--config', join(dir, 'c.json')])).toThrow(/unknown config key 'dicomPrt'/);
    writeFileSync(join(dir, 'bad.json'), '{nope');
    expect(() => load(['--config', join(dir, 'bad.json')])).toThrow(/not valid JSON/);
  });
});
