import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { testConfig } from '../../src/config.ts';
import { tokenMatcher } from '../../src/http/auth.ts';
import { isLoopbackHost, resolveTokens, TokenSetupError } from '../../src/http/tokens.ts';

const root = mkdtempSync(path.join(tmpdir(), 'owokx-tokens-'));
let dir: string;
let logged: unknown[];
let stderr: string[];

const log = {
  info: (obj: object, msg: string) => logged.push({ obj, msg }),
  warn: (obj: object, msg: string) => logged.push({ obj, msg }),
};

const NO_TOKENS = { readonly: undefined, agent: undefined, trade: undefined, admin: undefined };

beforeEach(() => {
  dir = mkdtempSync(path.join(root, 'case-'));
  logged = [];
  stderr = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr.push(String(chunk));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('resolveTokens', () => {
  it('takes tokens from the environment, each with its scope and name', () => {
    const config = testConfig({
      dataDir: dir,
      host: '0.0.0.0',
      tokens: { readonly: 'r'.repeat(20), trade: 't'.repeat(20), legacy: 'l'.repeat(20) },
    });

    const resolved = resolveTokens(config, log);

    expect(resolved.generatedFile).toBeNull();
    expect(resolved.tokens).toEqual([
      { name: 'readonly', scope: 'read', token: 'r'.repeat(20) },
      { name: 'trade', scope: 'trade', token: 't'.repeat(20) },
      { name: 'legacy', scope: 'admin', token: 'l'.repeat(20) },
    ]);
    expect(JSON.stringify(logged)).not.toContain('r'.repeat(20));
  });

  it('generates one token per scope on a loopback host, in tokens.json with mode 0600', () => {
    const config = testConfig({ dataDir: dir, host: '127.0.0.1', tokens: NO_TOKENS });

    const resolved = resolveTokens(config, log);
    const file = path.join(dir, 'tokens.json');

    expect(resolved.generatedFile).toBe(file);
    expect(resolved.tokens.map((t) => [t.name, t.scope])).toEqual([
      ['readonly', 'read'],
      ['agent', 'agent'],
      ['trade', 'trade'],
      ['admin', 'admin'],
    ]);
    for (const { token } of resolved.tokens) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const stored = JSON.parse(readFileSync(file, 'utf8'));
    expect(stored.admin).toBe(resolved.tokens[3]?.token);

    // Where they are is said; what they are is not.
    expect(stderr.join('')).toContain(file);
    const said = JSON.stringify(logged) + stderr.join('');
    for (const { token } of resolved.tokens) expect(said).not.toContain(token);
  });

  it('reuses the stored tokens on restart', () => {
    const config = testConfig({ dataDir: dir, host: 'localhost', tokens: NO_TOKENS });

    const first = resolveTokens(config, log);
    const second = resolveTokens(config, log);

    expect(second.tokens).toEqual(first.tokens);
  });

  it('tightens a token file that was left readable by others', () => {
    const file = path.join(dir, 'tokens.json');
    const values = {
      readonly: 'a'.repeat(43),
      agent: 'b'.repeat(43),
      trade: 'c'.repeat(43),
      admin: 'd'.repeat(43),
    };
    writeFileSync(file, JSON.stringify(values), { mode: 0o644 });

    const resolved = resolveTokens(
      testConfig({ dataDir: dir, host: '::1', tokens: NO_TOKENS }),
      log,
    );

    expect(resolved.tokens.map((t) => t.token)).toEqual(Object.values(values));
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('refuses a damaged token file instead of replacing tokens others may hold', () => {
    writeFileSync(path.join(dir, 'tokens.json'), '{"readonly":"short"}', { mode: 0o600 });
    const config = testConfig({ dataDir: dir, host: '127.0.0.1', tokens: NO_TOKENS });

    expect(() => resolveTokens(config, log)).toThrow(TokenSetupError);
    expect(() => resolveTokens(config, log)).toThrow(/no usable "readonly" token/);
  });

  it('refuses to start without tokens on an address other than loopback', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'swarm.example.com']) {
      const config = testConfig({ dataDir: dir, host, tokens: NO_TOKENS });

      expect(() => resolveTokens(config, log), host).toThrow(TokenSetupError);
      expect(() => resolveTokens(config, log), host).toThrow(/OWOKX_API_TOKEN_ADMIN/);
    }
  });
});

describe('isLoopbackHost', () => {
  it('knows the loopback addresses and names', () => {
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      'localhost',
      'LOCALHOST',
      '::ffff:127.0.0.1',
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '128.0.0.1',
      'localhost.example.com',
      '127.0.0.1.nip.io',
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});

describe('tokenMatcher', () => {
  it('matches whole tokens only, and gives a secret configured twice its larger scope', () => {
    const match = tokenMatcher({
      tokens: [
        { name: 'readonly', scope: 'read', token: 'same-secret-value' },
        { name: 'legacy', scope: 'admin', token: 'same-secret-value' },
        { name: 'agent', scope: 'agent', token: 'agent-secret-value' },
      ],
      generatedFile: null,
    });

    expect(match('same-secret-value')?.scope).toBe('admin');
    expect(match('agent-secret-value')?.name).toBe('agent');
    expect(match('agent-secret-valu')).toBeNull();
    expect(match('agent-secret-value ')).toBeNull();
    expect(match('')).toBeNull();
  });
});
