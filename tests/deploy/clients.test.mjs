// The official `cloudflare` SDK and `wrangler` (the pinned copies in tests/clients/node_modules)
// against a running cluster, through its client endpoint: a subset of tests/clients (which
// start their own server), run by tests/deploy/compose.test.sh against the compose lb.
//
//   CLOUDFLARE_API_BASE_URL=http://127.0.0.1:8787/client/v4 CLOUDFLARE_API_TOKEN=... \
//   CLOUDFLARE_ACCOUNT_ID=... node --test tests/deploy/clients.test.mjs
//
// Reads go through edges (cached, fed by replicas), so a read after a write may briefly see
// the old state, as on Cloudflare: reads are retried for up to EVENTUAL_MS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { runWrangler } from '../clients/lib/wrangler.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const clients = join(here, '..', 'clients');
const require = createRequire(join(clients, 'package.json'));
const Cloudflare = require('cloudflare');
const CMD_TIMEOUT_MS = 90_000;
const EVENTUAL_MS = 15_000;

const base = process.env.CLOUDFLARE_API_BASE_URL;
const token = process.env.CLOUDFLARE_API_TOKEN;
const account_id = process.env.CLOUDFLARE_ACCOUNT_ID;
if (!base || !token || !account_id) {
  throw new Error('set CLOUDFLARE_API_BASE_URL, CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID');
}

let cf;
let work;
const created = [];

before(() => {
  cf = new Cloudflare({ apiToken: token, baseURL: base, maxRetries: 0, timeout: 30_000 });
  work = mkdtempSync(join(tmpdir(), 'edgekv-deploy-wrangler-'));
});

after(async () => {
  for (const id of created) {
    try {
      await cf.kv.namespaces.delete(id, { account_id });
    } catch {
      // already deleted by the test
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

const uniq = (p) => `${p}-${randomBytes(5).toString('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = async (res) => Buffer.from(await res.arrayBuffer()).toString('utf8');

// Retry fn until it returns without throwing (an assertion included), for EVENTUAL_MS.
async function eventually(fn, what) {
  const deadline = Date.now() + EVENTUAL_MS;
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      last.message = `${what}: still failing after ${EVENTUAL_MS} ms: ${last.message}`;
      throw last;
    }
    await sleep(100);
  }
}

async function newNs(prefix) {
  const ns = await cf.kv.namespaces.create({ account_id, title: uniq(prefix) });
  assert.match(ns.id, /^[0-9a-f]{32}$/);
  created.push(ns.id);
  return ns;
}

async function status(p) {
  try {
    await p;
    return 200;
  } catch (e) {
    return e.status ?? String(e);
  }
}

test('SDK: namespaces create / get / list / update / delete', async () => {
  const ns = await newNs('dep-ns');
  await eventually(async () => assert.deepEqual(await cf.kv.namespaces.get(ns.id, { account_id }), ns), 'get');
  const listed = [];
  for await (const n of cf.kv.namespaces.list({ account_id, per_page: 10 })) listed.push(n);
  assert.deepEqual(listed.filter((n) => n.id === ns.id), [ns]);
  const renamed = await cf.kv.namespaces.update(ns.id, { account_id, title: `${ns.title}-r` });
  assert.equal(renamed.title, `${ns.title}-r`);
  await cf.kv.namespaces.delete(ns.id, { account_id });
  await eventually(async () => assert.equal(await status(cf.kv.namespaces.get(ns.id, { account_id })), 404), 'get after delete');
});

test('SDK: values, metadata, keys.list pagination, bulk update / get / delete', async () => {
  const { id: namespace_id } = await newNs('dep-kv');
  await cf.kv.namespaces.values.update('greeting', { account_id, namespace_id, value: 'hello, cluster', metadata: { lang: 'en' } });
  await eventually(async () => {
    assert.equal(await text(await cf.kv.namespaces.values.get('greeting', { account_id, namespace_id })), 'hello, cluster');
    assert.deepEqual(await cf.kv.namespaces.metadata.get('greeting', { account_id, namespace_id }), { lang: 'en' });
  }, 'value and metadata');

  const names = Array.from({ length: 25 }, (_, i) => `page/${String(i).padStart(2, '0')}`);
  const r = await cf.kv.namespaces.bulkUpdate(namespace_id, { account_id, body: names.map((key) => ({ key, value: `v-${key}` })) });
  assert.deepEqual(r, { successful_key_count: 25, unsuccessful_keys: [] });
  await eventually(async () => {
    const seen = [];
    for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, prefix: 'page/', limit: 10 })) seen.push(k.name);
    assert.deepEqual(seen, names);
  }, 'keys.list over 25 keys at limit 10');
  await eventually(async () => {
    const got = await cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: [names[0], names[24], 'missing'] });
    assert.deepEqual(got, { values: { [names[0]]: `v-${names[0]}`, [names[24]]: `v-${names[24]}`, missing: null } });
  }, 'bulkGet');

  const d = await cf.kv.namespaces.bulkDelete(namespace_id, { account_id, body: names });
  assert.equal(d.successful_key_count, 25);
  await eventually(async () => {
    const left = [];
    for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, prefix: 'page/' })) left.push(k.name);
    assert.deepEqual(left, []);
    assert.equal(await status(cf.kv.namespaces.values.get(names[3], { account_id, namespace_id })), 404);
  }, 'after bulkDelete');
});

test('SDK: a token made through the edges works; a read-only one cannot write (405)', async () => {
  const { id: namespace_id } = await newNs('dep-ro');
  const perms = await fetch(`${base}/accounts/${account_id}/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: uniq('ro'), permissions: ['kv:read'] }),
  });
  assert.equal(perms.status, 200, await perms.clone().text());
  const ro = (await perms.json()).result.value;
  assert.ok(typeof ro === 'string' && ro.length >= 20, 'token value in the answer');
  const cfRo = new Cloudflare({ apiToken: ro, baseURL: base, maxRetries: 0, timeout: 30_000 });
  await eventually(async () => {
    const listed = [];
    for await (const k of cfRo.kv.namespaces.keys.list(namespace_id, { account_id })) listed.push(k);
    assert.deepEqual(listed, []);
  }, 'read-only token reads');
  assert.equal(await status(cfRo.kv.namespaces.values.update('k', { account_id, namespace_id, value: 'x' })), 405);
});

