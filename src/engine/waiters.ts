// Long-poll wake-ups. A poll that finds nothing parks here under each route it takes
// deliveries from; an enqueue to a route wakes the parked polls of that route at once, so a
// waiting agent answers in well under a millisecond instead of on its next timer tick.

import type { CancelSignal } from './contract.ts';

export type RouteKey = string;

export const routeKey = (kind: string, key: string): RouteKey => `${kind}:${key}`;

interface Waiter {
  routes: RouteKey[];
  wake: () => void;
}

export class Waiters {
  private readonly byRoute = new Map<RouteKey, Set<Waiter>>();
  private readonly all = new Set<Waiter>();

  /** Resolves when woken, when `timeoutMs` passes, or when the signal aborts. */
  wait(routes: RouteKey[], timeoutMs: number, signal?: CancelSignal): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;

      const waiter: Waiter = {
        routes,
        wake: () => {
          this.remove(waiter);
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.wake);
          resolve();
        },
      };

      if (signal?.aborted) {
        resolve();
        return;
      }

      this.all.add(waiter);
      for (const route of routes) {
        let set = this.byRoute.get(route);
        if (set === undefined) {
          set = new Set();
          this.byRoute.set(route, set);
        }
        set.add(waiter);
      }

      timer = setTimeout(waiter.wake, timeoutMs);
      signal?.addEventListener('abort', waiter.wake, { once: true });
    });
  }

  /** Wakes every poll parked on any of these routes. */
  notify(routes: Iterable<RouteKey>): void {
    for (const route of routes) {
      const set = this.byRoute.get(route);
      if (set === undefined) continue;
      for (const waiter of [...set]) waiter.wake();
    }
  }

  /**
   * Wakes at most `count` polls per route: one new message needs one agent, and waking all
   * of a role's agents for it costs a wasted claim each (the thundering herd).
   */
  notifyCounted(counts: Map<RouteKey, number>): void {
    for (const [route, count] of counts) {
      const set = this.byRoute.get(route);
      if (set === undefined) continue;
      let woken = 0;
      for (const waiter of [...set]) {
        if (woken >= count) break;
        waiter.wake();
        woken += 1;
      }
    }
  }

  notifyAll(): void {
    for (const waiter of [...this.all]) waiter.wake();
  }

  get size(): number {
    return this.all.size;
  }

  private remove(waiter: Waiter): void {
    this.all.delete(waiter);
    for (const route of waiter.routes) {
      const set = this.byRoute.get(route);
      if (set === undefined) continue;
      set.delete(waiter);
      if (set.size === 0) this.byRoute.delete(route);
    }
  }
}
