// The signed update bundle, defined once for the builder (image-build/bundle), the box (verifies
// before it installs) and the fleet (verifies on upload).
//
// A bundle file (`.mbx`) is a gzip'd POSIX tar whose entries come in this order:
//   manifest.json        BundleManifest, canonical JSON (canonicalJson below)
//   manifest.sig.json    BundleSignature over the exact bytes of manifest.json
//   payload/<path>       every file the manifest lists, in manifest order
// Reproducible: entries sorted, mtime = manifest.createdAt, uid/gid 0, no user names, gzip
// header without name or time — the same inputs give the same bytes.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';

export const BUNDLE_FORMAT = 'mbox-bundle/1';
export const MANIFEST_ENTRY = 'manifest.json';
export const SIGNATURE_ENTRY = 'manifest.sig.json';
export const PAYLOAD_PREFIX = 'payload/';

export const BundleFile = Type.Object(
  {
    /** Relative, '/'-separated, no '..', no leading '/'. */
    path: Type.String({ minLength: 1, maxLength: 1024 }),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    /** 0o755 for executables, 0o644 otherwise; nothing else is carried. */
    mode: Type.Union([Type.Literal(0o755), Type.Literal(0o644)]),
  },
  { additionalProperties: false },
);
export type BundleFile = Static<typeof BundleFile>;

export const BundleManifest = Type.Object(
  {
    format: Type.Literal(BUNDLE_FORMAT),
    /** The release's version (semver), also the firmware version the box reports. */
    version: Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?$' }),
    arch: Type.Union([Type.Literal('arm64'), Type.Literal('x64')]),
    nodeVersion: Type.String(),
    /** ISO 8601, from SOURCE_DATE_EPOCH or the last commit: not the build's wall clock. */
    createdAt: Type.String(),
    /** Schema version of the box's data; the box runs migrations up to it at first start. */
    dataSchema: Type.Integer({ minimum: 1 }),
    files: Type.Array(BundleFile),
  },
  { additionalProperties: false },
);
export type BundleManifest = Static<typeof BundleManifest>;

export const BundleSignature = Type.Object(
  {
    algorithm: Type.Literal('ed25519'),
    /** keyIdOf(public key): which pinned key must verify it. */
    keyId: Type.String(),
    /** base64 signature over the bytes of manifest.json. */
    signature: Type.String(),
  },
  { additionalProperties: false },
);
export type BundleSignature = Static<typeof BundleSignature>;

/** JSON with sorted keys and no whitespace: the bytes that are signed. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** 16 base64url characters of SHA-256 over the SubjectPublicKeyInfo DER. */
export function keyIdOf(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64url').slice(0, 16);
}

/** Why a bundle was refused; `code` is stable for tests, the UI and the fleet's per-box status. */
export type BundleErrorCode =
  | 'unreadable' // not a gzip'd tar, truncated, entries out of order, unexpected entry
  | 'manifest-invalid'
  | 'signature-invalid'
  | 'unknown-key' // signed by a key that is not pinned
  | 'file-mismatch' // a payload file's size or sha256 differs from the manifest
  | 'file-missing'
  | 'file-unexpected'
  | 'wrong-arch';

export class BundleError extends Error {
  override name = 'BundleError';
  readonly code: BundleErrorCode;
  constructor(code: BundleErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
