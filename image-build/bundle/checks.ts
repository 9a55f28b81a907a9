// What a manifest must be beyond its schema, shared by the builder (refuses to sign a bad one) and
// the verifier (refuses to install one, even correctly signed): safe relative paths in strictly
// ascending order (so no duplicates) and no file standing where another needs a directory.
import { Value } from '@sinclair/typebox/value';
import { BundleError, BundleManifest, BundleSignature } from '../../shared/update/manifest.ts';
import { isSafeRelativePath } from './tar-read.ts';

/** Bytes the verifier reads before it knows who signed them. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
export const MAX_SIGNATURE_BYTES = 4096;

function firstSchemaError(schema: Parameters<typeof Value.Errors>[0], value: unknown): string {
  const e = Value.Errors(schema, value).First();
  return e ? `${e.path || '/'}: ${e.message}` : 'does not match the schema';
}

/** Throws BundleError('manifest-invalid') naming the first problem. */
export function checkManifest(value: unknown): BundleManifest {
  if (!Value.Check(BundleManifest, value)) throw new BundleError('manifest-invalid', `manifest ${firstSchemaError(BundleManifest, value)}`);
  const m = value;
  if (Number.isNaN(Date.parse(m.createdAt))) throw new BundleError('manifest-invalid', `manifest createdAt '${m.createdAt}' is not a date`);
  const files = new Set<string>();
  let prev: string | undefined;
  for (const f of m.files) {
    if (!isSafeRelativePath(f.path)) throw new BundleError('manifest-invalid', `manifest path '${f.path}' is not a safe relative path`);
    if (f.path.split('/').some((seg) => Buffer.byteLength(seg) > 255)) throw new BundleError('manifest-invalid', `manifest path '${f.path}' has a name longer than 255 bytes`);
    if (prev !== undefined && !(prev < f.path)) throw new BundleError('manifest-invalid', `manifest paths out of order or repeated at '${f.path}'`);
    const segs = f.path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/');
      if (files.has(dir)) throw new BundleError('manifest-invalid', `manifest has both a file '${dir}' and '${f.path}' inside it`);
    }
    files.add(f.path);
    prev = f.path;
  }
  return m;
}

export function checkSignature(value: unknown): BundleSignature {
  if (!Value.Check(BundleSignature, value)) throw new BundleError('signature-invalid', `signature entry ${firstSchemaError(BundleSignature, value)}`);
  return value;
}

export function parseJsonEntry(buf: Buffer, what: string, code: 'manifest-invalid' | 'signature-invalid'): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf)) as unknown;
  } catch (err) {
    throw new BundleError(code, `${what} is not JSON: ${(err as Error).message}`);
  }
}
