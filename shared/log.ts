import { pino, type DestinationStream, type Level, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const LEVEL_VALUES: Readonly<Record<Level, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** The last lines a logger wrote, kept in memory so the fleet can fetch them (fetch-logs). */
export class LogRing {
  private readonly lines: string[] = [];
  private readonly levels: number[] = [];
  private next = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = Math.max(1, capacity);
  }

  /** pino's stream interface: one serialized JSON line per call. */
  write(chunk: string): void {
    const line = chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk;
    // A regex, not JSON.parse: this runs for every line the box logs.
    const m = /"level":(\d+)/.exec(line);
    const level = m ? Number(m[1]) : 30;
    if (this.lines.length < this.capacity) {
      this.lines.push(line);
      this.levels.push(level);
    } else {
      this.lines[this.next] = line;
      this.levels[this.next] = level;
    }
    this.next = (this.next + 1) % this.capacity;
  }

  /** Up to `count` most recent lines at `minLevel` or above, oldest first. */
  recent(count: number, minLevel: Level = 'trace'): string[] {
    const floor = LEVEL_VALUES[minLevel];
    const out: string[] = [];
    const n = this.lines.length;
    // Walk backwards from the newest entry.
    for (let i = 0; i < n && out.length < count; i++) {
      const idx = (this.next - 1 - i + n) % n;
      if ((this.levels[idx] ?? 0) >= floor) out.push(this.lines[idx]!);
    }
    return out.reverse();
  }
}

export interface LoggerOptions {
  /** Lines kept in memory for fetch-logs (default 2000; 0 keeps none). */
  ringLines?: number;
  /** Where lines go besides the ring (default stdout). */
  destination?: DestinationStream;
}

interface Family {
  ring: LogRing | undefined;
  /** Every logger of the family still alive, so a level change reaches them all. */
  members: Set<WeakRef<Logger>>;
  pruneAt: number;
}

const families = new WeakMap<Logger, Family>();

/** One structured JSON logger per process; components take `log.child({ component })`. */
export function createLogger(level: LevelWithSilent = 'info', name = 'mbox', opts: LoggerOptions = {}): Logger {
  const ringLines = opts.ringLines ?? 2000;
  const ring = ringLines > 0 ? new LogRing(ringLines) : undefined;
  const destination = opts.destination ?? pino.destination();
  const family: Family = { ring, members: new Set(), pruneAt: 64 };
  // pino children copy their parent's level when they are made and never look back: a later level
  // change must visit every child, so the family keeps (weak) track of them through onChild.
  const onChild = (child: Logger): void => {
    families.set(child, family);
    family.members.add(new WeakRef(child));
    if (family.members.size > family.pruneAt) {
      for (const ref of family.members) if (!ref.deref()) family.members.delete(ref);
      family.pruneAt = Math.max(64, family.members.size * 2);
    }
  };
  const stream = ring ? pino.multistream([{ level: 'trace', stream: destination }, { level: 'trace', stream: ring }]) : destination;
  const root = pino({ name, level, base: { pid: process.pid }, onChild: (child) => onChild(child) }, stream);
  families.set(root, family);
  family.members.add(new WeakRef(root));
  return root;
}

/** The ring buffer behind a logger made by createLogger (any of its children), if it keeps one. */
export function logRingOf(log: Logger): LogRing | undefined {
  return families.get(log)?.ring;
}

/**
 * Changes the level of the whole family of a logger made by createLogger: the root and every child
 * made so far (children made later inherit it). Loggers from elsewhere only change themselves.
 */
export function setLogLevel(log: Logger, level: LevelWithSilent): void {
  const family = families.get(log);
  if (!family) {
    log.level = level;
    return;
  }
  for (const ref of family.members) {
    const member = ref.deref();
    if (!member) family.members.delete(ref);
    else member.level = level;
  }
}
