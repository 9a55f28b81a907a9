// The dashboard in a real browser against the real fleet: startFleet (HTTPS from its own CA,
// embedded broker with mutual TLS), two boxes enrolled with tokens minted through the API and
// talking MQTT with their issued certificates, then chromium logs in and works every view.
// Screenshots of each view land in test/artifacts/screenshots/.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type RunningFleet } from '../../../fleet/fleet.ts';
import type { AuditEntry, DeviceSummary } from '../../../shared/fleet/api.ts';
import { FleetConfigSchema } from '../../../shared/config/fleet.ts';
import { loadConfig } from '../../../shared/config/load.ts';
import { createLogger } from '../../../shared/log.ts';
import { launchBrowser, openPage, screenshot, type TestPage } from '../../helpers/browser.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { apiCall, dailyFigures, enrolSimBox, type SimBox } from './dashboard-sim.ts';

const log = createLogger('silent', 'dashboard-test');
const adminToken = `admin-${randomBytes(12).toString('hex')}`;
const day = (offset: number): string => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

let dataDir: string;
let fleet: RunningFleet;
let caPem: string;
let browser: Browser;
let north: SimBox;
let south: SimBox;
const boxDirs: string[] = [];
let admin: TestPage;
let page: Page;

const api = <T>(method: string, path: string, body?: unknown, token = adminToken) => apiCall<T>(fleet.baseUrl, caPem, token, method, path, body);

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'mbox-dashboard-'));
  const config = loadConfig(FleetConfigSchema, {
    argv: ['--data-dir', dataDir, '--http-port', '0', '--mqtt-port', '0', '--admin-token', adminToken, '--log-level', 'silent'],
  });
  fleet = await startFleet(config, log);
  caPem = fleet.pki.caCertPem;
  const creds = { baseUrl: fleet.baseUrl, caPem, adminToken };
  const a = await enrolSimBox(creds, 'radiology', 'North Clinic', log);
  const b = await enrolSimBox(creds, 'outpatient', 'South Clinic', log);
  boxDirs.push(a.dir, b.dir);
  north = a.box;
  south = b.box;
  // A short history (stamped 30 s apart) so the device charts have several points; the daily
  // figures give the stats page two modalities and two clinics over two days.
  const start = Date.now() - 6 * 30_000;
  for (let k = 0; k < 6; k++) {
    const at = new Date(start + k * 30_000);
    await north.telemetry(
      { cpu: 20 + 7 * k, memPercent: 40 + k, diskPercent: 55 + k, queue: k * 2, oldestQueuedAgeS: k === 0 ? null : k * 15, daily: [dailyFigures(day(-1), 'CT', 6, 900), dailyFigures(day(-1), 'MR', 2, 400), dailyFigures(day(0), 'CT', 3 + k, 450), dailyFigures(day(0), 'MR', 1, 200)] },
      at,
    );
    await south.telemetry({ cpu: 10 + k, memPercent: 30, diskPercent: k < 5 ? 80 : 92, queue: 1, oldestQueuedAgeS: 5, daily: [dailyFigures(day(-1), 'CT', 4, 500), dailyFigures(day(0), 'CT', 2, 260)] }, at);
  }
  await waitUntil(
    async () => {
      const r = await api<DeviceSummary[]>('GET', '/api/devices');
      return r.status === 200 && r.body.length === 2 && r.body.every((d) => d.online) && r.body.some((d) => d.id === south.id && d.health === 'warning');
    },
    20_000,
    'both boxes online, the south box with its disk alert',
  );
  browser = await launchBrowser();
  admin = await openPage(browser, { timezoneId: 'UTC' });
  page = admin.page;
}, 120_000);

afterAll(async () => {
  await admin?.close();
  await browser?.close();
  await north?.close();
  await south?.close();
  await fleet?.stop();
  for (const d of [dataDir, ...boxDirs]) if (d) rmSync(d, { recursive: true, force: true });
});

