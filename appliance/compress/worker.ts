// Worker thread entry for TranscodePool: runs one transcodeFile at a time and answers with its
// result, or with the error it threw (I/O). Loaded by plain node through type stripping.
import { parentPort } from 'node:worker_threads';
import type { TranscodeRequest, TranscodeResult } from '../../shared/types/pipeline.ts';
import { loadCodecs } from './codecs.ts';
import { transcodeFile } from './transcode.ts';

export interface JobMessage {
  id: number;
  request: TranscodeRequest;
}

export type ReplyMessage =
  | { id: number; result: TranscodeResult }
  | { id: number; error: { name: string; message: string; code?: string; stack?: string } }
  | { ready: true };

const port = parentPort;
if (!port) throw new Error('appliance/compress/worker.ts must run as a worker thread (see pool.ts)');

// The WASM codecs are instantiated once, before the first job, so no job pays for it.
await loadCodecs();
port.postMessage({ ready: true } satisfies ReplyMessage);

port.on('message', (msg: JobMessage) => {
  transcodeFile(msg.request).then(
    (result) => port.postMessage({ id: msg.id, result } satisfies ReplyMessage),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      const code = (e.cause as NodeJS.ErrnoException | undefined)?.code ?? (e as NodeJS.ErrnoException).code;
      port.postMessage({ id: msg.id, error: { name: e.name, message: e.message, code, stack: e.stack } } satisfies ReplyMessage);
    },
  );
});
