// The edgekv command line: help texts, first-run credentials, offline token administration,
// flag errors (docs/API.md "Accounts, memberships, tokens"; `edgekv --help`).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, runCli, expectOk, expectError, waitFor, sleep, hex32, newToken } from './lib/harness.mjs';

const out = (r) => `${r.stdout}${r.stderr}`;

// The secret printed by `token create` (accepts "token: X", "value: X", JSON {value}, KEY=X).
function extractSecret(text) {
  try {
    const j = JSON.parse(text);
    if (typeof j.value === 'string') return j.value;
    if (typeof j.token === 'string') return j.token;
  } catch { /* not JSON */ }
  for (const re of [/^\s*(?:token|secret|value)\s*[:=]\s*(\S+)\s*$/mi, /CLOUDFLARE_API_TOKEN=(\S+)/]) {
    const m = re.exec(text);
    if (m) return m[1];
  }
  return null;
}

function extractId(text) {
  const m = /\b(?:token[ _]id|id)\s*[:=]\s*([0-9a-f]{32})\b/i.exec(text);
  return m ? m[1] : null;
}

describe('cli', { timeout: 90000 }, () => {
  const dirs = [];
  const servers = [];
  const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'edgekv-it-cli-')); dirs.push(d); return d; };
  after(async () => {
    for (const s of servers) if (s.running) await s.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  describe('help', () => {
    it('edgekv --help exits 0 and names the commands', async () => {
      const r = await runCli(['--help']);
      assert.equal(r.code, 0, out(r));
      assert.match(out(r), /serve/);
      assert.match(out(r), /token/);
    });

    it('edgekv secret generate prints a new 64-hex-character cluster secret', async () => {
      const a = await runCli(['secret', 'generate']);
      const b = await runCli(['secret', 'generate']);
      assert.equal(a.code, 0, out(a));
      assert.match(a.stdout, /^[0-9a-f]{64}\n$/);
      assert.notEqual(a.stdout, b.stdout, 'a new secret every time');
      const bad = await runCli(['secret', 'show']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /usage: edgekv secret generate/);
      const help = await runCli(['--help']);
      assert.match(out(help), /secret generate/);
    });

    it('a primary without a cluster secret refuses to start and says how to make one', async () => {
      const r = await runCli(['serve', '--role', 'primary', '--listen', '127.0.0.1:0', '--data-dir', tmp()]);
      assert.equal(r.code, 2, out(r));
      assert.match(r.stderr, /edgekv secret generate > FILE/);
      assert.match(r.stderr, /openssl rand -hex 32/);
      // the secret itself in the environment is enough; too short is refused
      const short = await runCli(['serve', '--role', 'replica', '--primary', '127.0.0.1:1', '--data-dir', tmp()],
        { env: { EDGEKV_CLUSTER_SECRET: 'abc' }, timeoutMs: 5000 });
      assert.equal(short.code, 2, out(short));
      assert.match(short.stderr, /EDGEKV_CLUSTER_SECRET has 3 bytes/);
    });

    it('edgekv serve --help exits 0 and lists the flags with their env names', async () => {
      const r = await runCli(['serve', '--help']);
      assert.equal(r.code, 0, out(r));
      for (const f of ['--listen', '--data-dir', '--account-id', '--root-token', '--test-clock', '--sync',
        '--header-timeout-ms']) {
        assert.ok(out(r).includes(f), `serve --help does not mention ${f}`);
      }
      assert.match(out(r), /EDGEKV_/);
    });

    it('edgekv token --help exits 0 and lists the subcommands and flags', async () => {
      const r = await runCli(['token', '--help']);
      assert.equal(r.code, 0, out(r));
      for (const w of ['create', 'list', 'revoke', '--name', '--perms', '--data-dir']) {
        assert.ok(out(r).includes(w), `token --help does not mention ${w}`);
      }
    });

    it('unknown flags and commands exit non-zero with a message', async () => {
      for (const args of [['serve', '--bogus-flag'], ['--bogus-flag'], ['token', 'create', '--bogus-flag', 'x'],
        ['frobnicate']]) {
        const r = await runCli(args, { timeoutMs: 10000 });
        assert.notEqual(r.code, 0, `edgekv ${args.join(' ')} exited 0`);
        assert.equal(r.signal, null);
        const word = args.find((a) => a.startsWith('--bogus') || a === 'frobnicate');
        assert.ok(out(r).includes(word.replace(/^--/, '')), `no message naming ${word}: ${out(r)}`);
      }
    });

    it('a bad flag value exits non-zero', async () => {
      const r = await runCli(['serve', '--header-timeout-ms', 'soon', '--data-dir', tmp(), '--listen', '127.0.0.1:0'],
        { timeoutMs: 10000 });
      assert.notEqual(r.code, 0);
      assert.match(out(r), /header-timeout-ms/);
    });
  });

  describe('first start', () => {
    it('prints working credentials once; a second start on the same data dir does not', async () => {
      const dataDir = tmp();
      const srv = await startServer({ dataDir, noRootToken: true });
      servers.push(srv);
      await waitFor(() => /CLOUDFLARE_API_BASE_URL=/.test(srv.stdout), 5000, 'credentials on stdout');
      const acct = /^ {2}CLOUDFLARE_ACCOUNT_ID=([0-9a-f]{32})$/m.exec(srv.stdout)?.[1];
      const token = /^ {2}CLOUDFLARE_API_TOKEN=(\S+)$/m.exec(srv.stdout)?.[1];
      const baseUrl = /^ {2}CLOUDFLARE_API_BASE_URL=(\S+)$/m.exec(srv.stdout)?.[1];
      assert.ok(acct, `no CLOUDFLARE_ACCOUNT_ID line:\n${srv.stdout}`);
      assert.ok(token, `no CLOUDFLARE_API_TOKEN line:\n${srv.stdout}`);
      assert.equal(baseUrl, `http://127.0.0.1:${srv.port}/client/v4`);

      // the printed token works against the printed base URL, with admin rights
      const h = { authorization: `Bearer ${token}` };
      let r = await fetch(`${baseUrl}/accounts/${acct}/storage/kv/namespaces`, { headers: h });
      assert.equal(r.status, 200);
      assert.equal((await r.json()).success, true);
      srv.accountId = acct;
      srv.token = token;
      const nsId = await srv.createNamespace('first-run');
      expectOk(await srv.api('PUT', `${srv.ns(nsId)}/values/k`, { body: 'v' }));
      expectOk(await srv.api('GET', `/accounts/${acct}/tokens`));
      const v = expectOk(await srv.api('GET', '/user/tokens/verify'));
      assert.equal(v.status, 'active');
      assert.deepEqual((await srv.stop()), { code: 0, signal: null });

      // second start: no token printed, the old token and data still work
      const srv2 = await startServer({ dataDir, noRootToken: true });
      servers.push(srv2);
      await sleep(300);
      assert.ok(!/CLOUDFLARE_API_TOKEN=/.test(srv2.stdout), `token printed again:\n${srv2.stdout}`);
      srv2.accountId = acct;
      srv2.token = token;
      r = await srv2.fetch('GET', `${srv2.ns(nsId)}/values/k`);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), 'v');
      await srv2.stop();
    });

    it('with EDGEKV_ROOT_TOKEN set, no token is printed and that token works', async () => {
      const srv = await startServer();
      servers.push(srv);
      await sleep(200);
      assert.ok(!/CLOUDFLARE_API_TOKEN=/.test(srv.stdout), srv.stdout);
      expectOk(await srv.api('GET', `/accounts/${srv.accountId}/storage/kv/namespaces`));
      await srv.stop();
    });

    it('flags work instead of environment variables', async () => {
      const dataDir = tmp();
      const accountId = hex32();
      const token = newToken();
      const srv = await startServer({
        bare: true,
        args: ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--account-id', accountId, '--root-token', token,
          '--sync', 'none'],
      });
      servers.push(srv);
      srv.accountId = accountId;
      srv.token = token;
      const ns = expectOk(await srv.api('GET', `/accounts/${accountId}/storage/kv/namespaces`));
      assert.deepEqual(ns, []);
      await srv.stop();
    });
  });

  describe('offline token administration', () => {
    it('token create/list/revoke on a stopped server\'s data dir', async () => {
      const dataDir = tmp();
      const accountId = hex32();
      const rootToken = newToken();
      // first start creates the account; write a key to read later
      let srv = await startServer({ dataDir, accountId, token: rootToken });
      servers.push(srv);
      const nsId = await srv.createNamespace('cli-ns');
      expectOk(await srv.api('PUT', `${srv.ns(nsId)}/values/k`, { body: 'cli-value' }));
      assert.deepEqual(await srv.stop(), { code: 0, signal: null });

      const c = await runCli(['token', 'create', '--name', 'x', '--perms', 'kv:read', '--data-dir', dataDir]);
      assert.equal(c.code, 0, out(c));
      const secret = extractSecret(c.stdout);
      assert.ok(secret, `no token in the output of token create:\n${c.stdout}`);
      assert.ok(secret.length >= 20);
      const printedId = extractId(c.stdout);

      const l = await runCli(['token', 'list', '--data-dir', dataDir]);
      assert.equal(l.code, 0, out(l));
      assert.ok(!l.stdout.includes(secret), 'token list must not print secrets');
      const line = l.stdout.split('\n').find((ln) => /\bx\s*$/.test(ln) && /[0-9a-f]{32}/.test(ln));
      assert.ok(line, `token x not listed:\n${l.stdout}`);
      assert.match(line, /kv:read/);
      const ids = line.match(/\b[0-9a-f]{32}\b/g).filter((s) => s !== accountId);
      assert.equal(ids.length, 1, line);
      const id = ids[0];
      if (printedId) assert.equal(printedId, id);

      // the new token works read-only once the server runs
      srv = await startServer({ dataDir, accountId, token: rootToken });
      servers.push(srv);
      const h = { auth: false, headers: { authorization: `Bearer ${secret}` } };
      const g = await srv.fetch('GET', `${srv.ns(nsId)}/values/k`, h);
      assert.equal(g.status, 200);
      assert.equal(await g.text(), 'cli-value');
      expectOk(await srv.api('GET', `${srv.ns(nsId)}/keys`, h));
      expectError(await srv.api('PUT', `${srv.ns(nsId)}/values/k`, { ...h, body: 'no' }), 405, 10000,
        'PUT method not allowed for the api_token authentication scheme');
      const tokens = expectOk(await srv.api('GET', `/accounts/${accountId}/tokens`));
      const listed = tokens.find((t) => t.id === id);
      assert.ok(listed, 'CLI-created token not in the admin API list');
      assert.equal(listed.name, 'x');
      assert.deepEqual(listed.permissions, ['kv:read']);
      await srv.stop();

      const rv = await runCli(['token', 'revoke', id, '--data-dir', dataDir]);
      assert.equal(rv.code, 0, out(rv));
      const l2 = await runCli(['token', 'list', '--data-dir', dataDir]);
      assert.equal(l2.code, 0);
      const still = l2.stdout.split('\n').find((x) => x.includes(id));
      assert.ok(!still || /revoked/i.test(still), `revoked token still listed as usable:\n${l2.stdout}`);

      srv = await startServer({ dataDir, accountId, token: rootToken });
      servers.push(srv);
      expectError(await srv.api('GET', `${srv.ns(nsId)}/keys`, h), 403, 10000, 'Authentication error');
      // the root token is unaffected
      expectOk(await srv.api('GET', `${srv.ns(nsId)}/keys`));
      await srv.stop();
    });

    it('token create with EDGEKV_DATA_DIR instead of --data-dir; default perms can write', async () => {
      const dataDir = tmp();
      const accountId = hex32();
      const rootToken = newToken();
      let srv = await startServer({ dataDir, accountId, token: rootToken });
      servers.push(srv);
      const nsId = await srv.createNamespace();
      await srv.stop();
      const c = await runCli(['token', 'create', '--name', 'rw'], { env: { EDGEKV_DATA_DIR: dataDir } });
      assert.equal(c.code, 0, out(c));
      const secret = extractSecret(c.stdout);
      assert.ok(secret, c.stdout);
      srv = await startServer({ dataDir, accountId, token: rootToken });
      servers.push(srv);
      const h = { auth: false, headers: { authorization: `Bearer ${secret}` } };
      expectOk(await srv.api('PUT', `${srv.ns(nsId)}/values/w`, { ...h, body: 'written' }));
      await srv.stop();
    });

    it('token commands fail cleanly on bad input', async () => {
      const dataDir = tmp();
      const srv = await startServer({ dataDir });
      servers.push(srv);
      await srv.stop();
      const noName = await runCli(['token', 'create', '--data-dir', dataDir]);
      assert.notEqual(noName.code, 0);
      assert.match(out(noName), /name/);
      const badPerm = await runCli(['token', 'create', '--name', 'y', '--perms', 'kv:everything', '--data-dir', dataDir]);
      assert.notEqual(badPerm.code, 0);
      assert.match(out(badPerm), /perms/);
      const badRevoke = await runCli(['token', 'revoke', hex32(), '--data-dir', dataDir]);
      assert.notEqual(badRevoke.code, 0);
    });
  });
  describe('coordinator flags', () => {
    it('refuse what cannot work, with the reason', async () => {
      const cases = [
        [['--role', 'replica', '--coordinator', 'http://127.0.0.1:2379', '--repl-listen', '127.0.0.1:0'], /etcd:\/\/HOST:PORT/],
        [['--role', 'replica', '--coordinator', 'etcd://127.0.0.1:1', '--primary', '127.0.0.1:2', '--repl-listen', '127.0.0.1:3'], /drop --primary/],
        [['--role', 'replica', '--coordinator', 'etcd://127.0.0.1:1'], /needs --repl-listen/],
        [['--coordinator', 'etcd://127.0.0.1:1'], /for --role primary, replica or edge/],
        [['--role', 'primary', '--coordinator', 'etcd://127.0.0.1:1', '--repl-listen', '127.0.0.1:3', '--coordinator-ttl-s', '1'], /coordinator-ttl-s in 2..60/],
        [['--role', 'primary', '--coordinator', 'etcd://127.0.0.1:1', '--repl-listen', '0.0.0.0:0'], /fixed port/],
      ];
      for (const [args, re] of cases) {
        const r = await runCli(['serve', '--data-dir', tmp(), '--listen', '127.0.0.1:0', ...args], { env: { EDGEKV_CLUSTER_SECRET: 'x'.repeat(64) } });
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, re, args.join(' '));
      }
    });
  });

  describe('health', () => {
    it('exits 0 against a healthy node (URL from --url or EDGEKV_LISTEN), 1 when nothing answers, 2 on bad usage', async () => {
      const srv = await startServer();
      servers.push(srv);
      const byUrl = await runCli(['health', '--url', srv.origin]);
      assert.equal(byUrl.code, 0, byUrl.stderr);
      const byEnv = await runCli(['health'], { env: { EDGEKV_LISTEN: `0.0.0.0:${srv.port}` } });
      assert.equal(byEnv.code, 0, byEnv.stderr); // a wildcard listen address means 127.0.0.1
      await srv.stop();
      const down = await runCli(['health', '--url', srv.origin, '--timeout-ms', '2000']);
      assert.equal(down.code, 1);
      assert.match(down.stderr, /healthz/);
      const bad = await runCli(['health', '--bogus']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /usage: edgekv health/);
    });
  });
});
