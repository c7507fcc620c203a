// The one config module. Every setting has a documented default, comes from an environment
// variable or a `swarmctl serve` flag (flags win), is validated here, and is frozen.

import path from 'node:path';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Tokens {
  readonly?: string;
  agent?: string;
  trade?: string;
  admin?: string;
  /** OWOKX_API_TOKEN, the original worker's single token: admin scope. */
  legacy?: string;
}

export interface Config {
  host: string;
  port: number;
  /** `sqlite:<path>` (the embedded default) or `postgres://…`. */
  databaseUrl: string;
  /** Where the SQLite file and generated tokens live. */
  dataDir: string;
  /** PostgreSQL only: connections this coordinator keeps to the database. */
  databasePoolSize: number;
  logLevel: LogLevel;
  tokens: Tokens;

  staleAfterMs: number;
  heartbeatIntervalMs: number;
  /** Agents stale this long are pruned by the engine itself; 0 disables. */
  autoPruneAfterMs: number;
  dispatchIntervalMs: number;
  pruneMinStaleMs: number;
  pushTimeoutMs: number;
  /** How often leases and TTLs are swept. A quarter second keeps expiry "within a second". */
  sweepIntervalMs: number;

  backoffBaseMs: number;
  backoffCapMs: number;
  defaultMaxAttempts: number;
  defaultLeaseMs: number;
  defaultMaxInflight: number;
  /** New messages are refused (429) while this many wait undelivered; 0: no limit. */
  maxQueueDepth: number;

  rateWindowMs: number;
  failureRateThreshold: number;
  failureMinAttempts: number;
  queuePressureMs: number;
  dispatcherStallMs: number;

  /**
   * How far V8 lets the heap grow past what the last full GC kept, in percent; 0 leaves it to
   * V8. Applied by `swarmctl serve` to its own process. See docs/operations.md, "Memory".
   */
  heapGrowthPercent: number;
}

/** Every default, with its environment variable. Flags use the kebab-case of the key. */
const SPEC = {
  host: { env: 'OWOKX_HOST', kind: 'string', default: '127.0.0.1' },
  port: { env: 'OWOKX_PORT', kind: 'int', min: 0, max: 65535, default: 8787 },
  databaseUrl: { env: 'OWOKX_DATABASE_URL', kind: 'string', default: 'sqlite:./data/swarm.db' },
  databasePoolSize: {
    env: 'OWOKX_DATABASE_POOL_SIZE',
    kind: 'int',
    min: 1,
    max: 1000,
    default: 10,
  },
  logLevel: { env: 'OWOKX_LOG_LEVEL', kind: 'level', default: 'info' },
  staleAfterMs: { env: 'OWOKX_STALE_AFTER_MS', kind: 'int', min: 1000, default: 5 * MINUTE },
  heartbeatIntervalMs: { env: 'OWOKX_HEARTBEAT_INTERVAL_MS', kind: 'int', min: 100 },
  autoPruneAfterMs: { env: 'OWOKX_AUTO_PRUNE_AFTER_MS', kind: 'int', min: 0 },
  dispatchIntervalMs: { env: 'OWOKX_DISPATCH_INTERVAL_MS', kind: 'int', min: 10, default: SECOND },
  pruneMinStaleMs: { env: 'OWOKX_PRUNE_MIN_STALE_MS', kind: 'int', min: 0, default: MINUTE },
  pushTimeoutMs: { env: 'OWOKX_PUSH_TIMEOUT_MS', kind: 'int', min: 100, default: 10 * SECOND },
  sweepIntervalMs: { env: 'OWOKX_SWEEP_INTERVAL_MS', kind: 'int', min: 10, default: 250 },
  backoffBaseMs: { env: 'OWOKX_BACKOFF_BASE_MS', kind: 'int', min: 0, default: SECOND },
  backoffCapMs: { env: 'OWOKX_BACKOFF_CAP_MS', kind: 'int', min: 0, default: 30 * SECOND },
  defaultMaxAttempts: { env: 'OWOKX_MAX_ATTEMPTS', kind: 'int', min: 1, max: 100, default: 3 },
  defaultLeaseMs: {
    env: 'OWOKX_LEASE_MS',
    kind: 'int',
    min: 1000,
    max: 600_000,
    default: 30 * SECOND,
  },
  defaultMaxInflight: { env: 'OWOKX_MAX_INFLIGHT', kind: 'int', min: 1, default: 100 },
  maxQueueDepth: { env: 'OWOKX_MAX_QUEUE_DEPTH', kind: 'int', min: 0, default: 2_000_000 },
  rateWindowMs: { env: 'OWOKX_RATE_WINDOW_MS', kind: 'int', min: 10 * SECOND, default: 5 * MINUTE },
  failureRateThreshold: { env: 'OWOKX_FAILURE_RATE_THRESHOLD', kind: 'ratio', default: 0.05 },
  failureMinAttempts: { env: 'OWOKX_FAILURE_MIN_ATTEMPTS', kind: 'int', min: 1, default: 20 },
  queuePressureMs: { env: 'OWOKX_QUEUE_PRESSURE_MS', kind: 'int', min: 1, default: MINUTE },
  dispatcherStallMs: { env: 'OWOKX_DISPATCHER_STALL_MS', kind: 'int', min: 1000 },
  heapGrowthPercent: {
    env: 'OWOKX_HEAP_GROWTH_PERCENT',
    kind: 'int',
    min: 0,
    max: 400,
    default: 50,
  },
} as const;

