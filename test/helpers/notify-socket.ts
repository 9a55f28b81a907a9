// A stand-in for systemd's end of NOTIFY_SOCKET: an AF_UNIX datagram socket (Python, because Node
// cannot bind one) that records every message the real `systemd-notify` sends to it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitUntil } from './ports.ts';

// recv() drops the barrier fd systemd-notify attaches, which closes it: the barrier completes.
const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

export interface NotifyMessage {
  at: number;
  fields: Record<string, string>;
}

export interface NotifySocket {
  path: string;
  messages: NotifyMessage[];
  /** Messages that set `field` (BARRIER=1 and the like left out). */
  with(field: string): NotifyMessage[];
  close(): void;
}

export async function listenNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'mbox-notify-'));
  const path = join(dir, 'notify.sock');
  const child = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: NotifyMessage[] = [];
  let ready = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'ready') return void (ready = true);
    const text = JSON.parse(line) as string;
    const fields: Record<string, string> = {};
    for (const l of text.split('\n')) {
      const eq = l.indexOf('=');
      if (eq > 0) fields[l.slice(0, eq)] = l.slice(eq + 1);
    }
    messages.push({ at: Date.now(), fields });
  });
  await waitUntil(async () => ready, 10_000, 'notify socket listener', () => (child.exitCode !== null ? new Error(`python3 exited ${child.exitCode}`) : null));
  return {
    path,
    messages,
    with: (field) => messages.filter((m) => field in m.fields),
    close() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
