// The release and rollout pages in chromium against the real fleet and six simulated boxes: an
// admin uploads a bundle through the page, starts a rollout with the default waves, sees it pause
// when a box rolls back (reason on the page, wave chart drawn), re-approves that box, resumes, and
// the rollout completes; the device page shows the box's update state; a viewer gets no buttons.
// No script errors or CSP violations on the way.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderTargets } from '../../../fleet/rollouts/plan.ts';
import { launchBrowser, openPage, screenshot, type TestPage } from '../../helpers/browser.ts';
import { ADMIN_TOKEN, startTestFleet, type TestFleet } from '../../helpers/fleet.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { makeRelease, seedBoxes, SimUpdateBox } from './rollout-sim.ts';

describe('release and rollout pages in chromium', () => {
  let work: string;
  let fleet: TestFleet;
  let browser: Browser;
  let admin: TestPage;
  let page: Page;
  let release: Awaited<ReturnType<typeof makeRelease>>;
  let failing: string;
  const sims: SimUpdateBox[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mbox-rollout-web-'));
    const dataDir = join(work, 'fleet');
    const ids = await seedBoxes(dataDir, { prefix: 'web', count: 6, group: 'ward', firmware: '1.0.0' });
    release = await makeRelease(work, { version: '1.3.0', payloadBytes: 32 * 1024 });
    fleet = await startTestFleet(['--release-pubkeys', release.publicKeyPath], dataDir);
    // Waves for 6 boxes: 1, 1, 3, 6 → the first box of the 50 % wave rolls back: 1 of 2 > 10 %.
    failing = orderTargets(ids.map((i) => i.id))[1]!;
    for (const id of ids) {
      sims.push(new SimUpdateBox(id, { mqttUrl: fleet.mqttUrl, caPem: fleet.pki.caCertPem, firmware: '1.0.0', behaviour: { failFirstTry: id.id === failing, actDelayMs: 0, healthMs: 100, pieces: 1 } }));
    }
    await Promise.all(sims.map((b) => b.connect()));
    await waitUntil(async () => (await fleet.api.get<Array<{ online: boolean }>>('/api/devices')).body.filter((d) => d.online).length === 6, 20_000, 'boxes online');
    browser = await launchBrowser();
    admin = await openPage(browser, { timezoneId: 'UTC' });
    page = admin.page;
  }, 120_000);

  afterAll(async () => {
    await admin?.close();
    await browser?.close();
    await Promise.all(sims.map((b) => b.close().catch(() => undefined)));
    await fleet?.destroy();
    await rm(work, { recursive: true, force: true });
  });

  async function login(p: Page, token: string): Promise<void> {
    await p.goto(`${fleet.baseUrl}/`);
    await p.locator('#token').fill(token);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.locator('.who').waitFor();
  }

  it('uploads a bundle through the releases page', async () => {
    await login(page, ADMIN_TOKEN);
    await page.locator('nav a', { hasText: 'Releases' }).click();
    await page.locator('#r-file').setInputFiles(release.file);
    await page.getByRole('button', { name: 'Upload and verify' }).click();
    await expect.poll(() => page.locator('#upload-result').textContent(), { timeout: 15_000 }).toContain('Release 1.3.0 verified and stored.');
    await page.locator('a[data-version="1.3.0"]').click();
    await expect.poll(() => page.locator('.view-releases .kv').textContent()).toContain(release.sha256);
    await screenshot(page, 'rollout-01-releases');
  });

  it('starts a rollout, shows the pause and its reason, retries the box, resumes to completion', async () => {
    await page.locator('nav a', { hasText: 'Rollouts' }).click();
    await page.locator('#ro-version option[value="1.3.0"]').waitFor({ state: 'attached' });
    await page.locator('#ro-group').fill('ward');
    expect(await page.locator('.wave-row').count()).toBe(4);
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.waitForURL(/#\/rollouts\/ro-/);
    const state = page.locator('.view-rollout [data-state]').first();
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('paused');
    expect(await page.locator('.pause-reason').textContent()).toMatch(/wave 3: failure rate 50\.0 % \(1 of 2\) exceeds 10\.0 %/);
    expect(await page.locator('figure[data-chart="waves"] rect[data-segment="failed"]').count()).toBe(1);
    expect(await page.locator(`tr:has(a[href="#/devices/${failing}"]) [data-status="rolled-back"]`).count()).toBe(1);
    await screenshot(page, 'rollout-02-paused');

    await page.locator(`button[data-retry="${failing}"]`).click();
    await page.locator('dialog[open] button[type="submit"]').click();
    await expect.poll(() => page.locator(`tr:has(a[href="#/devices/${failing}"]) [data-status]`).textContent(), { timeout: 20_000 }).toBe('committed');
    await page.locator('button[data-action="resume"]').click();
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('completed');
    expect(await page.locator('figure[data-chart="waves"] rect[data-segment="committed"]').count()).toBe(3);
    await screenshot(page, 'rollout-03-completed');

    await page.locator(`a[href="#/devices/${failing}"]`).first().click();
    const panel = page.locator('.update-panel');
    await expect.poll(() => panel.locator('[data-update-phase]').getAttribute('data-update-phase')).toBe('committed');
    expect(await panel.textContent()).toContain('1.3.0');
  });

  it('a viewer sees rollouts without any button', async () => {
    const created = await fleet.api.post<{ token: string }>('/api/tokens/api', { name: 'wall', role: 'viewer' });
    const t = await openPage(browser);
    try {
      await login(t.page, created.body.token);
      await t.page.goto(`${fleet.baseUrl}/#/rollouts`);
      await t.page.locator('a[data-rollout]').first().click();
      await t.page.locator('figure[data-chart="waves"]').waitFor();
      expect(await t.page.locator('button[data-action]').count()).toBe(0);
      expect(await t.page.locator('button[data-retry]').count()).toBe(0);
      await t.page.goto(`${fleet.baseUrl}/#/releases`);
      await t.page.locator('a[data-version]').first().waitFor();
      expect(await t.page.locator('#r-file').count()).toBe(0);
      expect(t.problems).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('ran without script errors or CSP violations', () => {
    expect(admin.problems).toEqual([]);
  });
});