async function login(p: Page, token: string): Promise<void> {
  await p.goto(`${fleet.baseUrl}/`);
  await p.locator('#token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
}

/** Rows of the devices table, as [id, …cells]. */
const deviceIds = (p: Page): Promise<string[]> => p.locator('.view-overview tbody tr td:nth-child(2)').allTextContents();

describe('fleet dashboard in chromium', () => {
  it('refuses a wrong token with the server message', async () => {
    const t = await openPage(browser);
    try {
      await login(t.page, 'not-a-real-token-0000');
      const err = t.page.locator('#login-error');
      await expect.poll(() => err.textContent()).toMatch(/Token not accepted: .+/);
      expect(await t.page.locator('#top').isHidden()).toBe(true);
      await screenshot(t.page, '01-login-refused');
    } finally {
      await t.close();
    }
  });

  it('overview: both boxes online, the disk alert, filters that survive the refresh', async () => {
    await login(page, adminToken);
    await page.locator('.view-overview tbody tr').nth(1).waitFor();
    expect((await deviceIds(page)).sort()).toEqual([north.id, south.id].sort());
    expect(await page.locator('.view-overview tbody .dot-on').count()).toBe(2);
    expect(await page.locator('[data-count="online"] .tile-value').textContent()).toBe('2');
    const disk = page.locator(`.alerts li[data-kind="disk"][data-device="${south.id}"]`);
    await disk.waitFor();
    expect(await disk.textContent()).toMatch(/disk 92(\.0)?\s?% used/);
    expect(await page.locator(`.alerts li[data-device="${north.id}"]`).count()).toBe(0);
    expect(await page.locator('.who').textContent()).toContain('admin');
    await screenshot(page, '02-overview');

    await page.locator('#f-group').selectOption('outpatient');
    await expect.poll(() => deviceIds(page)).toEqual([south.id]);
    const stamp = await page.locator('.view-overview p.small').textContent();
    await expect.poll(() => page.locator('.view-overview p.small').textContent(), { timeout: 12_000 }).not.toBe(stamp);
    expect(await page.locator('#f-group').inputValue()).toBe('outpatient');
    expect(await deviceIds(page)).toEqual([south.id]);
    await page.locator('#f-group').selectOption('');
    await expect.poll(() => deviceIds(page).then((ids) => ids.length)).toBe(2);
  });

  it('device page: charts from the history, figures, config push pending then reported', async () => {
    await page.locator(`a[href="#/devices/${north.id}"]`).first().click();
    const cpu = page.locator('figure[data-chart="CPU, memory and disk (%)"] path.line');
    await cpu.first().waitFor();
    expect(await cpu.count()).toBe(3);
    for (const n of await cpu.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-points'))))) expect(n).toBeGreaterThan(1);
    const d = await cpu.first().getAttribute('d');
    expect((d ?? '').match(/L/g)?.length ?? 0).toBeGreaterThan(1);
    expect(Number(await page.locator('figure[data-chart="Upload queue (instances)"] path.line').getAttribute('data-points'))).toBeGreaterThan(1);
    expect(await page.locator('figure[data-chart^="CPU"] circle title').first().textContent()).toMatch(/^CPU · .+: \d+ %$/);
    expect(await page.getByText('Instances by state').count()).toBeGreaterThan(0);

    await page.locator('#config-editor').fill('{"logLevel": "debug"}');
    await page.getByRole('button', { name: 'Push config' }).click();
    await page.locator('[data-config-state="pending"]').waitFor();
    await waitUntil(async () => north.desired.length === 1, 10_000, 'the box to get its desired config');
    await screenshot(page, '03-device-pending');
    await north.report(north.desired[0]!, { status: 'applied' });
    await page.locator('[data-config-state="applied"]').waitFor({ timeout: 12_000 });

    // The fleet refuses a key that is not remote-settable: its 400 message is shown.
    await page.locator('#config-editor').fill('{"dataDir": "/elsewhere"}');
    await page.getByRole('button', { name: 'Push config' }).click();
    const refused = page.locator('.config-editor .error');
    await refused.waitFor();
    expect(await refused.textContent()).toMatch(/dataDir/);

    // The box refuses a value: its reason comes back through reported.
    north.onDesired = (dc) => (dc.config.maxAssociations === 64 ? { status: 'rejected', error: 'maxAssociations 64 is above what this box allows (16)' } : null);
    await page.locator('#config-editor').fill('{"maxAssociations": 64}');
    await page.getByRole('button', { name: 'Push config' }).click();
    const rejected = page.locator('[data-config-state="rejected"]');
    await rejected.waitFor({ timeout: 12_000 });
    expect(await rejected.textContent()).toContain('above what this box allows');
  });

  it('device page: ping and fetch logs come back from the box', async () => {
    await page.locator('button[data-command="ping"]').click();
    // Final state: the page follows a command that came back still pending until it is answered.
    const result = page.locator('.command-result[data-command="ping"][data-status="ok"]');
    await result.waitFor();
    expect(await result.textContent()).toContain('pong');

    await page.locator('button[data-command="fetch-logs"]').click();
    await page.locator('dialog[open] input[name="answer"]').fill('50');
    await page.locator('dialog[open] button[type="submit"]').click();
    const logs = page.locator('pre.logs');
    await logs.waitFor();
    expect(await logs.textContent()).toContain('<b>not markup</b>');
    expect(await logs.locator('b').count()).toBe(0);
    expect(north.commands.map((c) => c.name)).toEqual(['ping', 'fetch-logs']);
    expect(north.commands[1]?.args).toEqual({ lines: 50 });
    await page.locator('.commands tbody tr').nth(1).waitFor();
    await screenshot(page, '04-device');
  });

  it('device page: group, tags and labels are edited through PATCH (text stays text)', async () => {
    await page.getByText('Edit group, tags and labels').click();
    await page.locator('#m-tags').fill('ct, <i>pilot</i>');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('.edit .ok-text').waitFor();
    const tags = (await api<DeviceSummary[]>('GET', '/api/devices')).body.find((d) => d.id === north.id)?.tags;
    expect(tags).toEqual(['ct', '<i>pilot</i>']);
    await expect.poll(() => page.locator('.kv dd', { hasText: 'pilot' }).textContent(), { timeout: 12_000 }).toBe('ct, <i>pilot</i>');
    expect(await page.locator('.kv i').count()).toBe(0);
  });

  it('stats: stacked bars for two modalities and two clinics, bytes and latency charts', async () => {
    await page.goto(`${fleet.baseUrl}/#/stats?days=7`);
    const studies = page.locator('figure[data-chart="Studies per day by modality"] rect.bar');
    await studies.first().waitFor();
    const series = async (chart: string): Promise<string[]> =>
      [...new Set(await page.locator(`figure[data-chart="${chart}"] rect.bar`).evaluateAll((els) => els.map((e) => e.getAttribute('data-series') ?? '')))].sort();
    expect(await series('Studies per day by modality')).toEqual(['CT', 'MR']);
    expect(await series('Instances per day by clinic')).toEqual(['North Clinic', 'South Clinic']);
    // Stacked: yesterday's bar is two rects on one day, the upper one starting where the lower ends.
    const yesterday = page.locator(`figure[data-chart="Studies per day by modality"] rect.bar[data-category="${day(-1)}"]`);
    expect(await yesterday.count()).toBe(2);
    const [lower, upper] = await yesterday.evaluateAll((els) => els.map((e) => ({ y: Number(e.getAttribute('y')), h: Number(e.getAttribute('height')) })));
    expect(Math.abs((upper?.y ?? 0) + (upper?.h ?? 0) - (lower?.y ?? 0))).toBeLessThan(1);
    expect(await page.locator(`figure[data-chart="Studies per day by modality"] rect.bar[data-category="${day(-1)}"][data-series="CT"] title`).textContent()).toContain('CT: 10');
    expect(await page.locator('figure[data-chart^="Bytes per day"] rect.bar').count()).toBeGreaterThanOrEqual(6);
    const latency = page.locator('figure[data-chart^="Upload latency"] path.line');
    expect(await latency.count()).toBe(2);
    expect(Number(await latency.first().getAttribute('data-points'))).toBe(2);
    expect(await page.locator('.tile', { hasText: 'saved' }).textContent()).toMatch(/\d+(\.\d)? %/);
    expect(await page.locator('.segmented [aria-current="true"]').textContent()).toBe('7 days');
    await screenshot(page, '05-stats');
  });

  it('tokens: create one with its QR image, list, revoke', async () => {
    await page.goto(`${fleet.baseUrl}/#/tokens`);
    await page.locator('#t-group').fill('east');
    await page.locator('#t-clinic').fill('East Clinic');
    await page.getByRole('button', { name: 'Create token' }).click();
    const qr = page.locator('img.qr');
    await qr.waitFor();
    expect(await qr.getAttribute('src')).toMatch(/^data:image\/svg\+xml/);
    // Decoded: the CSP let the data: image in and it is a real SVG.
    // (The callback runs in the page; the root tsconfig has no DOM types, hence the narrow shape.)
    await expect.poll(() => qr.evaluate((img) => (img as unknown as { complete: boolean; naturalWidth: number }).naturalWidth > 0)).toBe(true);
    expect(await page.locator('#new-token').inputValue()).toMatch(/^mbx1\.[a-z0-9]{10}\.[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{22}$/);
    const tokenId = await page.locator('.new-token').getAttribute('data-token-id');
    const row = page.locator('.view-tokens tbody tr', { hasText: tokenId ?? '?' });
    await row.waitFor();
    expect(await row.locator('[data-state]').textContent()).toBe('pending');
    expect(await row.textContent()).toContain('clinic=East Clinic');
    expect(await page.locator('.view-tokens [data-state="used"]').count()).toBe(2);
    await screenshot(page, '06-tokens');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.locator('dialog[open] button[type="submit"]').click();
    await expect.poll(() => row.locator('[data-state]').textContent()).toBe('revoked');
  });

  it('audit: lists what was just done, filters by action', async () => {
    const entries = (await api<AuditEntry[]>('GET', '/api/audit?limit=100')).body;
    const actions = [...new Set(entries.map((e) => e.action))];
    expect(actions).toEqual(expect.arrayContaining(['device.config.set', 'device.command']));
    await page.goto(`${fleet.baseUrl}/#/audit`);
    await page.locator('.view-audit tbody tr').first().waitFor();
    const shown = await page.locator('.view-audit tbody td:nth-child(3)').allTextContents();
    for (const a of actions) expect(shown).toContain(a);
    await screenshot(page, '07-audit');
    await page.locator('#a-action').selectOption('device.command');
    await expect.poll(async () => [...new Set(await page.locator('.view-audit tbody td:nth-child(3)').allTextContents())]).toEqual(['device.command']);
  });

  it('a viewer sees the fleet but no buttons it may not use', async () => {
    const created = await api<{ token: string }>('POST', '/api/tokens/api', { name: 'wall-display', role: 'viewer' });
    expect(created.status).toBeLessThan(300);
    const t = await openPage(browser, { viewport: { width: 390, height: 844 } });
    try {
      await login(t.page, created.body.token);
      await t.page.locator('.view-overview tbody tr').nth(1).waitFor();
      expect(await t.page.locator('.who').textContent()).toContain('viewer');
      expect(await t.page.locator('nav a', { hasText: 'Audit' }).count()).toBe(0);
      await screenshot(t.page, '08-viewer-overview-narrow');
      await t.page.goto(`${fleet.baseUrl}/#/devices/${south.id}`);
      await t.page.locator('figure[data-chart^="CPU"]').waitFor();
      await t.page.locator('[data-config="desired"]').waitFor();
      expect(await t.page.getByRole('button', { name: 'Push config' }).count()).toBe(0);
      expect(await t.page.locator('[data-action="revoke"]').count()).toBe(0);
      expect(await t.page.locator('button[data-command]').count()).toBe(0);
      expect(await t.page.locator('#config-editor').count()).toBe(0);
      await screenshot(t.page, '09-viewer-device-narrow');
      expect(t.problems.filter((p) => !/status of 40[0-9]/.test(p))).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('admin revokes a device after confirming; the page shows it revoked', async () => {
    await page.goto(`${fleet.baseUrl}/#/devices/${north.id}`);
    const revoke = page.locator('[data-action="revoke"]');
    await revoke.click();
    // Cancelling changes nothing.
    await page.locator('dialog[open]').getByRole('button', { name: 'Cancel' }).click();
    expect((await api<DeviceSummary[]>('GET', '/api/devices')).body.find((d) => d.id === north.id)?.revoked).toBe(false);
    await revoke.click();
    await page.locator('dialog[open] button[type="submit"]').click();
    await expect.poll(() => revoke.textContent()).toBe('Revoked');
    expect(await revoke.isDisabled()).toBe(true);
    expect((await api<DeviceSummary[]>('GET', '/api/devices')).body.find((d) => d.id === north.id)?.revoked).toBe(true);
    await screenshot(page, '10-device-revoked');
  });

  it('ran without script errors or CSP violations', () => {
    // The refused config push answers 400 on purpose; anything else is a fault.
    expect(admin.problems.filter((p) => !/status of 400 \(Bad Request\)/.test(p))).toEqual([]);
  });
});
