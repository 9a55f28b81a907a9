// What a view is to the router, and the refresh loop views share.
import type { Me } from './api.ts';

export interface ViewContext {
  me: Me;
  /** Path parameters, e.g. the device id. */
  params: readonly string[];
  query: URLSearchParams;
}

export interface View {
  el: HTMLElement;
  /** Stops timers; late answers for a disposed view are dropped by the view itself. */
  dispose?(): void;
}

/**
 * Runs `work` now and then every `intervalMs` after the previous run finished (never two at once,
 * however slow the fleet answers). Returns the stop function.
 */
export function every(intervalMs: number, work: () => Promise<void>): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async (): Promise<void> => {
    try {
      await work();
    } catch (err) {
      // Views show their own errors; this only keeps one failed refresh from ending the loop.
      console.error(err);
    } finally {
      if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
    }
  };
  void tick();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
