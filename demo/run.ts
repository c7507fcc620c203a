// `npm run demo`: a live swarm on this machine. Starts the real coordinator, then real agent
// processes (a scout, analysts, a flaky risk manager, a push trader, a learning agent that
// goes stale), prints a status line every few seconds from /swarm/health and /swarm/metrics,
// and the exact curl commands for the operator guide's drills 1 and 2. Ctrl-C stops it all.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pc from 'picocolors';
import { SwarmClient } from '../src/client/index.ts';
import type { SwarmHealth, SwarmMetrics } from '../src/engine/contract.ts';
import {
  generateTokens,
  type ManagedProcess,
  portInUse,
  type ServerProcess,
  spawnAgent,
  spawnServer,
  type Tokens,
  waitReady,
} from './processes.ts';

const USAGE = `usage: npm run demo -- [--port 8787] [--duration <s>] [--analysts 3]
                       [--data-dir ./data/demo] [--keep-data] [--stall-after <s>] [--interval <s>]`;

interface DemoOptions {
  port: number;
  durationS: number;
  analysts: number;
  dataDir: string;
  keepData: boolean;
  stallAfterS: number;
  intervalS: number;
}

function parseOptions(argv: string[]): DemoOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '8787' },
      duration: { type: 'string', default: '0' },
      analysts: { type: 'string', default: '3' },
      'data-dir': { type: 'string', default: './data/demo' },
      'keep-data': { type: 'boolean', default: false },
      'stall-after': { type: 'string', default: '20' },
      interval: { type: 'string', default: '3' },
      help: { type: 'boolean', default: false },
    },
  });

  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }

  const int = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      console.error(`--${name} must be an integer from ${min} to ${max} (got "${raw}")\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };

  return {
    port: int('port', values.port, 1, 65535),
    durationS: int('duration', values.duration, 0, 86_400),
    analysts: int('analysts', values.analysts, 1, 10),
    dataDir: path.resolve(values['data-dir']),
    keepData: values['keep-data'],
    stallAfterS: int('stall-after', values['stall-after'], 1, 86_400),
    intervalS: int('interval', values.interval, 1, 60),
  };
}

/**
 * Settings that make the guide's conditions appear within a minute instead of hours: agents
 * go stale after 15 s, prune accepts 10 s, auto-prune is off so drill 2 is left to the
 * operator, and backoff is short so retries and dead letters show up quickly.
 */
const DEMO_SERVER_ENV: Record<string, string> = {
  OWOKX_STALE_AFTER_MS: '15000',
  OWOKX_PRUNE_MIN_STALE_MS: '10000',
  OWOKX_AUTO_PRUNE_AFTER_MS: '0',
  OWOKX_BACKOFF_BASE_MS: '300',
  OWOKX_BACKOFF_CAP_MS: '3000',
  OWOKX_DISPATCH_INTERVAL_MS: '250',
  OWOKX_RATE_WINDOW_MS: '60000',
};

const DEMO_PRUNE_STALE_MS = 15_000;

/** Tokens from the environment when all are set (tests, scripted demos), else fresh ones. */
function demoTokens(): Tokens {
  const env = process.env;
  if (
    env.OWOKX_API_TOKEN_READONLY &&
    env.OWOKX_API_TOKEN_AGENT &&
    env.OWOKX_API_TOKEN_TRADE &&
    env.OWOKX_API_TOKEN_ADMIN
  ) {
    return {
      readonly: env.OWOKX_API_TOKEN_READONLY,
      agent: env.OWOKX_API_TOKEN_AGENT,
      trade: env.OWOKX_API_TOKEN_TRADE,
      admin: env.OWOKX_API_TOKEN_ADMIN,
    };
  }
  return generateTokens();
}

function banner(url: string, tokens: Tokens, options: DemoOptions): string {
  const h = (s: string): string => pc.bold(pc.cyan(s));
  const curl = (method: string, route: string, token: string, body?: string): string =>
    body === undefined
      ? `curl -s -H "Authorization: Bearer ${token}" ${url}${route}`
      : `curl -s -X ${method} -H "Authorization: Bearer ${token}" \\\n    -H "Content-Type: application/json" \\\n    -d '${body}' \\\n    ${url}${route}`;

  return [
    h(`owokx-swarm demo at ${url}`),
    `  data dir ${options.dataDir} (server and agent logs in logs/)`,
    '',
    h("swarmctl (finds this run's tokens in the data dir)"),
    `  npx swarmctl --url ${url} --data-dir ${options.dataDir} health`,
    `  npx swarmctl --url ${url} --data-dir ${options.dataDir} watch`,
    `  npx swarmctl --url ${url} --data-dir ${options.dataDir} drill dlq`,
    `  npx swarmctl --url ${url} --data-dir ${options.dataDir} drill stale --stale-ms ${DEMO_PRUNE_STALE_MS}`,
    '',
    h('tokens (for this run only)'),
    `  export OWOKX_API_TOKEN_READONLY=${tokens.readonly}`,
    `  export OWOKX_API_TOKEN_AGENT=${tokens.agent}`,
    `  export OWOKX_API_TOKEN_TRADE=${tokens.trade}`,
    `  export OWOKX_API_TOKEN_ADMIN=${tokens.admin}`,
    '',
    h('daily checks'),
    `  curl -s ${url}/health`,
    `  ${curl('GET', '/swarm/health', tokens.readonly)}`,
    `  ${curl('GET', '/swarm/metrics', tokens.readonly)}`,
    `  ${curl('GET', '/swarm/routing', tokens.readonly)}`,
    '',
    h('drill 1: dead-letter recovery (the risk manager fails ~30% of checks)'),
    `  ${curl('GET', '/swarm/queue', tokens.readonly)}`,
    `  ${curl('POST', '/swarm/recovery/requeue-dlq', tokens.trade, '{"limit":50}')}`,
    `  ${curl('POST', '/swarm/dispatch', tokens.trade, '{"limit":200}')}`,
    '',
    h(`drill 2: stale-agent cleanup (learning-1 stops heartbeating after ${options.stallAfterS}s)`),
    `  # the guide uses staleMs 600000; demo agents go stale after 15 s, so use ${DEMO_PRUNE_STALE_MS}`,
    `  ${curl('POST', '/swarm/recovery/prune-stale', tokens.trade, `{"staleMs":${DEMO_PRUNE_STALE_MS}}`)}`,
    `  ${curl('GET', '/swarm/routing', tokens.readonly)}`,
    '',
  ].join('\n');
}

