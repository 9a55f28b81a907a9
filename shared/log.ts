import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** One structured JSON logger per process; components take `log.child({ component })`. */
export function createLogger(level: LevelWithSilent = 'info', name = 'mbox'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
