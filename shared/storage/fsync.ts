import { open } from 'node:fs/promises';

/** fsync a file or directory by path (a directory fsync makes renames and creations in it durable). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Directory fsyncs shared between concurrent writers: a caller arriving while one runs joins the
 * single follow-up sync (the running one may have started before the caller's change).
 */
export class DirSync {
  private readonly dirs = new Map<string, { running?: Promise<void>; next?: Promise<void> }>();

  sync(dir: string): Promise<void> {
    let state = this.dirs.get(dir);
    if (!state) {
      state = {};
      this.dirs.set(dir, state);
    }
    const s = state;
    const running = s.running;
    if (running) {
      s.next ??= running.then(() => {
        s.next = undefined;
        return this.sync(dir);
      });
      return s.next;
    }
    s.running = fsyncPath(dir).finally(() => {
      s.running = undefined;
    });
    return s.running;
  }
}
