// The machine probe: how expensive one HTTP request is on this machine right now. A bare
// node:http server (read a JSON POST, parse it, answer a small JSON) runs in a child process,
// as our server does, and the benchmark's own enqueue client drives it with the run's
// concurrency; the probe reports the child's main-thread CPU per request.
//
// Why: on a shared 2-core VM that cost is not a constant. Measured back to back with 30,000
// single enqueues on 2026-12-04, the bare server spent 64 to 99 µs per request from one minute
// to the next, and our server's main thread 150 to 239 µs per message, about 2.4 times the
// bare figure each time. A throughput number without the probe beside it cannot tell a slower
// release from a slower minute; with it, runs of different minutes can be compared.

import { type ChildProcess, spawn } from 'node:child_process';
import { nowMs } from './clock.ts';
import { benchMessage } from './enqueue.ts';
import { FastEnqueue } from './fast-enqueue.ts';
import { readCpuMs } from './proc.ts';

export interface MachineProbe {
  /** Main-thread CPU time of the bare server per request, in µs. */
  serverUsPerRequest: number;
  /** Requests answered per second (limited by this client as much as by the server). */
  requestsPerSecond: number;
  requests: number;
  ms: number;
}

/** Before and after the measured runs, so a change of speed during them shows. */
export interface ProbeReadings {
  before: MachineProbe;
  after: MachineProbe;
  /** The mean of the two µs-per-request figures: what the runs' costs are set against. */
  serverUsPerRequest: number;
}

const WARM_MS = 300;
export const PROBE_MS = 1_500;

// No dependency, nothing but node:http: the floor every Node HTTP server stands on.
const BARE_SERVER = `
const http = require('node:http');
const answer = '{"queueId":"1","duplicate":false}';
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    JSON.parse(Buffer.concat(chunks).toString('utf8'));
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(answer);
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
process.on('disconnect', () => process.exit(0));
`;

function startBareServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['-e', BARE_SERVER], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });

  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the probe server exited (${code})`)));
    child.stdout?.once('data', (chunk: Buffer) => {
      resolve({ child, port: Number(String(chunk).trim()) });
    });
  });
}

/** Closed loop, `senders` at a time, for `ms`: the number of requests answered. */
async function drive(client: FastEnqueue, senders: number, ms: number): Promise<number> {
  // The measured runs' own message, so the bare server parses the same body.
  const message = benchMessage({ run: 'probe', agentType: 'probe', idPrefix: 'probe' }, 1, nowMs());
  const until = nowMs() + ms;
  let answered = 0;

  const sender = async (): Promise<void> => {
    while (nowMs() < until) {
      await client.enqueue(message);
      answered += 1;
    }
  };
  await Promise.all(Array.from({ length: senders }, sender));
  return answered;
}

/**
 * One reading. Null where /proc cannot be read (not Linux): the report then has no probe
 * rather than a made-up one.
 */
export async function probeMachine(senders: number, ms = PROBE_MS): Promise<MachineProbe | null> {
  const { child, port } = await startBareServer();
  const pid = child.pid as number;
  const client = new FastEnqueue({
    baseUrl: `http://127.0.0.1:${port}`,
    token: 'probe',
    connections: senders,
    timeoutMs: 10_000,
  });

  try {
    await drive(client, senders, WARM_MS);

    const cpu0 = readCpuMs(pid, pid);
    const started = nowMs();
    const requests = await drive(client, senders, ms);
    const elapsed = nowMs() - started;
    const cpu1 = readCpuMs(pid, pid);
    if (cpu0 === null || cpu1 === null || requests === 0) return null;

    return {
      serverUsPerRequest: ((cpu1 - cpu0) * 1000) / requests,
      requestsPerSecond: (requests * 1000) / elapsed,
      requests,
      ms: elapsed,
    };
  } finally {
    await client.close();
    child.removeAllListeners('exit');
    child.kill();
  }
}

export function probeReadings(before: MachineProbe | null, after: MachineProbe | null) {
  if (before === null || after === null) return null;
  return {
    before,
    after,
    serverUsPerRequest: (before.serverUsPerRequest + after.serverUsPerRequest) / 2,
  } satisfies ProbeReadings;
}