type SpecKey = keyof typeof SPEC;
export type ConfigFlags = Partial<Record<SpecKey | 'dataDir', string | number | undefined>>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function parseValue(key: SpecKey, raw: string, source: string): string | number {
  const spec = SPEC[key];

  if (spec.kind === 'string') {
    if (raw.trim() === '') throw new ConfigError(`${source} must not be empty`);
    return raw.trim();
  }

  if (spec.kind === 'level') {
    if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
      throw new ConfigError(`${source} must be one of ${LOG_LEVELS.join(', ')} (got "${raw}")`);
    }
    return raw;
  }

  if (spec.kind === 'ratio') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
      throw new ConfigError(`${source} must be a number from 0 to 1 (got "${raw}")`);
    }
    return n;
  }

  const n = Number(raw);
  const min = 'min' in spec ? spec.min : 0;
  const max = 'max' in spec ? spec.max : Number.MAX_SAFE_INTEGER;
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${source} must be an integer from ${min} to ${max} (got "${raw}")`);
  }
  return n;
}

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Reads env and flags, validates every value, fills derived defaults, and freezes the result. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  flags: ConfigFlags = {},
): Readonly<Config> {
  const values: Partial<Record<SpecKey, string | number>> = {};

  for (const key of Object.keys(SPEC) as SpecKey[]) {
    const flag = flags[key];
    const fromEnv = env[SPEC[key].env];
    if (flag !== undefined) {
      values[key] = parseValue(key, String(flag), `--${kebab(key)}`);
    } else if (fromEnv !== undefined && fromEnv !== '') {
      values[key] = parseValue(key, fromEnv, SPEC[key].env);
    } else {
      const spec = SPEC[key] as { default?: string | number };
      if (spec.default !== undefined) values[key] = spec.default;
    }
  }

  const staleAfterMs = values.staleAfterMs as number;
  const databaseUrl = values.databaseUrl as string;
  if (!databaseUrl.startsWith('sqlite:') && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError(
      `OWOKX_DATABASE_URL must start with sqlite: or postgres:// (got "${databaseUrl}")`,
    );
  }

  const dataDir = String(
    flags.dataDir ??
      env.OWOKX_DATA_DIR ??
      (databaseUrl.startsWith('sqlite:')
        ? path.dirname(sqlitePath(databaseUrl))
        : path.resolve('data')),
  );

  const config: Config = {
    host: values.host as string,
    port: values.port as number,
    databaseUrl,
    dataDir: path.resolve(dataDir),
    databasePoolSize: values.databasePoolSize as number,
    logLevel: values.logLevel as LogLevel,
    tokens: Object.freeze({
      readonly: env.OWOKX_API_TOKEN_READONLY || undefined,
      agent: env.OWOKX_API_TOKEN_AGENT || undefined,
      trade: env.OWOKX_API_TOKEN_TRADE || undefined,
      admin: env.OWOKX_API_TOKEN_ADMIN || undefined,
      legacy: env.OWOKX_API_TOKEN || undefined,
    }),
    staleAfterMs,
    // Five heartbeats per stale window: one lost beat never makes an agent stale.
    heartbeatIntervalMs: (values.heartbeatIntervalMs as number) ?? Math.floor(staleAfterMs / 5),
    autoPruneAfterMs: (values.autoPruneAfterMs as number) ?? 3 * staleAfterMs,
    dispatchIntervalMs: values.dispatchIntervalMs as number,
    pruneMinStaleMs: values.pruneMinStaleMs as number,
    pushTimeoutMs: values.pushTimeoutMs as number,
    sweepIntervalMs: values.sweepIntervalMs as number,
    backoffBaseMs: values.backoffBaseMs as number,
    backoffCapMs: values.backoffCapMs as number,
    defaultMaxAttempts: values.defaultMaxAttempts as number,
    defaultLeaseMs: values.defaultLeaseMs as number,
    defaultMaxInflight: values.defaultMaxInflight as number,
    maxQueueDepth: values.maxQueueDepth as number,
    rateWindowMs: values.rateWindowMs as number,
    failureRateThreshold: values.failureRateThreshold as number,
    failureMinAttempts: values.failureMinAttempts as number,
    queuePressureMs: values.queuePressureMs as number,
    dispatcherStallMs:
      (values.dispatcherStallMs as number) ??
      Math.max(30 * SECOND, 10 * (values.dispatchIntervalMs as number)),
    heapGrowthPercent: values.heapGrowthPercent as number,
  };

  if (config.autoPruneAfterMs !== 0 && config.autoPruneAfterMs < config.staleAfterMs) {
    throw new ConfigError(
      `OWOKX_AUTO_PRUNE_AFTER_MS must be 0 (off) or at least OWOKX_STALE_AFTER_MS (${config.staleAfterMs}): only stale agents are pruned`,
    );
  }
  if (config.heartbeatIntervalMs >= config.staleAfterMs) {
    throw new ConfigError(
      `OWOKX_HEARTBEAT_INTERVAL_MS must be below OWOKX_STALE_AFTER_MS (${config.staleAfterMs}), or every agent goes stale between beats`,
    );
  }
  if (
    databaseUrl.startsWith('sqlite:') &&
    databaseUrl.slice('sqlite:'.length).replace(/^\/\//, '') === ''
  ) {
    throw new ConfigError(
      'OWOKX_DATABASE_URL names no file: use sqlite:<path>, e.g. sqlite:./data/swarm.db',
    );
  }
  if (config.backoffCapMs < config.backoffBaseMs) {
    throw new ConfigError('OWOKX_BACKOFF_CAP_MS must be at least OWOKX_BACKOFF_BASE_MS');
  }

  return Object.freeze(config);
}

/** The file path of a `sqlite:` URL; `sqlite::memory:` stays in memory. */
export function sqlitePath(databaseUrl: string): string {
  const rest = databaseUrl.slice('sqlite:'.length).replace(/^\/\//, '');
  return rest === ':memory:' ? rest : path.resolve(rest);
}

/** Settings for tests and embedding: defaults with overrides, still validated and frozen. */
export function testConfig(overrides: Partial<Config> = {}): Readonly<Config> {
  return Object.freeze({ ...loadConfig({}), ...overrides });
}
