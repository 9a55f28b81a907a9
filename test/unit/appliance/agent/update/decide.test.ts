import { describe, expect, it } from 'vitest';
import { decideOffer, failureOf, recordFailure, type OfferContext } from '../../../../../appliance/agent/update/decide.ts';
import type { UpdateOffer } from '../../../../../shared/update/messages.ts';

const offer = (over: Partial<UpdateOffer> = {}): UpdateOffer => ({
  rolloutId: 'ro-1',
  version: '1.1.0',
  url: 'https://fleet/api/releases/1.1.0/bundle',
  sha256: 'a'.repeat(64),
  size: 1000,
  retryApproved: false,
  offeredAt: '2026-11-22T10:00:00Z',
  ...over,
});

const ctx = (over: Partial<OfferContext> = {}): OfferContext => ({ notUpdatable: undefined, runningVersion: '1.0.0', failed: [], trial: undefined, active: undefined, ...over });

describe('decideOffer', () => {
  it('installs a new version on an updatable box', () => {
    expect(decideOffer(offer(), ctx())).toEqual({ action: 'install' });
  });

  it('reports the running version as committed instead of installing it again', () => {
    expect(decideOffer(offer({ version: '1.0.0' }), ctx())).toEqual({ action: 'report-committed', why: 'already running 1.0.0' });
  });

  it('refuses on a box that does not run from a slot, naming why', () => {
    expect(decideOffer(offer(), ctx({ notUpdatable: 'not updatable: not running from an A/B slot' }))).toEqual({ action: 'refuse', reason: 'not updatable: not running from an A/B slot' });
  });

  it('refuses a release that failed here before, with that failure, until the fleet re-approves it', () => {
    const failed = [
      { version: '1.1.0', at: '2026-11-20T00:00:00Z', reason: 'crash loop' },
      { version: '1.1.0', at: '2026-11-21T00:00:00Z', reason: 'health check failed: DICOM C-ECHO failed' },
    ];
    expect(decideOffer(offer(), ctx({ failed }))).toEqual({ action: 'refuse', reason: 'failed here before: health check failed: DICOM C-ECHO failed' });
    expect(decideOffer(offer({ retryApproved: true }), ctx({ failed }))).toEqual({ action: 'install' });
    // Another release is not affected.
    expect(decideOffer(offer({ version: '1.2.0' }), ctx({ failed }))).toEqual({ action: 'install' });
  });

  it('ignores offers while a trial runs: its health window reports the outcome', () => {
    expect(decideOffer(offer(), ctx({ trial: '1.1.0', runningVersion: '1.1.0' })).action).toBe('ignore');
    expect(decideOffer(offer({ version: '1.2.0' }), ctx({ trial: '1.1.0' })).action).toBe('ignore');
  });

  it('ignores the offer it is already working on (a redelivered retained message) but not a changed one', () => {
    const active = { rolloutId: 'ro-1', version: '1.1.0', sha256: 'a'.repeat(64) };
    expect(decideOffer(offer(), ctx({ active })).action).toBe('ignore');
    expect(decideOffer(offer({ rolloutId: 'ro-2' }), ctx({ active })).action).toBe('install');
    expect(decideOffer(offer({ sha256: 'b'.repeat(64) }), ctx({ active })).action).toBe('install');
  });

  it('checks "already running" before "not updatable": a dev box that runs the version says so', () => {
    expect(decideOffer(offer({ version: '1.0.0' }), ctx({ notUpdatable: 'x' })).action).toBe('report-committed');
  });
});

describe('failure memory', () => {
  it('keeps one entry per version, newest last, bounded', () => {
    let failed = recordFailure([], { version: '1.1.0', at: 't1', reason: 'a' });
    failed = recordFailure(failed, { version: '1.2.0', at: 't2', reason: 'b' });
    failed = recordFailure(failed, { version: '1.1.0', at: 't3', reason: 'c' });
    expect(failed.map((f) => `${f.version}:${f.reason}`)).toEqual(['1.2.0:b', '1.1.0:c']);
    expect(failureOf(failed, '1.1.0')?.reason).toBe('c');
    expect(failureOf(failed, '9.9.9')).toBeUndefined();
    for (let i = 0; i < 60; i++) failed = recordFailure(failed, { version: `2.0.${i}`, at: 't', reason: 'x' }, 50);
    expect(failed).toHaveLength(50);
    expect(failed.at(-1)?.version).toBe('2.0.59');
  });
});

describe('an offer delivered again after its outcome', () => {
  it('is answered already, so a re-approved release that failed again is not installed in a loop; a new re-approval is', () => {
    const failed = [{ version: '1.1.0', at: 't', reason: 'crash loop' }];
    const answered = { rolloutId: 'ro-1', version: '1.1.0', offeredAt: '2026-11-22T10:00:00Z', phase: 'rolled-back' };
    expect(decideOffer(offer({ retryApproved: true }), ctx({ failed, answered }))).toEqual({ action: 'ignore', why: 'answered already (rolled-back)' });
    expect(decideOffer(offer({ retryApproved: true, offeredAt: '2026-11-22T11:00:00Z' }), ctx({ failed, answered }))).toEqual({ action: 'install' });
  });
});
