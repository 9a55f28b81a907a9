// The agent's own small state files under <dataDir>/agent/ (desired.json, daily.json), written so
// that a power cut leaves either the old or the new content.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import { agentDir } from './files.ts';

export const desiredPath = (dataDir: string): string => join(agentDir(dataDir), 'desired.json');
export const dailyPath = (dataDir: string): string => join(agentDir(dataDir), 'daily.json');

export async function writeJsonDurable(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileDurable(path, `${JSON.stringify(value, null, 2)}\n`, 0o600);
}

/** The parsed file, or undefined when it does not exist. Unparsable content throws. */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}
