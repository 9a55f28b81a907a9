// Real-browser tests: Debian's chromium driven by playwright-core (playwright's own browser
// download cannot work here). Pages record console errors, uncaught exceptions and failed
// requests so a test can assert a clean run (a CSP violation shows up as a console error).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.MBOX_CHROMIUM ?? '/usr/bin/chromium';
/** Kept by CI as artifacts. */
export const SCREENSHOT_DIR = resolve(import.meta.dirname, '..', 'artifacts', 'screenshots');

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface TestPage {
  context: BrowserContext;
  page: Page;
  /** Console errors, page errors and failed requests, in order. */
  problems: string[];
  close(): Promise<void>;
}

/**
 * A fresh context (own sessionStorage, cookies) with one page. The fleet serves HTTPS from its own
 * CA, which the browser does not know: certificate errors are ignored for this context only.
 */
export async function openPage(browser: Browser, opts: { viewport?: { width: number; height: number }; timezoneId?: string } = {}): Promise<TestPage> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: opts.viewport ?? { width: 1280, height: 900 },
    ...(opts.timezoneId ? { timezoneId: opts.timezoneId } : {}),
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`requestfailed: ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ''}`));
  return { context, page, problems, close: () => context.close() };
}

/** Full-page PNG under test/artifacts/screenshots/<name>.png; returns the path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = join(SCREENSHOT_DIR, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
