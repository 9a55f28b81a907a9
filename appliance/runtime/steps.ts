// The steps a running box takes to move from one config to another. The agent's planner decides
// which (pure); the runtime carries them out in this order and undoes them on a failure.
import type { ApplianceConfig } from '../../shared/config/appliance.ts';

export const STEP_KINDS = [
  // Live settings first: they cannot fail, and later steps may run under the new log level.
  'log-level', // every logger of the box takes the new level
  'quiet-time', // the store's study clock; open studies keep their last activity
  'disk-guard', // new thresholds, checked at once
  'retention', // the next retention sweep uses the new age
  'telemetry-interval', // the agent re-arms its timer
  'dimse-settings', // AE title, AE checks, limits: read by every new association, no rebind
  // Restarts: these can fail (a port taken, a file missing) and are rolled back.
  'dimse-listener', // the listener rebinds (port changed)
  'watchers', // the watch folders restart with new timings
  'uplink', // preparer, uploaders and transcoder pool restart (destinations, workers)
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface Step {
  kind: StepKind;
  /** The changed config keys that call for this step. */
  keys: Array<keyof ApplianceConfig>;
}

/** One line per step, as reported to the fleet: "dimse-listener (dicomPort, aeTitle)". */
export function describeStep(step: Step): string {
  return `${step.kind} (${step.keys.join(', ')})`;
}
