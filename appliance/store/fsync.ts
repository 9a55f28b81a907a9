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
