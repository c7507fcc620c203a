// The guide's Drill 1 and Drill 2 as `swarmctl drill`: recovered when the targets are live,
// escalated after two recovery cycles when the condition persists. Agents run in this process
// against a real server while the real binary drills it.

import { afterEach, describe, expect, it } from 'vitest';
import type { DrillResult } from '../../src/cli/drill.ts';
import {
  cliEnv,
  parseJson,
  sleep,
  startServer,
  swarmctl,
  type TestServer,
  TOKENS,
} from './harness.ts';
import { enqueue, pushEndpoint, registerPullAgent, rejectAll, runAgent, waitFor } from './swarm.ts';

let server: TestServer | undefined;
const agents: { stop(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await server?.stop();
  server = undefined;
});

describe('drill dlq', () => {
  it('says there is nothing to recover, and exits 0, when there are no dead letters', async () => {
    server = await startServer();

    const r = await swarmctl(['drill', 'dlq'], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('nothing to recover: no dead letters');
  });

  it('brings dead letters and queue depth down when the targets are live', async () => {
    server = await startServer();
    await registerPullAgent(server.agent, 'worker-1', 'worker');
    await enqueue(server.agent, 'type:worker', 6);
    expect(await rejectAll(server.agent, 'worker-1', 6)).toBe(6);

    // The handler is fixed: from now on worker-1 acks what it gets.
    agents.push(runAgent(server.agent, 'worker-1', 'ack'));

    const r = await swarmctl(['drill', 'dlq', '--json'], { env: cliEnv(server) });
    const result = parseJson<DrillResult>(r);

    expect(r.code).toBe(0);
    expect(result.outcome).toBe('recovered');
    expect(result.before.deadLettered).toBe(6);
    expect(result.after.deadLettered).toBe(0);
    expect(result.after.queueDepth).toBe(0);
    expect(result.cycles).toHaveLength(1);
    expect(result.cycles[0]?.requeue?.requeued).toBe(6);
    expect(result.message).toMatch(/^RECOVERED: dead letters 6 → 0, queue depth 0 → 0/);

    const metrics = await server.read.metrics();
    expect(metrics.queue.deadLettered).toBe(0);
    expect(metrics.stats.requeued).toBe(6);
  });

  it('prints before and after for people', async () => {
    server = await startServer();
    await registerPullAgent(server.agent, 'worker-1', 'worker');
    await enqueue(server.agent, 'type:worker', 2);
    await rejectAll(server.agent, 'worker-1', 2);
    agents.push(runAgent(server.agent, 'worker-1', 'ack'));

    const r = await swarmctl(['drill', 'dlq'], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('before   dead letters 2, queue depth 0');
    expect(r.stdout).toContain('cycle 1  requeue-dlq {"limit":50}: requeued 2');
    expect(r.stdout).toContain('cycle 1  dispatch {"limit":200}');
    expect(r.stdout).toMatch(/after cycle 1\s+HEALTHY\s+0\s+0/);
    expect(r.stdout).toContain('RECOVERED');
  });

  it('escalates after two recovery cycles, exiting 1, when dead letters keep failing', async () => {
    server = await startServer();
    await registerPullAgent(server.agent, 'broken-1', 'worker');
    await enqueue(server.agent, 'broken-1', 3);
    await rejectAll(server.agent, 'broken-1', 3);

    // The handler is still broken: every requeued message is rejected again.
    agents.push(runAgent(server.agent, 'broken-1', 'reject'));

    const r = await swarmctl(['drill', 'dlq', '--settle-ms', '1500', '--json'], {
      env: cliEnv(server),
    });
    const result = parseJson<DrillResult>(r);

    expect(r.code).toBe(1);
    expect(result.outcome).toBe('escalate');
    expect(result.cycles).toHaveLength(2);
    expect(result.cycles.every((c) => c.requeue && c.dispatch)).toBe(true);
    expect(result.after.deadLettered).toBe(3);
    expect(result.message).toContain('ESCALATE: dead letters persisted after 2 recovery cycles');

    const human = await swarmctl(['drill', 'dlq', '--settle-ms', '1000', '--cycles', '1'], {
      env: cliEnv(server),
    });
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('ESCALATE: dead letters persisted after 1 recovery cycle');
  });

  it('delivers requeued messages to push agents through the dispatch step', async () => {
    server = await startServer();
    let status = 500;
    const endpoint = await pushEndpoint(() => status);
    agents.push(endpoint);

    await server.agent.registerAgent({ id: 'pusher-1', type: 'trader', endpoint: endpoint.url });
    await enqueue(server.agent, 'pusher-1', 3, 'orders', 1);
    await waitFor(async () => (await server?.read.metrics())?.queue.deadLettered === 3);

    // The endpoint is repaired: the next push is accepted.
    status = 200;
    const r = await swarmctl(['drill', 'dlq', '--json'], { env: cliEnv(server) });
    const result = parseJson<DrillResult>(r);

    expect(r.code).toBe(0);
    expect(result.outcome).toBe('recovered');
    expect(result.after).toMatchObject({ deadLettered: 0, queueDepth: 0 });
    expect(endpoint.accepted()).toBe(3);
  });

  it('escalates, with one note per reason, when dead letters cannot be routed back', async () => {
    server = await startServer();
    await registerPullAgent(server.agent, 'gone-1', 'worker');
    await enqueue(server.agent, 'gone-1', 2);
    await rejectAll(server.agent, 'gone-1', 2);
    await server.agent.deregister('gone-1');

    const r = await swarmctl(['drill', 'dlq', '--settle-ms', '200'], { env: cliEnv(server) });

    expect(r.code).toBe(1);
    expect(r.stdout).toContain('ESCALATE: dead letters persisted after 2 recovery cycles');
    expect(r.stdout).toMatch(
      /note: cycle 1: 2 dead letter\(s\) stayed: target agent gone-1 is not registered \(queue ids \d+, \d+\)/,
    );
    expect(r.stdout).toMatch(/dead letters 2 → 2/);
  });

  it('escalates when requeued messages find no live agent, and says where to look', async () => {
    server = await startServer();
    await registerPullAgent(server.agent, 'idle-1', 'worker');
    await enqueue(server.agent, 'type:worker', 2);
    await rejectAll(server.agent, 'idle-1', 2);
    // Nobody polls now: the requeued messages just wait.

    const r = await swarmctl(['drill', 'dlq', '--settle-ms', '300', '--json'], {
      env: cliEnv(server),
    });
    const result = parseJson<DrillResult>(r);

    expect(r.code).toBe(1);
    expect(result.outcome).toBe('escalate');
    expect(result.after.deadLettered).toBe(0);
    expect(result.after.queueDepth).toBe(2);
    expect(result.message).toContain('requeued messages were still undelivered');
  });

  it('stops with exit 3 and names the trade scope when given only a read token', async () => {
    server = await startServer();
    await registerPullAgent(server.agent, 'worker-1', 'worker');
    await enqueue(server.agent, 'worker-1', 1);
    await rejectAll(server.agent, 'worker-1', 1);

    const r = await swarmctl(['drill', 'dlq'], {
      env: { OWOKX_URL: server.url, OWOKX_API_TOKEN_READONLY: TOKENS.read },
    });

    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      '403 forbidden: this token lacks the trade scope needed for drill dlq',
    );
    expect((await server.read.metrics()).queue.deadLettered).toBe(1);
  });
});

describe('drill stale', () => {
  // Agents go stale after a second; auto-prune is off so only the drill removes them.
  const staleEnv = {
    OWOKX_STALE_AFTER_MS: '1000',
    OWOKX_PRUNE_MIN_STALE_MS: '0',
    OWOKX_AUTO_PRUNE_AFTER_MS: '0',
  };

  it('says there is nothing to recover when every agent heartbeats', async () => {
    // A slower stale clock here: the heartbeat must win even on a loaded machine.
    server = await startServer({ env: { ...staleEnv, OWOKX_STALE_AFTER_MS: '5000' } });
    await registerPullAgent(server.agent, 'live-1', 'scout');
    agents.push(runAgent(server.agent, 'live-1', 'ack'));

    const r = await swarmctl(['drill', 'stale', '--stale-ms', '1000'], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('nothing to recover: no stale agents');
  });

  it('prunes stale agents and confirms the stale count and anomalies fell', async () => {
    server = await startServer({ env: staleEnv });
    await registerPullAgent(server.agent, 'gone-1', 'scout');
    await registerPullAgent(server.agent, 'gone-2', 'scout');
    await server.agent.subscribe('gone-1', 'signals');
    await registerPullAgent(server.agent, 'live-1', 'analyst');
    agents.push(runAgent(server.agent, 'live-1', 'ack'));
    await sleep(1500);

    const r = await swarmctl(['drill', 'stale', '--stale-ms', '1000', '--json'], {
      env: cliEnv(server),
    });
    const result = parseJson<DrillResult>(r);

    expect(r.code).toBe(0);
    expect(result.outcome).toBe('recovered');
    expect(result.before.staleAgents).toBe(2);
    expect(result.before.anomalies.map((a) => a.kind)).toContain('stale_subscriber');
    expect(result.after.staleAgents).toBe(0);
    expect(result.after.anomalies).toHaveLength(0);
    expect(result.cycles[0]?.prune?.removedIds.sort()).toEqual(['gone-1', 'gone-2']);

    const left = await server.read.listAgents();
    expect(left.agents.map((a) => a.id)).toEqual(['live-1']);
  });

  it('runs no cycle, and says why, when no stale agent is old enough for --stale-ms', async () => {
    server = await startServer({ env: staleEnv });
    await registerPullAgent(server.agent, 'gone-1', 'scout');
    await sleep(1500);

    const r = await swarmctl(['drill', 'stale', '--settle-ms', '200'], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('nothing to prune yet: 1 stale agent(s)');
    expect((await server.read.swarmHealth()).recoveryCycles).toBe(0);
  });
});
