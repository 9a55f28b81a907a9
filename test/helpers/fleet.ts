// A real fleet manager in this process (HTTPS from its own CA, embedded aedes or an external
// broker), and a small JSON client for its API that trusts that CA.
import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFleet, type RunningFleet } from '../../fleet/fleet.ts';
import { FleetConfigSchema } from '../../shared/config/fleet.ts';
import { loadConfig } from '../../shared/config/load.ts';
import { createLogger } from '../../shared/log.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestFleet extends RunningFleet {
  dataDir: string;
  api: FleetClient;
  /** Stops the fleet and removes its data dir. */
  destroy(): Promise<void>;
}

export async function startTestFleet(flags: string[] = [], dataDir = mkdtempSync(join(tmpdir(), 'mbox-fleet-'))): Promise<TestFleet> {
  const config = loadConfig(FleetConfigSchema, {
    argv: ['--data-dir', dataDir, '--http-port', '0', '--mqtt-port', '0', '--admin-token', ADMIN_TOKEN, '--log-level', 'silent', ...flags],
  });
  const fleet = await startFleet(config, createLogger(config.logLevel));
  return {
    ...fleet,
    dataDir,
    api: new FleetClient(fleet.baseUrl, fleet.pki.caCertPem, ADMIN_TOKEN),
    async destroy() {
      await fleet.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

export class FleetClient {
  readonly baseUrl: string;
  readonly caPem: string;
  readonly token: string | undefined;

  constructor(baseUrl: string, caPem: string, token?: string) {
    this.baseUrl = baseUrl;
    this.caPem = caPem;
    this.token = token;
  }

  as(token: string | undefined): FleetClient {
    return new FleetClient(this.baseUrl, this.caPem, token);
  }

  get<T = unknown>(path: string): Promise<ApiResponse<T>> {
    return this.send<T>('GET', path);
  }

  post<T = unknown>(path: string, body: unknown = {}): Promise<ApiResponse<T>> {
    return this.send<T>('POST', path, body);
  }

  put<T = unknown>(path: string, body: unknown): Promise<ApiResponse<T>> {
    return this.send<T>('PUT', path, body);
  }

  send<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.baseUrl),
        {
          method,
          ca: this.caPem,
          headers: {
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON (PEM, HTML): hand back the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }
}
