// Starts test/support/postgres-child.ts (a real PostgreSQL, see there why in a process of its
// own) and talks to it: the URL of its database, stop and start for outages, close to end it.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface TestPostgres {
  /** postgres://… of a database named owokx. */
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/postgres-child.ts'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const answers: ((message: Record<string, string>) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    answers.shift()?.(JSON.parse(line) as Record<string, string>);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const next = () =>
    new Promise<Record<string, string>>((resolve, reject) => {
      answers.push(resolve);
      void exited.then(() => reject(new Error('the PostgreSQL process ended')));
    });
  const command = async (cmd: 'stop' | 'start') => {
    const answer = next();
    child.stdin.write(`${JSON.stringify({ cmd })}\n`);
    const message = await answer;
    if (message.error !== undefined) throw new Error(`PostgreSQL ${cmd}: ${message.error}`);
  };

  const first = await next();
  if (first.url === undefined) throw new Error(`PostgreSQL did not start: ${first.error}`);

  return {
    url: first.url,
    stop: () => command('stop'),
    start: () => command('start'),
    close: async () => {
      child.stdin.end();
      await exited;
    },
  };
}
