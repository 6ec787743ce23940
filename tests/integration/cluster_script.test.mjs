// scripts/cluster.sh (issue: cluster launcher): `up` starts 1 primary, 2 replicas and 3 edges on
// loopback with one command and prints endpoints and credentials; the cluster serves the API
// (a write through e1 is read through e3); `status` reports every node; `down --purge` stops
// them all and removes the data.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { BIN, cleanEnv, waitFor } from './lib/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(here, '..', '..', 'scripts', 'cluster.sh');

// A base port whose whole range (base .. base+113) is free right now.
async function freeBase() {
  const free = (port) => new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 400) * 100;
    const ports = [0, 1, 2, 11, 12, 13, 100, 101, 102, 111, 112, 113].map((d) => base + d);
    let ok = true;
    for (const p of ports) if (!(await free(p))) { ok = false; break; }
    if (ok) return base;
  }
  throw new Error('no free port range');
}

function run(args, dir, timeout = 120000) {
  const r = spawnSync('bash', [SCRIPT, ...args, '--dir', dir], {
    env: cleanEnv({ EDGEKV_BIN: BIN }), encoding: 'utf8', timeout,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe('scripts/cluster.sh', { timeout: 180000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-cluster-'));
  after(() => { run(['down', '--purge'], dir); rmSync(dir, { recursive: true, force: true }); });

  it('up starts 6 nodes and prints credentials; the cluster serves; status; down', async () => {
    const base = await freeBase();
    const up = run(['up', '--base-port', String(base)], dir);
    assert.equal(up.code, 0, up.out);
    for (const n of ['p1', 'r1', 'r2', 'e1', 'e2', 'e3']) assert.match(up.out, new RegExp(`^${n}\\s`, 'm'), up.out);
    const acct = /CLOUDFLARE_ACCOUNT_ID=([0-9a-f]{32})/.exec(up.out)?.[1];
    const token = /CLOUDFLARE_API_TOKEN=(\S+)/.exec(up.out)?.[1];
    const baseUrl = /CLOUDFLARE_API_BASE_URL=(\S+)/.exec(up.out)?.[1];
    assert.ok(acct && token, up.out);
    assert.equal(baseUrl, `http://127.0.0.1:${base + 11}/client/v4`, 'the printed base URL is edge e1');
    assert.match(readFileSync(join(dir, 'credentials.env'), 'utf8'), new RegExp(acct));
    // the cluster secret beside the credentials: 64 hex characters, mode 600, given to every node
    assert.match(readFileSync(join(dir, 'cluster.secret'), 'utf8'), /^[0-9a-f]{64}\n$/);
    assert.equal(statSync(join(dir, 'cluster.secret')).mode & 0o777, 0o600);

    const h = { authorization: `Bearer ${token}` };
    const api = (port, path, init = {}) =>
      fetch(`http://127.0.0.1:${port}/client/v4/accounts/${acct}${path}`, { ...init, headers: { ...h, ...(init.headers || {}) } });
    const cr = await (await api(base + 11, '/storage/kv/namespaces', {
      method: 'POST', body: JSON.stringify({ title: 'cluster-script' }), headers: { 'content-type': 'application/json' },
    })).json();
    assert.equal(cr.success, true, JSON.stringify(cr));
    const ns = cr.result.id;
    const put = await api(base + 11, `/storage/kv/namespaces/${ns}/values/hello`, { method: 'PUT', body: 'from e1' });
    assert.equal(put.status, 200);
    await waitFor(async () => {
      const r = await api(base + 13, `/storage/kv/namespaces/${ns}/values/hello`);
      return r.status === 200 && (await r.text()) === 'from e1';
    }, 5000, 'the value written through e1 to be readable through e3');

    const st = run(['status'], dir);
    assert.equal(st.code, 0, st.out);
    assert.equal((st.out.match(/\brunning\b/g) || []).length, 6, st.out);

    const down = run(['down', '--purge'], dir);
    assert.equal(down.code, 0, down.out);
    const after = run(['status'], dir);
    assert.notEqual(after.code, 0, after.out);
    const dead = await fetch(`http://127.0.0.1:${base}/healthz`).then(() => false, () => true);
    assert.ok(dead, 'the primary still answers after down');
  });
});