function wrangler(args) {
  return runWrangler(args, { work, base, token, accountId: account_id, timeoutMs: CMD_TIMEOUT_MS });
}

async function ok(args) {
  const r = await wrangler(args);
  assert.equal(r.code, 0, `wrangler ${r.args.join(' ')} exited ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  return r;
}

test('wrangler: kv namespace create / list, kv key put / get / list / delete --remote', async () => {
  const title = uniq('dep-wr');
  await ok(['kv', 'namespace', 'create', title]);
  const listed = JSON.parse((await ok(['kv', 'namespace', 'list'])).stdout);
  const mine = listed.filter((n) => n.title === title);
  assert.equal(mine.length, 1, `namespace ${title} in wrangler's list`);
  const nsId = mine[0].id;
  created.push(nsId);
  const args = ['--namespace-id', nsId, '--remote'];

  await ok(['kv', 'key', 'put', 'alpha', 'one', ...args]);
  await ok(['kv', 'key', 'put', 'beta', 'two', ...args, '--metadata', '{"a":1}']);
  await eventually(async () => assert.equal((await ok(['kv', 'key', 'get', 'alpha', ...args])).stdout, 'one'), 'wrangler get');
  await eventually(async () => {
    assert.deepEqual(JSON.parse((await ok(['kv', 'key', 'list', ...args])).stdout), [
      { name: 'alpha' },
      { name: 'beta', metadata: { a: 1 } },
    ]);
  }, 'wrangler list');
  await ok(['kv', 'key', 'delete', 'alpha', ...args]);
  await eventually(async () => {
    assert.equal(await status(cf.kv.namespaces.values.get('alpha', { account_id, namespace_id: nsId })), 404);
  }, 'deleted through wrangler');
});
