// (b) Tampered bundles reach a real box and are refused with their code; the box stays on its
// version and neither slot is touched. The fleet verifies uploads, so it never stores such a
// bundle: these come from a stand-in download server (mutual TLS with the fleet's CA, Range) and
// offers published through the fleet's MQTT connection — a fleet that was compromised. The
// offer's sha256/size are the tampered file's own, so only the box's signature and per-file
// checks stand between the bundle and the slot; a last case serves other bytes than the offer
// names (the download's sha256 check).
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyPair, manifestOf, resign, rewrite } from '../unit/image-build/bundle/tamper.ts';
import { SIGNATURE_ENTRY } from '../../shared/update/manifest.ts';
import type { UpdateOffer } from '../../shared/update/messages.ts';
import { BundleServer, buildRelease, digestOf, publishOffer, startLab, updateInfo, waitBox, type Lab, type Release } from '../integration/update/updater-harness.ts';

describe('(b) tampered bundles on a real box', () => {
  let lab: Lab;
  let good: Release;
  const server = new BundleServer();

  beforeAll(async () => {
    lab = await startLab('1.0.0');
    good = await buildRelease(lab.work, '1.3.0', { privateKeyPem: lab.keys.privateKeyPem });
    await server.start(lab.fleet);
  }, 60_000);

  afterAll(async () => {
    await server.stop();
    await lab?.destroy();
  });

  let n = 0;
  /** Offers `file` (its own digest unless `digest` says otherwise) and waits for the box's verdict. */
  async function offerAndWait(file: string, digest?: { sha256: string; size: number }): Promise<string> {
    const id = `ro-tamper-${++n}`;
    const d = digest ?? (await digestOf(file));
    const offer: UpdateOffer = { rolloutId: id, version: '1.3.0', url: server.serve(`b${n}.mbx`, file), ...d, retryApproved: false, offeredAt: new Date().toISOString() };
    await publishOffer(lab, offer);
    const info = await waitBox(lab, `verdict on ${id}`, (i) => i.status?.rolloutId === id && ['refused', 'failed', 'restarting', 'committed'].includes(i.status.phase), 20_000);
    return info.status?.reason ?? '';
  }

  async function expectUntouched(): Promise<void> {
    const info = await updateInfo(lab);
    expect(info).toMatchObject({ runningVersion: '1.0.0', slot: 'a', versions: { a: '1.0.0', b: null }, failed: [] });
    expect(readlinkSync(join(lab.root, 'current'))).toBe('slots/a');
    expect(existsSync(join(lab.root, 'slots/b'))).toBe(false);
    expect(readdirSync(join(lab.root, 'slots')).sort()).toEqual(['a']);
    expect(readdirSync(join(lab.root, 'downloads')).filter((f) => f.startsWith('1.3.0'))).toEqual([]);
    expect(existsSync(join(lab.root, 'boot/pending'))).toBe(false);
    // Never restarted: one run of the launcher the whole time.
    expect(lab.box.runs).toHaveLength(1);
  }

  it('refuses one changed byte of one file (file-mismatch)', async () => {
    const bad = join(lab.work, 'byte.mbx');
    await rewrite(good.file, bad, (entries) => {
      const e = entries.find((x) => x.path === 'payload/shared/cli/main.ts')!;
      e.body = Buffer.from(e.body);
      e.body[10]! ^= 0x20;
    });
    expect(await offerAndWait(bad)).toMatch(/^bundle refused \(file-mismatch\): .*shared\/cli\/main\.ts/);
    await expectUntouched();
  });

  it('refuses a changed manifest (signature-invalid)', async () => {
    const bad = join(lab.work, 'manifest.mbx');
    await rewrite(good.file, bad, (entries) => {
      const e = entries.find((x) => x.path === 'manifest.json')!;
      e.body = Buffer.from(e.body.toString('utf8').replace('"dataSchema":1', '"dataSchema":2'));
    });
    expect(await offerAndWait(bad)).toMatch(/^bundle refused \(signature-invalid\)/);
    await expectUntouched();
  });

  it('refuses a changed signature (signature-invalid)', async () => {
    const bad = join(lab.work, 'sig.mbx');
    await rewrite(good.file, bad, (entries) => {
      const e = entries.find((x) => x.path === SIGNATURE_ENTRY)!;
      const sig = JSON.parse(e.body.toString('utf8')) as { signature: string };
      const raw = Buffer.from(sig.signature, 'base64');
      raw[5]! ^= 0x01;
      e.body = Buffer.from(JSON.stringify({ ...sig, signature: raw.toString('base64') }));
    });
    expect(await offerAndWait(bad)).toMatch(/^bundle refused \(signature-invalid\)/);
    await expectUntouched();
  });

  it('refuses a bundle signed with a key the box does not pin (unknown-key), even one claiming the pinned key id', async () => {
    const other = keyPair();
    const bad = join(lab.work, 'wrongkey.mbx');
    await rewrite(good.file, bad, (entries) => resign(entries, other.privateKeyPem, () => undefined));
    expect(await offerAndWait(bad)).toMatch(/^bundle refused \(unknown-key\)/);
    const liar = join(lab.work, 'liar.mbx');
    await rewrite(good.file, liar, (entries) => {
      const claim = JSON.parse(entries.find((x) => x.path === SIGNATURE_ENTRY)!.body.toString('utf8')) as { keyId: string };
      return resign(entries, other.privateKeyPem, (m) => void (m.version = manifestOf(entries).version), { claimKeyId: claim.keyId });
    });
    expect(await offerAndWait(liar)).toMatch(/^bundle refused \(signature-invalid\)/);
    await expectUntouched();
  });

  it('refuses bytes that are not the ones the offer names (sha256-mismatch), before opening them', async () => {
    const bad = join(lab.work, 'swapped.mbx');
    await rewrite(good.file, bad, (entries) => {
      const e = entries.find((x) => x.path === 'payload/package.json')!;
      e.body = Buffer.concat([e.body, Buffer.from(' ')]);
    });
    const bytes = await digestOf(bad);
    const claimed = await digestOf(good.file);
    expect(await offerAndWait(bad, { sha256: claimed.sha256, size: bytes.size })).toMatch(/^bundle refused \(sha256-mismatch\): sha256 of the downloaded bundle is/);
    await expectUntouched();
    // Every download was the box's own, over its device certificate.
    expect(new Set(server.requests.map((r) => r.cn))).toEqual(new Set([lab.deviceId]));
  });

  it('and then installs the untampered bundle from the same server', async () => {
    await offerAndWait(good.file);
    const info = await waitBox(lab, '1.3.0 committed', (i) => i.runningVersion === '1.3.0' && i.status?.phase === 'committed');
    expect(info).toMatchObject({ slot: 'b', versions: { a: '1.0.0', b: '1.3.0' } });
  }, 40_000);
});
