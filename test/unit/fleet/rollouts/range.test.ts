import { describe, expect, it } from 'vitest';
import { decideRange } from '../../../../fleet/rollouts/range.ts';

describe('decideRange', () => {
  it('serves one byte range, open-ended and suffix ranges clamped to the file', () => {
    expect(decideRange(undefined, 100)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=0-9', 100)).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(decideRange('bytes=50-', 100)).toEqual({ kind: 'partial', start: 50, end: 99 });
    expect(decideRange('bytes=90-500', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(decideRange('bytes=-10', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(decideRange('bytes=-500', 100)).toEqual({ kind: 'partial', start: 0, end: 99 });
  });

  it('answers 416 for a range that starts past the end', () => {
    expect(decideRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=-0', 100)).toEqual({ kind: 'unsatisfiable' });
  });

  it('ignores what it does not support: other units, several ranges, inverted ranges', () => {
    expect(decideRange('items=0-1', 100)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=9-3', 100)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=-', 100)).toEqual({ kind: 'full' });
  });

  it('applies If-Range only when it matches the ETag (the file could have changed)', () => {
    expect(decideRange('bytes=0-9', 100, { ifRange: '"abc"', etag: '"abc"' })).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(decideRange('bytes=0-9', 100, { ifRange: '"old"', etag: '"abc"' })).toEqual({ kind: 'full' });
  });
});
