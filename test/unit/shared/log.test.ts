import { describe, expect, it } from 'vitest';
import { createLogger, logRingOf, LogRing, setLogLevel } from '../../../shared/log.ts';

const quiet = { write: () => undefined };

describe('log ring', () => {
  it('keeps the last lines, oldest first, filtered by level', () => {
    const ring = new LogRing(3);
    for (const [level, msg] of [[30, 'a'], [50, 'b'], [20, 'c'], [40, 'd']] as const) ring.write(`{"level":${level},"msg":"${msg}"}\n`);
    expect(ring.recent(10).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['b', 'c', 'd']);
    expect(ring.recent(10, 'warn').map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['b', 'd']);
    expect(ring.recent(1).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['d']);
  });

  it('is filled by createLogger and reachable from any child', () => {
    const log = createLogger('info', 'test', { destination: quiet });
    const child = log.child({ component: 'x' }).child({ y: 1 });
    child.info('hello');
    child.debug('not at info');
    const lines = logRingOf(child)!.recent(10).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ msg: 'hello', component: 'x', y: 1, level: 30 })]);
  });

  it('keeps none when asked to', () => {
    expect(logRingOf(createLogger('info', 'test', { destination: quiet, ringLines: 0 }))).toBeUndefined();
  });
});

describe('setLogLevel', () => {
  it('changes the root and every child made before', () => {
    const log = createLogger('info', 'test', { destination: quiet });
    const child = log.child({ component: 'x' });
    const grandchild = child.child({ z: 1 });
    setLogLevel(log, 'debug');
    expect([log.level, child.level, grandchild.level, log.child({}).level]).toEqual(['debug', 'debug', 'debug', 'debug']);
    grandchild.debug('now visible');
    expect(logRingOf(log)!.recent(5).some((l) => l.includes('now visible'))).toBe(true);
    setLogLevel(child, 'warn');
    expect(log.level).toBe('warn');
  });
});
