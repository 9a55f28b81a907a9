// Compiled validators for what devices send and for desired configs. Device payloads are checked
// on every message (2,000/s at scale), so they are compiled once here rather than interpreted.
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { CommandResponse, RemoteConfig, ReportedConfig, StatusMessage, Telemetry } from '../../shared/fleet/messages.ts';

export const checkStatus = TypeCompiler.Compile(StatusMessage);
export const checkTelemetry = TypeCompiler.Compile(Telemetry);
export const checkReported = TypeCompiler.Compile(ReportedConfig);
export const checkCommandResponse = TypeCompiler.Compile(CommandResponse);
const checkRemote = TypeCompiler.Compile(RemoteConfig);

const MAX_ERRORS = 20;

/** Readable errors, each naming the key: `/dicomPort: Expected integer to be less or equal to 65535`. */
export function errorsOf(check: { Errors(value: unknown): Iterable<{ path: string; message: string }> }, value: unknown): string[] {
  const out: string[] = [];
  for (const e of check.Errors(value)) {
    const line = `${e.path || '/'}: ${e.message}`;
    if (!out.includes(line)) out.push(line);
    if (out.length >= MAX_ERRORS) break;
  }
  return out;
}

/**
 * Checks a config the fleet is about to send against the keys a box accepts remotely. Defaults
 * are filled on a copy first (as the box does), so a destination may leave out what has a default.
 */
export function remoteConfigErrors(config: unknown): string[] {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return ['/: config must be an object'];
  const filled = Value.Default(RemoteConfig, structuredClone(config));
  return checkRemote.Check(filled) ? [] : errorsOf(checkRemote, filled);
}
