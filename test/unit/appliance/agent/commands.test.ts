import { describe, expect, it, vi } from 'vitest';
import { handleCommand, type CommandTarget } from '../../../../appliance/agent/commands.ts';
import { OperatorError } from '../../../../appliance/store/operator.ts';
import type { InstanceRecord } from '../../../../shared/types/store.ts';

const NOW = new Date('2026-11-22T10:00:00.000Z');
const now = () => NOW;

function request(name: string, args: Record<string, unknown> = {}, over: Record<string, unknown> = {}) {
  return { id: 'cmd-00000001', name, args, issuedAt: '2026-11-22T09:59:00.000Z', expiresAt: '2026-11-22T10:05:00.000Z', ...over };
}

function fakeTarget(over: Partial<CommandTarget> = {}): CommandTarget & { calls: string[] } {
  const calls: string[] = [];
  const held = new Set(['1.2.3.1', '1.2.3.2']);
  const record = (id: string, state: InstanceRecord['state']) => ({ id, state }) as InstanceRecord;
  return {
    calls,
    restart: vi.fn(async () => {
      calls.push('restart');
      return { dicomPort: 11112 };
    }),
    resendStudy: vi.fn(async (uid: string, by: string) => {
      calls.push(`resend ${uid} ${by}`);
      if (uid !== '1.2.3') throw new OperatorError('not-found', `no study ${uid}`);
      return { studyInstanceUid: uid, requeued: ['1.2.3.1'], skipped: { pending: 1 } };
    }),
    releaseHeld: vi.fn(async (id: string, by: string) => {
      calls.push(`release ${id} ${by}`);
      if (!held.has(id)) throw new OperatorError('conflict', `instance ${id} is committed, not held`);
      return record(id, 'received');
    }),
    discardHeld: vi.fn(async (id: string, by: string, reason?: string) => {
      calls.push(`discard ${id} ${by} ${reason ?? ''}`);
      return record(id, 'discarded');
    }),
    logs: vi.fn((lines: number, level: string) => {
      calls.push(`logs ${lines} ${level}`);
      return Array.from({ length: Math.min(lines, 3) }, (_, i) => JSON.stringify({ level: 30, msg: `line ${i}` }));
    }),
    uptimeS: () => 42,
    ...over,
  };
}

