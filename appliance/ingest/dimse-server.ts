// The DICOM listener: plain TCP or TLS, TCP_NODELAY on every socket, one BoxScp per connection.
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import dimse from 'dcmjs-dimse';
import type { ApplianceConfig } from '../../shared/config/appliance.ts';
import { BoxScp, type ScpOptions } from './dimse-scp.ts';
import type { IngestContext } from './intake.ts';

// dcmjs-dimse logs every PDU through loglevel; the box logs what matters itself.
dimse.log.setLevel('silent');

export type DimseConfig = Pick<ApplianceConfig, 'dicomHost' | 'dicomPort' | 'tlsCert' | 'tlsKey' | 'tlsCa' | 'tlsRequireClientCert'>;

export class DimseServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly cfg: DimseConfig;
  private readonly ctx: IngestContext;

  constructor(cfg: DimseConfig, ctx: IngestContext) {
    this.cfg = cfg;
    this.ctx = ctx;
    const onSocket = (socket: Socket) => this.accept(socket);
    if (cfg.tlsCert || cfg.tlsKey) {
      if (!cfg.tlsCert || !cfg.tlsKey) throw new Error('DICOM TLS needs both tlsCert and tlsKey');
      this.server = createTlsServer(
        {
          cert: readFileSync(cfg.tlsCert),
          key: readFileSync(cfg.tlsKey),
          ...(cfg.tlsCa ? { ca: readFileSync(cfg.tlsCa) } : {}),
          requestCert: cfg.tlsRequireClientCert,
          rejectUnauthorized: cfg.tlsRequireClientCert,
          minVersion: 'TLSv1.2',
        },
        onSocket,
      );
      this.server.on('tlsClientError', (err) => ctx.log.warn({ err: err.message }, 'DICOM TLS handshake refused'));
    } else {
      this.server = createTcpServer(onSocket);
    }
  }

  get tls(): boolean {
    return Boolean(this.cfg.tlsCert);
  }

  private accept(socket: Socket): void {
    // dcmtk peers and dcmjs-dimse both leave Nagle on: small PDUs (responses) would wait ~40 ms.
    socket.setNoDelay(true);
    this.sockets.add(socket);
    this.ctx.metrics.activeAssociations.set(this.sockets.size);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.ctx.metrics.activeAssociations.set(this.sockets.size);
    });
    socket.on('error', (err) => this.ctx.log.debug({ err: err.message }, 'DICOM socket error'));
    const opts: ScpOptions = { customOptions: { ingest: this.ctx, activeAssociations: () => this.sockets.size } };
    const scp = new BoxScp(socket, opts);
    scp.on('networkError', (err: Error) => {
      this.ctx.log.debug({ err: err.message }, 'DICOM network error');
      socket.destroy();
    });
  }

  /** Resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port: this.cfg.dicomPort, host: this.cfg.dicomHost }, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : this.cfg.dicomPort);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
