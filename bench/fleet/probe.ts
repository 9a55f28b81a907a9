// The latency cross-check from outside the fleet: a few probe boxes in the bench process publish
// telemetry one at a time and poll GET /api/devices/:id until the fleet shows that seq. The time
// from publish to seeing it is an upper bound on telemetry → state (it includes one HTTP round trip
// and up to one poll interval), measured with the same clock that stamped `at`.
import { setTimeout as sleep } from 'node:timers/promises';
import { BoxClient } from './box-client.ts';
import type { FleetChild } from './fleet-proc.ts';

const POLL_MS = 20;
const GIVE_UP_MS = 15_000;

export interface ProbeResult {
  samples: number[];
  timeouts: number;
  errors: number;
}

/**
 * Runs until `until` (ms epoch): probe box after probe box, spaced so each one publishes about once
 * per telemetry interval, like the simulated boxes.
 */
export async function runProbes(probes: BoxClient[], fleet: FleetChild, intervalMs: number, until: number): Promise<ProbeResult> {
  const result: ProbeResult = { samples: [], timeouts: 0, errors: 0 };
  const live = probes.filter((p) => p.state === 'up');
  if (live.length === 0) return result;
  const spacing = Math.max(200, intervalMs / live.length);
  let i = 0;
  while (Date.now() < until) {
    const box = live[i++ % live.length]!;
    const started = Date.now();
    const seq = box.publishTelemetry();
    if (seq !== undefined) {
      const seen = await waitForSeq(box.box.id, seq, fleet, started);
      if (seen === 'timeout') result.timeouts++;
      else if (seen === 'error') result.errors++;
      else result.samples.push(seen);
    }
    const rest = spacing - (Date.now() - started);
    if (rest > 0) await sleep(Math.min(rest, Math.max(0, until - Date.now())));
  }
  return result;
}

async function waitForSeq(id: string, seq: number, fleet: FleetChild, publishedAt: number): Promise<number | 'timeout' | 'error'> {
  for (;;) {
    try {
      const r = await fleet.get<{ telemetry?: { seq?: number } | null }>(`/api/devices/${id}`);
      const now = Date.now();
      if (r.status === 200 && (r.body.telemetry?.seq ?? -1) >= seq) return now - publishedAt;
    } catch {
      return 'error';
    }
    if (Date.now() - publishedAt > GIVE_UP_MS) return 'timeout';
    await sleep(POLL_MS);
  }
}
