// Two coordinator processes on one PostgreSQL database (the "postgres" test project only):
// agents on either, messages sent to either, and every message delivered once. Claims take
// rows with SKIP LOCKED, so the two never lease one entry twice; counters live in the shared
// database, so either answers the same figures.

import { afterAll, beforeAll, expect, it } from 'vitest';

import {
  freePort,
  type ManagedProcess,
  type ServerProcess,
  spawnAgent,
  spawnServer,
  waitReady,
} from '../../demo/processes.ts';
import { SwarmClient } from '../../src/client/index.ts';
import { AgentHandle, type Swarm, startSwarm, until } from './helpers.ts';

let swarm: Swarm;
let second: ServerProcess;
let secondClient: SwarmClient;
const agents: ManagedProcess[] = [];

beforeAll(async () => {
  swarm = await startSwarm({ OWOKX_DISPATCH_INTERVAL_MS: '50' });
  second = spawnServer({
    port: await freePort(),
    dataDir: swarm.dir,
    databaseUrl: swarm.databaseUrl,
    tokens: swarm.tokens,
    env: { OWOKX_DISPATCH_INTERVAL_MS: '50' },
    logLevel: 'warn',
  });
  await waitReady(second.url, 30_000, second);
  secondClient = new SwarmClient({
    baseUrl: second.url,
    token: swarm.tokens.admin,
    timeoutMs: 5000,
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop(3000)));
  await second?.stop(5000);
  await secondClient?.close();
  await swarm?.close();
}, 60_000);

async function agentOn(url: string, name: string): Promise<AgentHandle> {
  const proc = spawnAgent({
    script: 'test/e2e/fixtures/agent.ts',
    name,
    url,
    token: swarm.tokens.agent,
    env: { AGENT_TYPE: 'worker', AGENT_WAIT_MS: '500', AGENT_WORK_MS: '1' },
  });
  agents.push(proc);
  const handle = new AgentHandle(proc);
  await handle.waitFor('ready', 20_000);
  return handle;
}

it('delivers every message once with two coordinators sharing one database', async () => {
  const workers = await Promise.all([
    agentOn(swarm.url, 'w-first-1'),
    agentOn(swarm.url, 'w-first-2'),
    agentOn(second.url, 'w-second-1'),
    agentOn(second.url, 'w-second-2'),
  ]);

  // Either coordinator sees the agents the other registered: the registry is the database.
  const listed = await secondClient.listAgents();
  expect(listed.agents.map((a) => a.id).sort()).toEqual([
    'w-first-1',
    'w-first-2',
    'w-second-1',
    'w-second-2',
  ]);

  const accepted = new Set<string>();
  for (let batch = 0; batch < 40; batch += 1) {
    const client = batch % 2 === 0 ? swarm.client : secondClient;
    const results = await client.enqueueBatch(
      Array.from({ length: 25 }, (_, i) => ({
        message: { target: 'type:worker', payload: { batch, i } },
      })),
    );
    for (const r of results) if (r.queueId) accepted.add(r.queueId);
  }
  expect(accepted.size).toBe(1000);

  await until(
    async () => {
      const q = await swarm.client.queue();
      return q.queued === 0 && q.inflight === 0;
    },
    30_000,
    () => `not drained; handled ${workers.map((w) => w.count('handled')).join('+')}`,
  );

  const handled = workers.flatMap((w) => w.queueIds('handled'));
  expect(new Set(handled).size).toBe(1000);
  // Once each: no entry was leased by both coordinators, and no lease ran out.
  expect(handled.length).toBe(1000);
  // Agents of both coordinators took a share.
  expect(workers[0]?.count('handled')).toBeGreaterThan(0);
  expect(workers[2]?.count('handled')).toBeGreaterThan(0);

  const [a, b] = await Promise.all([swarm.client.queue(), secondClient.queue()]);
  expect(a.stats).toEqual(b.stats);
  expect(a.stats).toMatchObject({ enqueued: 1000, delivered: 1000, deadLettered: 0 });
}, 120_000);