describe('handleCommand', () => {
  it('answers ping with pong, the time and the uptime', async () => {
    expect(await handleCommand(request('ping'), fakeTarget(), now)).toEqual({
      id: 'cmd-00000001',
      status: 'ok',
      result: { pong: true, at: NOW.toISOString(), uptimeS: 42 },
      at: NOW.toISOString(),
    });
  });

  it('answers an expired command with expired and does not run it', async () => {
    const t = fakeTarget();
    const res = await handleCommand(request('restart', {}, { expiresAt: '2026-11-22T09:59:59.000Z' }), t, now);
    expect(res).toMatchObject({ status: 'expired', error: expect.stringContaining('2026-11-22T09:59:59.000Z') });
    expect(t.calls).toEqual([]);
  });

  it('answers an unknown name with unknown-command, listing the known ones', async () => {
    const res = await handleCommand(request('reboot'), fakeTarget(), now);
    expect(res).toMatchObject({ status: 'unknown-command', error: expect.stringMatching(/unknown command 'reboot'.*ping.*fetch-logs/) });
  });

  it('answers a malformed request with what is wrong, when it has an id', async () => {
    const bad = { ...request('ping'), expiresAt: undefined };
    expect(await handleCommand(bad, fakeTarget(), now)).toMatchObject({ status: 'error', error: expect.stringContaining("must have required property 'expiresAt'") });
    expect(await handleCommand({ ...request('ping'), expiresAt: 'not a date, long' }, fakeTarget(), now)).toMatchObject({ status: 'error', error: expect.stringContaining('is not a date') });
  });

  it('cannot answer a request without an id', async () => {
    expect(await handleCommand({ name: 'ping' }, fakeTarget(), now)).toBeUndefined();
    expect(await handleCommand(null, fakeTarget(), now)).toBeUndefined();
    expect(await handleCommand('ping', fakeTarget(), now)).toBeUndefined();
  });

  it('restarts, then answers with the port', async () => {
    const t = fakeTarget();
    expect(await handleCommand(request('restart'), t, now)).toMatchObject({ status: 'ok', result: { restarted: true, dicomPort: 11112 } });
    expect(t.calls).toEqual(['restart']);
  });

  it('reports a failing restart as an error with its reason', async () => {
    const t = fakeTarget({ restart: async () => Promise.reject(new Error('DICOM port 104 is already in use')) });
    expect(await handleCommand(request('restart'), t, now)).toMatchObject({ status: 'error', error: 'DICOM port 104 is already in use' });
  });

  it('validates arguments per command, naming the argument', async () => {
    const t = fakeTarget();
    expect(await handleCommand(request('resend-study'), t, now)).toMatchObject({ status: 'error', error: "args: must have required property 'studyInstanceUid'" });
    expect(await handleCommand(request('resend-study', { studyInstanceUid: 'x y' }), t, now)).toMatchObject({ status: 'error', error: expect.stringMatching(/^args\.studyInstanceUid: must match pattern/) });
    expect(await handleCommand(request('ping', { loud: true }), t, now)).toMatchObject({ status: 'error', error: "args: unknown argument 'loud'" });
    expect(await handleCommand(request('fetch-logs', { lines: 5000 }), t, now)).toMatchObject({ status: 'error', error: 'args.lines: must be <= 2000' });
    expect(await handleCommand(request('fetch-logs', { level: 'loud' }), t, now)).toMatchObject({ status: 'error', error: expect.stringContaining('args.level') });
    expect(t.calls).toEqual([]);
  });

  it('resends a study by its UID and passes on who asked', async () => {
    const t = fakeTarget();
    const res = await handleCommand(request('resend-study', { studyInstanceUid: '1.2.3' }), t, now);
    expect(res).toMatchObject({ status: 'ok', result: { studyInstanceUid: '1.2.3', requeued: ['1.2.3.1'] } });
    expect(t.calls).toEqual(['resend 1.2.3 fleet command cmd-00000001']);
    expect(await handleCommand(request('resend-study', { studyInstanceUid: '9.9' }), t, now)).toMatchObject({ status: 'error', error: 'no study 9.9' });
  });

  it('releases one held instance or several, and says which failed', async () => {
    const t = fakeTarget();
    expect(await handleCommand(request('release-held', { id: '1.2.3.1' }), t, now)).toMatchObject({ status: 'ok', result: { released: ['1.2.3.1'], failed: [] } });
    const mixed = await handleCommand(request('release-held', { ids: ['1.2.3.2', '1.2.3.9'] }), t, now);
    expect(mixed).toMatchObject({
      status: 'error',
      error: '1 of 2 not released: instance 1.2.3.9 is committed, not held',
      result: { released: ['1.2.3.2'], failed: [{ id: '1.2.3.9' }] },
    });
  });

  it('wants exactly one of id and ids', async () => {
    const t = fakeTarget();
    expect(await handleCommand(request('discard-held', {}), t, now)).toMatchObject({ status: 'error', error: 'args: give exactly one of id or ids' });
    expect(await handleCommand(request('discard-held', { id: '1.2.3.1', ids: ['1.2.3.2'] }), t, now)).toMatchObject({ status: 'error' });
    expect(await handleCommand(request('discard-held', { ids: [] }), t, now)).toMatchObject({ status: 'error', error: expect.stringContaining('args.ids') });
  });

  it('discards with the reason given, and accepts a conflicting version id', async () => {
    const t = fakeTarget();
    const res = await handleCommand(request('discard-held', { id: '1.2.3.1#0123456789ab', reason: 'test patient' }), t, now);
    expect(res).toMatchObject({ status: 'ok', result: { discarded: ['1.2.3.1#0123456789ab'] } });
    expect(t.calls).toEqual(['discard 1.2.3.1#0123456789ab fleet command cmd-00000001 test patient']);
  });

  it('fetches 200 log lines by default, parsed, with a level floor when asked', async () => {
    const t = fakeTarget();
    const res = await handleCommand(request('fetch-logs'), t, now);
    expect(res).toMatchObject({ status: 'ok', result: { count: 3, truncated: false, lines: [{ msg: 'line 0' }, { msg: 'line 1' }, { msg: 'line 2' }] } });
    await handleCommand(request('fetch-logs', { lines: 10, level: 'warn' }), t, now);
    expect(t.calls).toEqual(['logs 200 trace', 'logs 10 warn']);
  });

  it('keeps a log answer under its size bound by dropping the oldest lines', async () => {
    const big = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ level: 30, i, pad: 'x'.repeat(300) }));
    const t = fakeTarget({ logs: () => big });
    const res = await handleCommand(request('fetch-logs', { lines: 2000 }), t, now);
    const result = res?.result as { lines: Array<{ i: number }>; truncated: boolean; count: number };
    expect(result.truncated).toBe(true);
    expect(result.count).toBeLessThan(2000);
    expect(result.lines.at(-1)?.i).toBe(1999);
    expect(JSON.stringify(result).length).toBeLessThan(300 * 1024);
  });

  it('says so when the box keeps no log lines', async () => {
    expect(await handleCommand(request('fetch-logs'), fakeTarget({ logs: () => undefined }), now)).toMatchObject({ status: 'error', error: 'this box keeps no log lines in memory' });
  });
});
