// The dashboard's files as the browser gets them. Browser code is TypeScript in ./src, turned into
// JavaScript at request time by Node's own type stripping: no bundler, no build step, and the
// same erasable-syntax rules as the rest of the project. Results are cached per file and
// re-made only when the file's mtime or size changes.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
export const SRC_DIR = join(HERE, 'src');
export const STATIC_DIR = join(HERE, 'static');

/** A served name: one path segment, lower-case, no dots but the extension. Nothing else resolves. */
const ASSET_NAME = /^([a-z0-9][a-z0-9-]{0,63})\.(js|css)$/;

export interface Asset {
  body: Buffer;
  contentType: string;
  /** Strong validator: the same bytes always give the same tag. */
  etag: string;
}

interface Cached extends Asset {
  mtimeMs: number;
  size: number;
}

/**
 * Relative `.ts` specifiers become `.js` so the browser asks for the served names. Only static
 * `import … from`, `export … from`, bare `import '…'` and `import('…')` with a literal are touched;
 * type-only imports are already gone after stripping.
 */
export function rewriteSpecifiers(js: string): string {
  return js
    .replace(/(\bfrom\s*|\bimport\s*)(['"])(\.{1,2}\/[^'"\n]+)\.ts\2/g, '$1$2$3.js$2')
    .replace(/(\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"\n]+)\.ts\2(\s*\))/g, '$1$2$3.js$2$4');
}

/** TypeScript → browser JavaScript. Strip mode keeps every line and column where it was, so
 * stack traces in the browser point at the right place in the .ts source without a source map. */
export function transformModule(source: string, name: string): string {
  let js: string;
  try {
    js = stripTypeScriptTypes(source, { mode: 'strip', sourceUrl: `/web/${name}` });
  } catch (err) {
    // Non-erasable syntax (enum, namespace, parameter property) in a dashboard source file.
    throw new Error(`cannot serve /web/${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return rewriteSpecifiers(js);
}

const strongEtag = (body: Buffer): string => `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;

export class AssetStore {
  readonly #cache = new Map<string, Cached>();
  readonly #srcDir: string;
  readonly #staticDir: string;

  constructor(dirs: { srcDir?: string; staticDir?: string } = {}) {
    this.#srcDir = dirs.srcDir ?? SRC_DIR;
    this.#staticDir = dirs.staticDir ?? STATIC_DIR;
  }

  /** The asset for a URL name like `main.js` or `app.css`; undefined for any other name or a missing file. */
  async get(name: string): Promise<Asset | undefined> {
    const m = ASSET_NAME.exec(name);
    if (!m) return undefined;
    const [, base, ext] = m;
    const file = ext === 'js' ? join(this.#srcDir, `${base}.ts`) : join(this.#staticDir, `${base}.css`);
    let st;
    try {
      st = await stat(file);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const hit = this.#cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const text = await readFile(file, 'utf8');
    const body = Buffer.from(ext === 'js' ? transformModule(text, name) : text, 'utf8');
    const asset: Cached = {
      body,
      contentType: ext === 'js' ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      etag: strongEtag(body),
      mtimeMs: st.mtimeMs,
      size: st.size,
    };
    this.#cache.set(file, asset);
    return asset;
  }

  /** The page shell; read once per change like the rest. */
  async page(): Promise<Asset> {
    const file = join(this.#staticDir, 'index.html');
    const st = await stat(file);
    const hit = this.#cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const body = await readFile(file);
    const asset: Cached = { body, contentType: 'text/html; charset=utf-8', etag: strongEtag(body), mtimeMs: st.mtimeMs, size: st.size };
    this.#cache.set(file, asset);
    return asset;
  }
}
