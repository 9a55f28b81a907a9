// A pool worker entry that dies on request: a job whose input path contains "crash" ends the
// thread with exit code 3 mid-job; any other job gets a canned answer.
import { parentPort } from 'node:worker_threads';
import type { JobMessage, ReplyMessage } from '../../../../../appliance/compress/worker.ts';

const port = parentPort!;
port.postMessage({ ready: true } satisfies ReplyMessage);
port.on('message', (msg: JobMessage) => {
  if (msg.request.inputPath.includes('crash')) process.exit(3);
  const result = { outcome: 'unchanged' as const, transferSyntaxUid: '', inputSize: 0, size: 0, reason: 'canned', encodeMs: 0 };
  port.postMessage({ id: msg.id, result } satisfies ReplyMessage);
});