const fmtRate = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const pct = (n: number): string => `${(n * 100).toFixed(1)}%`;

function statusLine(startedAt: number, health: SwarmHealth, metrics: SwarmMetrics): string {
  const secs = Math.round((Date.now() - startedAt) / 1000);
  const status =
    health.status === 'healthy'
      ? pc.green('healthy')
      : health.status === 'degraded'
        ? pc.yellow('degraded')
        : pc.red('unhealthy');
  const reasons = health.reasons.map((r) => r.code).join(',') || '-';
  const q = metrics.queue;
  const s = metrics.stats;
  const r = metrics.rates;

  return [
    `[${String(secs).padStart(4)}s] ${status}${health.escalate ? pc.red(' ESCALATE') : ''} (${reasons})`,
    `agents ${metrics.agents.active}/${metrics.agents.total} stale ${metrics.agents.stale}`,
    `queue ${q.queued} (ready ${q.ready}, delayed ${q.delayed}) inflight ${q.inflight}`,
    `dlq ${q.deadLettered}`,
    `enq ${s.enqueued} dlv ${s.delivered} retried ${s.retried}`,
    `${fmtRate(r.enqueuedPerSec)}/s in ${fmtRate(r.deliveredPerSec)}/s out fail ${pct(r.deliveryFailureRate)}`,
  ].join(' | ');
}

interface AgentPlan {
  name: string;
  script: string;
  env?: Record<string, string>;
}

