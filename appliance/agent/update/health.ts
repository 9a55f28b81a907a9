// The health window of a release on trial: the box must do its job, not merely be alive. The DICOM
// port answers a real C-ECHO (this process is its own SCU), the store answers a read, the fleet
// link came up at least once, and the process stays up for the whole window (a crash there is the
// launcher's to count). Boot counting alone would commit a release that runs but cannot receive.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import dimse from 'dcmjs-dimse';

const { Client } = dimse;
const { CEchoRequest } = dimse.requests;
const { Status } = dimse.constants;

export interface EchoTarget {
  host: string;
  port: number;
  calledAe: string;
  callingAe: string;
  timeoutMs?: number;
  /** PEM texts; present when the port speaks DICOM TLS. */
  tls?: { key?: string; cert?: string; ca?: string };
}

/** One C-ECHO association; resolves on status Success, rejects with what went wrong. */
export function cEcho(t: EchoTarget): Promise<void> {
  const timeoutMs = t.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const client = new Client();
    const request = new CEchoRequest();
    let settled = false;
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => {
      try {
        client.abort();
      } catch {
        // already closed
      }
      done(new Error(`C-ECHO to ${t.calledAe}@${t.host}:${t.port}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    request.on('response', (response: dimse.responses.CEchoResponse) => {
      const status = response.getStatus();
      if (status === Status.Success) done();
      else done(new Error(`C-ECHO to ${t.calledAe}@${t.host}:${t.port} answered status 0x${status.toString(16).padStart(4, '0')}`));
    });
    client.addRequest(request);
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) =>
      done(new Error(`C-ECHO to ${t.calledAe}@${t.host}:${t.port}: association rejected (result ${r.result}, source ${r.source}, reason ${r.reason})`)),
    );
    client.on('networkError', (e: Error) => done(new Error(`C-ECHO to ${t.calledAe}@${t.host}:${t.port}: ${e.message}`)));
    client.on('closed', () => done(new Error(`C-ECHO to ${t.calledAe}@${t.host}:${t.port}: connection closed without an answer`)));
    client.send(t.host, t.port, t.callingAe, t.calledAe, {
      connectTimeout: timeoutMs,
      ...(t.tls ? { securityOptions: { ...t.tls, rejectUnauthorized: false } } : {}),
    });
  });
}

/** What the box's DICOM config says about reaching its own port. */
export function echoTargetOf(config: {
  dicomHost: string;
  aeTitle: string;
  allowedCallingAe: string[];
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}, port: number, tls: boolean): EchoTarget {
  const host = config.dicomHost === '0.0.0.0' || config.dicomHost === '' ? '127.0.0.1' : config.dicomHost === '::' ? '::1' : config.dicomHost;
  // A box that allows only some calling AEs must let its own check in: use the first allowed one.
  const callingAe = config.allowedCallingAe[0] ?? 'MBOX-HEALTH';
  const target: EchoTarget = { host, port, calledAe: config.aeTitle, callingAe };
  if (tls) {
    // Its own certificate as the client's: a port that demands client certificates gets one it
    // can check (self-verification of the server's certificate is skipped: it is our own port).
    target.tls = {
      ...(config.tlsCert ? { cert: readFileSync(config.tlsCert, 'utf8') } : {}),
      ...(config.tlsKey ? { key: readFileSync(config.tlsKey, 'utf8') } : {}),
    };
  }
  return target;
}

export interface HealthProbe {
  /** C-ECHO on the DICOM port; throws why not. */
  echo(): Promise<void>;
  /** A read from the store; throws why not. */
  store(): Promise<void>;
  /** Whether the fleet link has been up at least once since this process started. */
  fleetSeen(): boolean;
  /** False for a box without a fleet: the link check is skipped. */
  fleetConfigured: boolean;
}

export type HealthVerdict = { ok: true; checks: string[] } | { ok: false; reason: string };

async function retrying(what: string, fn: () => Promise<void>, tries: number, gapMs: number, signal: AbortSignal): Promise<string | undefined> {
  let last = '';
  for (let i = 0; i < tries; i++) {
    if (signal.aborted) return undefined;
    try {
      await fn();
      return undefined;
    } catch (err) {
      last = (err as Error).message;
      if (i < tries - 1) await sleep(gapMs, undefined, { signal }).catch(() => undefined);
    }
  }
  return `${what}: ${last}`;
}

/**
 * Runs the window: the DICOM and store checks at its start (a release that cannot receive is
 * rolled back within seconds, not minutes) and again at its end, the fleet by its end. A check
 * gets a few tries a second apart, so one slow answer is not a false rollback.
 */
export async function runHealthWindow(probe: HealthProbe, windowMs: number, signal: AbortSignal, now: () => number = Date.now): Promise<HealthVerdict> {
  const started = now();
  const check = async (): Promise<string | undefined> =>
    (await retrying('DICOM C-ECHO failed', () => probe.echo(), 3, 1000, signal)) ?? (await retrying('store does not answer', () => probe.store(), 3, 1000, signal));
  const early = await check();
  if (early) return { ok: false, reason: `health check failed: ${early}` };
  const rest = windowMs - (now() - started);
  if (rest > 0) await sleep(rest, undefined, { signal }).catch(() => undefined);
  if (signal.aborted) return { ok: false, reason: 'health window interrupted (the box is stopping)' };
  const late = await check();
  if (late) return { ok: false, reason: `health check failed: ${late}` };
  if (probe.fleetConfigured && !probe.fleetSeen()) return { ok: false, reason: `health check failed: the fleet was not reachable within the ${Math.round(windowMs / 1000)} s health window` };
  return { ok: true, checks: ['dicom-echo', 'store', ...(probe.fleetConfigured ? ['fleet-link'] : [])] };
}
