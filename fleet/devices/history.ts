// Telemetry history for the dashboard's charts, sized for 20,000 devices in one process: a fixed
// ring of small numeric records per device (24 bytes a point, no per-point objects, ~5.6 KiB a
// device). It is persisted as one blob per device every few minutes, not per point: 20k devices
// load at start from 20k values instead of millions, and losing minutes of chart is harmless.
import type { Telemetry } from '../../shared/fleet/messages.ts';
import type { TelemetryPoint } from '../../shared/fleet/api.ts';

/** Points kept per device: 40 minutes at a 10 s interval, 2 hours at the default 30 s. */
export const HISTORY_POINTS = 240;
/** Bytes of one encoded point: u32 at (epoch s), f32 cpu, f32 mem %, f32 disk %, u32 queue, f32 age. */
export const POINT_BYTES = 24;

export interface PointValues {
  atS: number;
  cpu: number | null;
  mem: number | null;
  disk: number | null;
  queue: number;
  age: number | null;
}

const orNaN = (v: number | null): number => (v === null || !Number.isFinite(v) ? Number.NaN : v);
const orNull = (v: number): number | null => (Number.isNaN(v) ? null : Math.round(v * 100) / 100);

export function pointOf(t: Telemetry, fallbackAtMs: number): PointValues {
  const parsed = Date.parse(t.at);
  const s = t.system;
  const mem = s.memUsedBytes !== null && s.memTotalBytes ? (s.memUsedBytes / s.memTotalBytes) * 100 : null;
  return {
    atS: Math.floor((Number.isFinite(parsed) ? parsed : fallbackAtMs) / 1000),
    cpu: s.cpuLoadPercent,
    mem,
    disk: s.diskUsedPercent,
    queue: t.pipeline.queueDepth,
    age: t.pipeline.oldestQueuedAgeS,
  };
}

/** Writes one point at byte `off` of `v`. */
export function encodePoint(p: PointValues, v: DataView = new DataView(new ArrayBuffer(POINT_BYTES)), off = 0): DataView {
  v.setUint32(off, p.atS >>> 0);
  v.setFloat32(off + 4, orNaN(p.cpu));
  v.setFloat32(off + 8, orNaN(p.mem));
  v.setFloat32(off + 12, orNaN(p.disk));
  v.setUint32(off + 16, Math.min(Math.max(0, Math.floor(p.queue)), 0xffffffff));
  v.setFloat32(off + 20, orNaN(p.age));
  return v;
}

export function decodePoint(buf: Uint8Array): PointValues | undefined {
  if (buf.byteLength !== POINT_BYTES) return undefined;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return { atS: v.getUint32(0), cpu: orNull(v.getFloat32(4)), mem: orNull(v.getFloat32(8)), disk: orNull(v.getFloat32(12)), queue: v.getUint32(16), age: orNull(v.getFloat32(20)) };
}

export class HistoryRing {
  private readonly atS: Uint32Array;
  private readonly queue: Uint32Array;
  /** cpu, mem, disk, age per slot. */
  private readonly vals: Float32Array;
  private next = 0;
  readonly capacity: number;

  constructor(capacity = HISTORY_POINTS) {
    this.capacity = capacity;
    this.atS = new Uint32Array(capacity);
    this.queue = new Uint32Array(capacity);
    this.vals = new Float32Array(capacity * 4);
  }

  /** Appends a point; the oldest one goes once the ring is full. */
  push(p: PointValues): void {
    const slot = this.next;
    this.atS[slot] = p.atS;
    this.queue[slot] = p.queue;
    const o = slot * 4;
    this.vals[o] = orNaN(p.cpu);
    this.vals[o + 1] = orNaN(p.mem);
    this.vals[o + 2] = orNaN(p.disk);
    this.vals[o + 3] = orNaN(p.age);
    this.next = (slot + 1) % this.capacity;
  }

  get size(): number {
    let n = 0;
    for (const at of this.atS) if (at > 0) n++;
    return n;
  }

  /** The points, oldest first, as concatenated 24-byte records. */
  encode(): Uint8Array {
    const out = new Uint8Array(this.size * POINT_BYTES);
    const view = new DataView(out.buffer);
    let off = 0;
    for (let k = 0; k < this.capacity; k++) {
      const i = (this.next + k) % this.capacity;
      if (this.atS[i] === 0) continue;
      const o = i * 4;
      encodePoint({ atS: this.atS[i]!, cpu: this.vals[o]!, mem: this.vals[o + 1]!, disk: this.vals[o + 2]!, queue: this.queue[i]!, age: this.vals[o + 3]! }, view, off);
      off += POINT_BYTES;
    }
    return out;
  }

  /** A ring holding what encode() wrote (the newest `capacity` points of it). */
  static decode(bytes: Uint8Array, capacity = HISTORY_POINTS): HistoryRing {
    const ring = new HistoryRing(capacity);
    for (let off = 0; off + POINT_BYTES <= bytes.byteLength; off += POINT_BYTES) {
      const p = decodePoint(bytes.subarray(off, off + POINT_BYTES));
      if (p && p.atS > 0) ring.push(p);
    }
    return ring;
  }

  /** Oldest first. */
  points(limit = this.capacity): TelemetryPoint[] {
    const out: TelemetryPoint[] = [];
    for (let k = 0; k < this.capacity; k++) {
      const i = (this.next + k) % this.capacity;
      const at = this.atS[i]!;
      if (at === 0) continue;
      const o = i * 4;
      out.push({
        at: new Date(at * 1000).toISOString(),
        cpu: orNull(this.vals[o]!),
        mem: orNull(this.vals[o + 1]!),
        disk: orNull(this.vals[o + 2]!),
        queue: this.queue[i]!,
        oldestQueuedAgeS: orNull(this.vals[o + 3]!),
      });
    }
    return out.length > limit ? out.slice(out.length - limit) : out;
  }
}