function agentPlan(options: DemoOptions): AgentPlan[] {
  const analysts = Array.from({ length: options.analysts }, (_, i) => ({
    name: `analyst-${i + 1}`,
    script: 'demo/agents/analyst.ts',
  }));

  return [
    ...analysts,
    { name: 'risk-1', script: 'demo/agents/risk-manager.ts' },
    { name: 'trader-1', script: 'demo/agents/trader.ts' },
    {
      name: 'learning-1',
      script: 'demo/agents/learning.ts',
      env: { LEARNING_STALL_AFTER_MS: String(options.stallAfterS * 1000) },
    },
    // The scout last, so its first messages find their consumers registered.
    { name: 'scout-1', script: 'demo/agents/scout.ts' },
  ];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const url = `http://127.0.0.1:${options.port}`;
  const logDir = path.join(options.dataDir, 'logs');

  if (await portInUse(options.port)) {
    console.error(`port ${options.port} is already in use; pick another with --port`);
    process.exit(2);
  }

  // A fresh store each run, so the numbers on screen are this run's.
  if (!options.keepData) {
    for (const file of ['swarm.db', 'swarm.db-wal', 'swarm.db-shm']) {
      rmSync(path.join(options.dataDir, file), { force: true });
    }
    rmSync(logDir, { recursive: true, force: true });
  }

  const tokens = demoTokens();

  // Where swarmctl looks for a loopback server's tokens (--data-dir), so the operator's
  // tool works against the demo without exporting anything.
  mkdirSync(options.dataDir, { recursive: true });
  writeFileSync(path.join(options.dataDir, 'tokens.json'), `${JSON.stringify(tokens, null, 2)}\n`, {
    mode: 0o600,
  });

  const server: ServerProcess = spawnServer({
    port: options.port,
    dataDir: options.dataDir,
    tokens,
    logLevel: 'info',
    env: DEMO_SERVER_ENV,
    logFile: path.join(logDir, 'server.log'),
    detached: true,
  });
  const monitor = new SwarmClient({ baseUrl: url, token: tokens.readonly, timeoutMs: 5000 });
  const agents: ManagedProcess[] = [];
  let statusTimer: NodeJS.Timeout | undefined;
  let stopping = false;

  const shutdown = async (code: number): Promise<never> => {
    if (stopping) return new Promise<never>(() => {});
    stopping = true;
    clearInterval(statusTimer);

    console.log(pc.dim('stopping agents (they deregister), then the server...'));
    await Promise.all(agents.map((a) => a.stop(5000)));
    await server.stop(10_000);
    await monitor.close();
    console.log(pc.dim('demo stopped'));
    process.exit(code);
  };

  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));
  // The children have their own process groups (Ctrl-C must not reach them before their turn),
  // so if this process dies some other way it takes them along.
  process.once('exit', () => {
    for (const child of [...agents, server]) child.kill('SIGKILL');
  });

  server.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(pc.red(`server exited (code ${code}, signal ${signal}):`));
    console.error(server.recentOutput(20));
    void shutdown(1);
  });

  try {
    await waitReady(url, 30_000, server);
  } catch (err) {
    console.error(pc.red((err as Error).message));
    return shutdown(1);
  }

  console.log(banner(url, tokens, options));

  const registered: Promise<string>[] = [];
  for (const plan of agentPlan(options)) {
    const agent = spawnAgent({
      script: plan.script,
      name: plan.name,
      url,
      token: tokens.agent,
      env: plan.env,
      logFile: path.join(logDir, `${plan.name}.log`),
      detached: true,
    });
    agent.exited.then(({ code, signal }) => {
      if (stopping) return;
      console.error(pc.red(`agent ${plan.name} exited (code ${code}, signal ${signal})`));
      console.error(agent.recentOutput(10));
    });
    agents.push(agent);
    registered.push(agent.waitForLine((line) => line.includes('"event":"registered"'), 60_000));
  }

  // Agent processes compile their TypeScript on start; --duration counts from a full swarm.
  try {
    await Promise.all(registered);
  } catch (err) {
    console.error(pc.red(`an agent did not start: ${(err as Error).message}`));
    return shutdown(1);
  }
  console.log(pc.dim(`${agents.length} agents registered; status every ${options.intervalS}s`));

  const startedAt = Date.now();
  let sawStale = false;
  let sawDeadLetters = false;

  const printStatus = async (): Promise<void> => {
    try {
      const [health, metrics] = await Promise.all([monitor.swarmHealth(), monitor.metrics()]);
      console.log(statusLine(startedAt, health, metrics));

      if (!sawDeadLetters && metrics.queue.deadLettered > 0) {
        sawDeadLetters = true;
        console.log(
          pc.magenta('  dead letters present: drill 1 (requeue-dlq, dispatch) can run now'),
        );
      }
      if (!sawStale && metrics.agents.stale > 0) {
        sawStale = true;
        console.log(pc.magenta('  a stale agent: drill 2 (prune-stale) can run now'));
      }
    } catch (err) {
      console.log(pc.red(`status unavailable: ${(err as Error).message}`));
    }
  };

  statusTimer = setInterval(() => void printStatus(), options.intervalS * 1000);

  if (options.durationS > 0) {
    setTimeout(() => void printStatus().then(() => shutdown(0)), options.durationS * 1000);
  }
}

await main();
