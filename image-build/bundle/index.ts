// Signed update bundles: keys, build, verify, extract (format: shared/update/manifest.ts).
export { initKeys, pinnedKeys, signingKey, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE } from './keys.ts';
export { buildBundle, listStage, type BuildOptions } from './build.ts';
export { verifyBundle, readManifest, type VerifyOptions } from './verify.ts';
export { extractBundle } from './extract.ts';
export { stageRelease, stageReleaseDetailed, type StageDetail, type StageOptions } from './stage.ts';
export { releaseCreatedAt, releaseNodeVersion, releaseVersion, DEFAULT_DATA_SCHEMA } from './release-info.ts';
export { BundleError, type BundleErrorCode, type BundleManifest, type BundleSignature } from '../../shared/update/manifest.ts';
