// Runs the STOW-RS receiver alone on loopback, for checking it by hand with curl or a DICOMweb tool:
//   .node/bin/node test/integration/fleet/serve-receiver.ts <dataDir> [port] [forwardBaseUrl]
import Fastify from 'fastify';
import { stowReceiver } from '../../../fleet/ingest/stow-receiver.ts';
import { createLogger } from '../../../shared/log.ts';

const [dataDir, port = '8080', forward] = process.argv.slice(2);
if (!dataDir) throw new Error('usage: serve-receiver.ts <dataDir> [port] [forwardBaseUrl]');
const log = createLogger('info', 'stow-receiver');
const app = Fastify({ loggerInstance: log });
await app.register(stowReceiver, { dataDir, log, ...(forward ? { forward: { baseUrl: forward } } : {}) });
await app.listen({ port: Number(port), host: '127.0.0.1' });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void app.close().then(() => process.exit(0)));
