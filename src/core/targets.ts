// Target grammar. A message keeps its target as written; delivery resolves it against the
// agents that are live at that moment.

import { invalidRequest } from './errors.ts';

export type TargetKind = 'agent' | 'type' | 'capability';

export type ParsedTarget = { kind: TargetKind; key: string } | { kind: 'broadcast' };

const AGENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const AGENT_TYPE = /^[a-z0-9_-]{1,64}$/;
const CAPABILITY = /^.{1,128}$/s;

export const isAgentId = (id: string): boolean => AGENT_ID.test(id);
export const isAgentType = (type: string): boolean => AGENT_TYPE.test(type);

/** Parses `agentId`, `type:<t>`, `role:<t>`, `capability:<c>` or `broadcast`. */
export function parseTarget(target: string): ParsedTarget {
  if (target === 'broadcast') return { kind: 'broadcast' };

  if (target.startsWith('type:') || target.startsWith('role:')) {
    const key = target.slice(5);
    if (!isAgentType(key)) {
      throw invalidRequest(`target "${target}" names an invalid agent type`, [
        { field: 'message.target', message: 'type must be 1-64 chars of a-z0-9_-' },
      ]);
    }
    return { kind: 'type', key };
  }

  if (target.startsWith('capability:')) {
    const key = target.slice('capability:'.length);
    if (!CAPABILITY.test(key)) {
      throw invalidRequest(`target "${target}" names an empty capability`, [
        { field: 'message.target', message: 'capability must be 1-128 chars' },
      ]);
    }
    return { kind: 'capability', key };
  }

  // An agent id may itself contain ':' — only the three prefixes above are reserved.
  if (!isAgentId(target)) {
    throw invalidRequest(
      `target "${target}" is not an agent id, type:, role:, capability: or broadcast`,
      [{ field: 'message.target', message: 'agent ids are 1-128 chars of A-Za-z0-9._:-' }],
    );
  }
  return { kind: 'agent', key: target };
}
