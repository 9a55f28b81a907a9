// The dashboard's file serving over real HTTP: the page shell with its CSP, TypeScript modules
// stripped at request time with import specifiers rewritten, validators, and no way out of the
// dashboard's own folders.
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SRC_DIR, rewriteSpecifiers } from '../../../fleet/web/assets.ts';
import { fleetWeb } from '../../../fleet/web/plugin.ts';

let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  app = Fastify();
  await app.register(fleetWeb);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await app.close();
});

const importsOf = (js: string): string[] => [...js.matchAll(/\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1] ?? m[2] ?? '');

describe('dashboard serving', () => {
  it('serves the page shell with a strict CSP and no inline script or style', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toMatch(/https?:/);
    const html = await res.text();
    expect(html).toContain('<script type="module" src="/web/main.js"></script>');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|<style/);
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('serves every browser module as JavaScript, reachable from main.js, importing only its siblings', async () => {
    const seen = new Set<string>();
    const queue = ['main.js'];
    while (queue.length > 0) {
      const name = queue.shift() ?? '';
      if (seen.has(name)) continue;
      seen.add(name);
      const res = await fetch(`${base}/web/${name}`);
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const js = await res.text();
      // Types are gone (a leftover annotation would be a syntax error in the browser).
      expect(js).not.toMatch(/^\s*(export\s+)?(interface|type)\s+\w+/m);
      for (const spec of importsOf(js)) {
        expect(spec, `${name} imports ${spec}`).toMatch(/^\.\/[a-z0-9-]+\.js$/);
        queue.push(spec.slice(2));
      }
    }
    const sources = (await readdir(SRC_DIR)).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, '.js'));
    // Every source file is part of the app (no dead module), and everything imported exists.
    expect([...seen].sort()).toEqual(sources.sort());
  });

  it('answers with strong validators and 304 on a match', async () => {
    const first = await fetch(`${base}/web/chart.js`);
    const etag = first.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{20,}"$/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    const again = await fetch(`${base}/web/chart.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const css = await fetch(`${base}/web/app.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const page = await fetch(`${base}/`, { headers: { 'if-none-match': `"other", ${(await fetch(`${base}/`)).headers.get('etag')}` } });
    expect(page.status).toBe(304);
  });

  it('serves nothing outside its folders (traversal, other extensions, server files)', async () => {
    const bad = [
      '/web/..%2Fplugin.js',
      '/web/..%2fassets.js',
      '/web/%2e%2e%2fplugin.js',
      '/web/..%5Cplugin.js',
      '/web/../plugin.ts',
      '/web/plugin.js',
      '/web/assets.js',
      '/web/main.ts',
      '/web/MAIN.js',
      '/web/main.js.map',
      '/web/index.html',
      '/web/tsconfig.json',
      '/web/..%2F..%2F..%2Fpackage.json',
      '/web/%00main.js',
      '/web/',
      '/web/.js',
    ];
    for (const path of bad) {
      const res = await fetch(`${base}${path}`);
      const text = await res.text();
      expect(res.status, path).toBe(404);
      expect(text, path).not.toContain('fastify');
      expect(text, path).not.toContain('stripTypeScriptTypes');
    }
    const res = await fetch(`${base}/web/..%2Fplugin.js`);
    expect(await res.json()).toMatchObject({ error: 'not-found', statusCode: 404 });
  });
});

describe('module transform', () => {
  it('rewrites relative .ts specifiers only', () => {
    const src = [
      "import { a } from './a.ts';",
      'import "./side.ts";',
      "export { b } from '../up/b.ts';",
      "const m = await import('./lazy.ts');",
      "import x from 'pkg/thing.ts';",
      "const s = './not-an-import.ts';",
    ].join('\n');
    expect(rewriteSpecifiers(src).split('\n')).toEqual([
      "import { a } from './a.js';",
      'import "./side.js";',
      "export { b } from '../up/b.js';",
      "const m = await import('./lazy.js');",
      "import x from 'pkg/thing.ts';",
      "const s = './not-an-import.ts';",
    ]);
  });

  it('re-makes a module when its file changes, keeps it cached otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbox-web-'));
    const other = Fastify();
    try {
      writeFileSync(join(dir, 'mod.ts'), 'export const n: number = 1;\n');
      await other.register(fleetWeb, { srcDir: dir });
      const one = await other.inject({ url: '/web/mod.js' });
      expect(one.body).toMatch(/export const n\s+= 1;/);
      expect((await other.inject({ url: '/web/mod.js' })).headers.etag).toBe(one.headers.etag);
      writeFileSync(join(dir, 'mod.ts'), 'export const n: number = 22;\n');
      utimesSync(join(dir, 'mod.ts'), new Date(), new Date(Date.now() + 5000));
      const two = await other.inject({ url: '/web/mod.js' });
      expect(two.body).toContain('= 22;');
      expect(two.headers.etag).not.toBe(one.headers.etag);
      // Syntax that strip mode cannot erase is a server error naming the file, not broken JS.
      writeFileSync(join(dir, 'bad.ts'), 'enum E { A }\n');
      const bad = await other.inject({ url: '/web/bad.js' });
      expect(bad.statusCode).toBe(500);
    } finally {
      await other.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
