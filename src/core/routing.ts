// Routing choice for role- and capability-addressed messages: the live agent with the fewest
// in-flight messages, round robin among ties so equal agents share the load evenly.

export interface Candidate {
  id: string;
  inflight: number;
}

/**
 * Orders candidates by the sequence in which deliveries would pick them, without changing
 * anything: fewest in flight first; among ties, the first id after `lastPicked` in id order.
 */
export function pickOrder(candidates: Candidate[], lastPicked: string | undefined): Candidate[] {
  const sorted = [...candidates].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  // Rotate so the agent after the last one picked comes first among equals.
  let start = 0;
  if (lastPicked !== undefined) {
    const next = sorted.findIndex((c) => c.id > lastPicked);
    start = next === -1 ? 0 : next;
  }
  const rotated = [...sorted.slice(start), ...sorted.slice(0, start)];

  // A stable sort keeps the rotation as the tie-break.
  return rotated.sort((a, b) => a.inflight - b.inflight);
}

/** The next `count` picks, simulating each pick adding one in-flight message. */
export function previewTargets(
  candidates: Candidate[],
  lastPicked: string | undefined,
  count: number,
): string[] {
  const load = candidates.map((c) => ({ ...c }));
  const picks: string[] = [];
  let last = lastPicked;

  for (let i = 0; i < count && load.length > 0; i++) {
    const chosen = pickOrder(load, last)[0];
    if (chosen === undefined) break;
    picks.push(chosen.id);
    last = chosen.id;
    const entry = load.find((c) => c.id === chosen.id);
    if (entry) entry.inflight += 1;
  }

  return picks;
}
