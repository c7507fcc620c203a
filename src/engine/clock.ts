// Time is injected: the engine never reads the wall clock directly, so tests of staleness,
// leases and TTLs move time forward instead of sleeping.

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private current = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): number {
    this.current += ms;
    return this.current;
  }

  set(at: number): void {
    this.current = at;
  }
}
