// Durable Objects REST API (docs/API.md "Durable Objects"): namespaces (CRUD, errors, page
// pagination, per-account limit, CLI), object lists (cursor paging, hasStoredData), ids
// (idFromName determinism, newUniqueId, verification), storage (get/put/delete/list with every
// option, deleteAll, transactions), limits and their texts (KV-backed vs SQLite-backed),
// permissions (do:read / do:write / KV-only tokens). Calls and alarms: do_calls.test.mjs;
// clusters: do_cluster.test.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, hex32, expectOk, expectError, runCli, byteCompare, RawConn, parseHttpResponse, waitFor } from './lib/harness.mjs';
import {
  HEX32, HEX64, nsRoot, nsPath, objPath, createNs, newId, storage, list, createToken, bearer,
} from './lib/do_api.mjs';

const T = { timeout: 120000 };
const SAN = !!process.env.EDGEKV_SANITIZED;
const NS_NOT_FOUND = (id) => `Durable Object namespace ID '${id}' not found.`;
const BAD_ID = 'Invalid Durable Object ID: must be 64 hex digits';
const WRONG_NS = 'Durable Object ID is not valid for this namespace.';
const BOTH_START = 'list() cannot be called with both start and startAfter values.';
const keyTooLarge = (n) => `Keys cannot be larger than 2048 bytes. A key of size ${n} was provided.`;
const valueTooLarge = (n) => `Values cannot be larger than 131072 bytes. A value of size ${n} was provided.`;
const tooManyKeys = (n) => `Maximum number of key value pairs is 128. ${n} pairs were provided.`;

// Run fn over items with `n` workers.
async function pool(items, n, fn) {
  let next = 0;
  const out = new Array(items.length);
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); }
  }));
  return out;
}

// Every page of GET .../objects?limit=L: [{ page result, result_info }].
async function objectPages(srv, ns, limit) {
  const pages = [];
  let cursor = '';
  for (let i = 0; i < 1000; i++) {
    const q = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
    const r = await srv.api('GET', `${nsPath(srv, ns)}/objects?${q}`);
    const res = expectOk(r);
    pages.push({ result: res, info: r.body.result_info });
    cursor = r.body.result_info.cursor;
    if (!cursor) return pages;
  }
  throw new Error('objects list never ended');
}

// Every item of storage/list with these options, following cursors: { items, pages }.
async function listAll(srv, ns, obj, query) {
  const items = [];
  const pages = [];
  let cursor = '';
  for (let i = 0; i < 10000; i++) {
    const r = await list(srv, ns, obj, { ...query, ...(cursor ? { cursor } : {}) });
    const res = expectOk(r);
    assert.ok(Array.isArray(res), `list result must be an array: ${r.text.slice(0, 200)}`);
    assert.equal(r.body.result_info.count, res.length, `result_info.count: ${JSON.stringify(r.body.result_info)}`);
    assert.equal(typeof r.body.result_info.cursor, 'string', `result_info.cursor: ${JSON.stringify(r.body.result_info)}`);
    pages.push(res.length);
    items.push(...res);
    cursor = r.body.result_info.cursor;
    if (!cursor) return { items, pages };
    assert.ok(res.length > 0 || i < 5, 'endless empty pages with a cursor');
  }
  throw new Error('storage list never ended');
}

describe('durable objects: namespaces', T, () => {
  let srv;
  let root;
  before(async () => {
    srv = await startServer();
    root = nsRoot(srv);
  });
  after(async () => { await srv?.stop(); });

  it('POST creates a namespace (defaults: script null, use_sqlite true); GET returns it', async () => {
    const name = `create-${hex32()}`;
    const ns = expectOk(await srv.api('POST', root, { json: { name, class: 'Counter' } }));
    assert.match(ns.id, HEX32);
    assert.deepEqual(ns, { id: ns.id, name, script: null, class: 'Counter', use_sqlite: true });
    assert.deepEqual(expectOk(await srv.api('GET', `${root}/${ns.id}`)), ns);

    const name2 = `create2-${hex32()}`;
    const ns2 = expectOk(await srv.api('POST', root,
      { json: { name: name2, class: 'Room', script: 'http://127.0.0.1:9/app', use_sqlite: false } }));
    assert.deepEqual(ns2, { id: ns2.id, name: name2, script: 'http://127.0.0.1:9/app', class: 'Room', use_sqlite: false });
    assert.notEqual(ns2.id, ns.id);
    assert.deepEqual(expectOk(await srv.api('GET', `${root}/${ns2.id}`)), ns2);
    const all = expectOk(await srv.api('GET', `${root}?per_page=1000`));
    assert.deepEqual(all.filter((n) => n.id === ns.id || n.id === ns2.id).sort((a, b) => byteCompare(a.name, b.name)),
      [ns, ns2].sort((a, b) => byteCompare(a.name, b.name)));
  });

  it('name and class: 1..512 bytes (UTF-8 bytes counted); bad bodies are 400/10073', async () => {
    const n512 = `${'é'.repeat(250)}${hex32().slice(0, 12)}`;
    assert.equal(Buffer.byteLength(n512), 512);
    const c512 = 'C'.repeat(512);
    const ok = expectOk(await srv.api('POST', root, { json: { name: n512, class: c512 } }));
    assert.equal(ok.name, n512);
    assert.equal(ok.class, c512);
    const n513 = `${'é'.repeat(250)}${hex32().slice(0, 13)}`;
    assert.equal(Buffer.byteLength(n513), 513);
    const bad = [
      { what: 'name 513 bytes', json: { name: n513, class: 'C' } },
      { what: 'class 513 bytes', json: { name: `c513-${hex32()}`, class: 'C'.repeat(513) } },
      { what: 'missing name', json: { class: 'C' } },
      { what: 'empty name', json: { name: '', class: 'C' } },
      { what: 'name not a string', json: { name: 42, class: 'C' } },
      { what: 'missing class', json: { name: `nc-${hex32()}` } },
      { what: 'empty class', json: { name: `ec-${hex32()}`, class: '' } },
      { what: 'class not a string', json: { name: `ncs-${hex32()}`, class: ['C'] } },
      { what: 'https script', json: { name: `hs-${hex32()}`, class: 'C', script: 'https://example.invalid/x' } },
      { what: 'garbage script', json: { name: `gs-${hex32()}`, class: 'C', script: 'not a url' } },
      { what: 'script not a string', json: { name: `sn-${hex32()}`, class: 'C', script: 7 } },
      { what: 'use_sqlite not a bool', json: { name: `us-${hex32()}`, class: 'C', use_sqlite: 'yes' } },
      { what: 'body an array', json: [{ name: 'x', class: 'C' }] },
    ];
    for (const b of bad) {
      const r = await srv.api('POST', root, { json: b.json });
      assert.equal(r.status, 400, `${b.what}: ${r.status} ${r.text}`);
      expectError(r, 400, 10073);
    }
    expectError(await srv.api('POST', root, { body: '{"name":', headers: { 'content-type': 'application/json' } }), 400, 10073);
    expectError(await srv.api('POST', root, {}), 400, 10073);
    // none of them was created
    const all = expectOk(await srv.api('GET', `${root}?per_page=1000`));
    assert.ok(!all.some((n) => n.name === n513), 'a 513-byte name was created');
  });

  it('duplicate name is 400/10069 (also on rename); concurrent creates: exactly one wins', async () => {
    const name = `dup-${hex32()}`;
    const a = await createNs(srv, { name });
    expectError(await srv.api('POST', root, { json: { name, class: 'Other' } }), 400, 10069);
    const b = await createNs(srv);
    expectError(await srv.api('PUT', `${root}/${b.id}`, { json: { name } }), 400, 10069);
    assert.equal(expectOk(await srv.api('GET', `${root}/${b.id}`)).name, b.name);
    assert.equal(expectOk(await srv.api('GET', `${root}/${a.id}`)).name, name);

    const race = `race-${hex32()}`;
    const rs = await Promise.all(Array.from({ length: 12 }, () => srv.api('POST', root, { json: { name: race, class: 'C' } })));
    assert.equal(rs.filter((r) => r.status === 200).length, 1, rs.map((r) => r.status).join(','));
    for (const r of rs.filter((x) => x.status !== 200)) expectError(r, 400, 10069);
  });

  it('GET/PUT/DELETE of an unknown or malformed namespace id: 404/10066 with the id in the message', async () => {
    for (const id of [hex32(), 'not-a-namespace', '0123']) {
      expectError(await srv.api('GET', `${root}/${id}`), 404, 10066, NS_NOT_FOUND(id));
      expectError(await srv.api('PUT', `${root}/${id}`, { json: { name: 'x' } }), 404, 10066, NS_NOT_FOUND(id));
      expectError(await srv.api('DELETE', `${root}/${id}`), 404, 10066, NS_NOT_FOUND(id));
      expectError(await srv.api('GET', `${root}/${id}/objects`), 404, 10066, NS_NOT_FOUND(id));
      expectError(await srv.api('POST', `${root}/${id}/objects/ids`, { json: { name: 'a' } }), 404, 10066, NS_NOT_FOUND(id));
      expectError(await srv.api('POST', `${root}/${id}/objects/${'a'.repeat(64)}/storage/get`, { json: { keys: ['a'] } }),
        404, 10066, NS_NOT_FOUND(id));
    }
  });

  it('PUT updates name, class and script; null or "" removes the script; use_sqlite cannot change', async () => {
    const ns = await createNs(srv, { class: 'A', script: 'http://127.0.0.1:1/s' });
    const name = `renamed-${hex32()}`;
    let u = expectOk(await srv.api('PUT', `${root}/${ns.id}`, { json: { name } }));
    assert.deepEqual(u, { ...ns, name });
    u = expectOk(await srv.api('PUT', `${root}/${ns.id}`, { json: { class: 'B' } }));
    assert.deepEqual(u, { ...ns, name, class: 'B' });
    u = expectOk(await srv.api('PUT', `${root}/${ns.id}`, { json: { script: 'http://127.0.0.1:2/t' } }));
    assert.equal(u.script, 'http://127.0.0.1:2/t');
    u = expectOk(await srv.api('PUT', `${root}/${ns.id}`, { json: { script: null } }));
    assert.deepEqual(u, { id: ns.id, name, class: 'B', script: null, use_sqlite: true });
    expectOk(await srv.api('PUT', `${root}/${ns.id}`, { json: { script: 'http://127.0.0.1:3/u' } }));
    u = expectOk(await srv.api('PUT', `${root}/${ns.id}`, { json: { script: '' } }));
    assert.equal(u.script, null);
    assert.deepEqual(expectOk(await srv.api('GET', `${root}/${ns.id}`)), u);
    // the old name is free again
    expectOk(await srv.api('POST', root, { json: { name: ns.name, class: 'A' } }));

    expectError(await srv.api('PUT', `${root}/${ns.id}`, { json: { use_sqlite: false } }), 400, 10073);
    const kv = await createNs(srv, { use_sqlite: false });
    expectError(await srv.api('PUT', `${root}/${kv.id}`, { json: { use_sqlite: true } }), 400, 10073);
    expectError(await srv.api('PUT', `${root}/${ns.id}`, { json: { script: 'https://x.invalid/' } }), 400, 10073);
    expectError(await srv.api('PUT', `${root}/${ns.id}`, { json: { name: '' } }), 400, 10073);
    expectError(await srv.api('PUT', `${root}/${ns.id}`, { json: { class: '' } }), 400, 10073);
    assert.deepEqual(expectOk(await srv.api('GET', `${root}/${ns.id}`)), u, 'refused updates changed nothing');
    assert.equal(expectOk(await srv.api('GET', `${root}/${kv.id}`)).use_sqlite, false);
  });

  it('DELETE returns null and removes every object\'s data; a re-created name gets a new id', async () => {
    const ns = await createNs(srv);
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const id = await newId(srv, ns.id, `o${i}`);
      ids.push(id);
      expectOk(await storage(srv, ns.id, id, 'put', { entries: { k: i } }));
    }
    expectOk(await srv.api('PUT', `${objPath(srv, ns.id, ids[0])}/alarm`, { json: { scheduledTime: Date.now() + 3600e3 } }));
    assert.equal(expectOk(await srv.api('GET', `${root}/${ns.id}/objects`)).length, 3);
    const d = await srv.api('DELETE', `${root}/${ns.id}`);
    assert.equal(expectOk(d), null);
    expectError(await srv.api('GET', `${root}/${ns.id}`), 404, 10066, NS_NOT_FOUND(ns.id));
    expectError(await srv.api('GET', `${root}/${ns.id}/objects`), 404, 10066, NS_NOT_FOUND(ns.id));
    expectError(await storage(srv, ns.id, ids[1], 'get', { keys: ['k'] }), 404, 10066, NS_NOT_FOUND(ns.id));
    expectError(await srv.api('GET', `${objPath(srv, ns.id, ids[0])}/alarm`), 404, 10066, NS_NOT_FOUND(ns.id));
    expectError(await srv.api('DELETE', `${root}/${ns.id}`), 404, 10066, NS_NOT_FOUND(ns.id));
    const all = expectOk(await srv.api('GET', `${root}?per_page=1000`));
    assert.ok(!all.some((n) => n.id === ns.id), 'deleted namespace still listed');

    const again = await createNs(srv, { name: ns.name });
    assert.notEqual(again.id, ns.id);
    assert.deepEqual(expectOk(await srv.api('GET', `${root}/${again.id}/objects`)), [], 'the new namespace starts empty');
    // old ids do not belong to the new namespace
    expectError(await storage(srv, again.id, ids[0], 'get', { keys: ['k'] }), 400, 10068, WRONG_NS);
    const fresh = await newId(srv, again.id, 'o0');
    assert.notEqual(fresh, ids[0]);
    assert.deepEqual(expectOk(await storage(srv, again.id, fresh, 'get', { keys: ['k'] })), {});
  });

  it('CLI: do namespace create / list / delete (flags and env), errors exit non-zero', async () => {
    const flags = ['--url', srv.origin, '--account', srv.accountId, '--token', srv.token];
    const name = `cli-${hex32()}`;
    const c = await runCli(['do', 'namespace', 'create', '--name', name, '--class', 'Cli', '--script', 'http://127.0.0.1:5/x', ...flags]);
    assert.equal(c.code, 0, `create: ${c.stdout}\n${c.stderr}`);
    const created = JSON.parse(c.stdout);
    assert.match(created.id, HEX32);
    assert.deepEqual(created, { id: created.id, name, script: 'http://127.0.0.1:5/x', class: 'Cli', use_sqlite: true });
    const kvName = `cli-kv-${hex32()}`;
    const env = { EDGEKV_URL: srv.origin, CLOUDFLARE_ACCOUNT_ID: srv.accountId, CLOUDFLARE_API_TOKEN: srv.token };
    const k = await runCli(['do', 'namespace', 'create', '--name', kvName, '--class', 'Cli', '--kv-backed'], { env });
    assert.equal(k.code, 0, `create --kv-backed: ${k.stdout}\n${k.stderr}`);
    const kv = JSON.parse(k.stdout);
    assert.deepEqual(kv, { id: kv.id, name: kvName, script: null, class: 'Cli', use_sqlite: false });

    const l = await runCli(['do', 'namespace', 'list', ...flags]);
    assert.equal(l.code, 0, `list: ${l.stdout}\n${l.stderr}`);
    const listed = JSON.parse(l.stdout);
    assert.ok(Array.isArray(listed), l.stdout.slice(0, 300));
    assert.deepEqual(listed.find((n) => n.id === created.id), created);
    assert.deepEqual(listed.find((n) => n.id === kv.id), kv);

    const dup = await runCli(['do', 'namespace', 'create', '--name', name, '--class', 'Cli', ...flags]);
    assert.notEqual(dup.code, 0, 'duplicate create must fail');
    assert.ok(dup.stderr.length > 0, 'the error goes to stderr');

    const d = await runCli(['do', 'namespace', 'delete', created.id, ...flags]);
    assert.equal(d.code, 0, `delete: ${d.stdout}\n${d.stderr}`);
    expectError(await srv.api('GET', `${root}/${created.id}`), 404, 10066);
    const d2 = await runCli(['do', 'namespace', 'delete', created.id, ...flags]);
    assert.notEqual(d2.code, 0, 'deleting an unknown namespace must fail');
    assert.match(d2.stderr, /not found|10066/);
    const bad = await runCli(['do', 'namespace', 'list', '--url', srv.origin, '--account', srv.accountId, '--token', 'wrong-token-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx']);
    assert.notEqual(bad.code, 0);
  });
});

describe('durable objects: namespace list pagination and the per-account limit', T, () => {
  let srv;
  let root;
  const made = [];
  before(async () => {
    srv = await startServer();
    root = nsRoot(srv);
    // 25 namespaces, created out of name order
    const names = Array.from({ length: 25 }, (_, i) => `p${String((i * 7) % 25).padStart(2, '0')}-${hex32().slice(0, 6)}`);
    for (const name of names) made.push(await createNs(srv, { name, class: 'P' }));
    made.sort((a, b) => byteCompare(a.name, b.name));
  });
  after(async () => { await srv?.stop(); });

  it('pages of 10: 10, 10, 5 by name, then an empty page; result_info page-style', async () => {
    const got = [];
    for (let page = 1; page <= 4; page++) {
      const r = await srv.api('GET', `${root}?page=${page}&per_page=10`);
      const res = expectOk(r);
      const want = made.slice((page - 1) * 10, page * 10);
      assert.deepEqual(res, want, `page ${page}`);
      assert.deepEqual(r.body.result_info, { page, per_page: 10, count: want.length, total_count: 25, total_pages: 3 }, `page ${page}`);
      got.push(...res);
    }
    assert.deepEqual(got, made);
  });

  it('defaults: page 1, per_page 20', async () => {
    const r = await srv.api('GET', root);
    assert.deepEqual(expectOk(r), made.slice(0, 20));
    assert.deepEqual(r.body.result_info, { page: 1, per_page: 20, count: 20, total_count: 25, total_pages: 2 });
    const r2 = await srv.api('GET', `${root}?page=2`);
    assert.deepEqual(expectOk(r2), made.slice(20));
    assert.deepEqual(r2.body.result_info, { page: 2, per_page: 20, count: 5, total_count: 25, total_pages: 2 });
    const all = await srv.api('GET', `${root}?per_page=1000`);
    assert.deepEqual(expectOk(all), made);
    const one = await srv.api('GET', `${root}?per_page=1&page=25`);
    assert.deepEqual(expectOk(one), [made[24]]);
    assert.deepEqual(one.body.result_info, { page: 25, per_page: 1, count: 1, total_count: 25, total_pages: 25 });
  });

  it('per_page outside 1..1000 is 400/10008; page < 1 is 400/10007', async () => {
    for (const pp of ['0', '1001', '-1', 'abc']) expectError(await srv.api('GET', `${root}?per_page=${pp}`), 400, 10008);
    for (const p of ['0', '-1', 'abc']) expectError(await srv.api('GET', `${root}?page=${p}`), 400, 10007);
  });

  it('at most 1000 namespaces per account (400/10078); deleting one frees a slot', async () => {
    const names = Array.from({ length: 1000 - made.length }, (_, i) => `zz-${String(i).padStart(4, '0')}`);
    await pool(names, 8, async (name) => createNs(srv, { name, class: 'L' }));
    const r = await srv.api('GET', `${root}?per_page=1000`);
    assert.equal(expectOk(r).length, 1000);
    assert.equal(r.body.result_info.total_count, 1000);
    expectError(await srv.api('POST', root, { json: { name: 'one-too-many', class: 'L' } }), 400, 10078);
    expectOk(await srv.api('DELETE', `${root}/${made[0].id}`));
    expectOk(await srv.api('POST', root, { json: { name: 'one-too-many', class: 'L' } }));
    expectError(await srv.api('POST', root, { json: { name: 'two-too-many', class: 'L' } }), 400, 10078);
  });
});

describe('durable objects: ids and object lists', T, () => {
  let srv;
  let nsA;
  let nsB;
  before(async () => {
    srv = await startServer();
    nsA = (await createNs(srv)).id;
    nsB = (await createNs(srv)).id;
  });
  after(async () => { await srv?.stop(); });

  it('objects/ids {name}: {id, name}, deterministic per namespace, different across namespaces', async () => {
    const r = expectOk(await srv.api('POST', `${nsPath(srv, nsA)}/objects/ids`, { json: { name: 'alice' } }));
    assert.deepEqual(Object.keys(r).sort(), ['id', 'name']);
    assert.match(r.id, HEX64);
    assert.equal(r.name, 'alice');
    assert.equal(await newId(srv, nsA, 'alice'), r.id);
    assert.notEqual(await newId(srv, nsA, 'bob'), r.id);
    const inB = await newId(srv, nsB, 'alice');
    assert.match(inB, HEX64);
    assert.notEqual(inB, r.id);
    const uni = 'ключ 🔑 "q"';
    const u = expectOk(await srv.api('POST', `${nsPath(srv, nsA)}/objects/ids`, { json: { name: uni } }));
    assert.equal(u.name, uni);
    assert.equal(await newId(srv, nsA, uni), u.id);
  });

  it('objects/ids {}: a new unique id every time, valid for this namespace only', async () => {
    const seen = new Set();
    for (let i = 0; i < 20; i++) {
      const r = expectOk(await srv.api('POST', `${nsPath(srv, nsA)}/objects/ids`, { json: {} }));
      assert.deepEqual(Object.keys(r), ['id'], JSON.stringify(r));
      assert.match(r.id, HEX64);
      assert.ok(!seen.has(r.id), 'duplicate unique id');
      seen.add(r.id);
    }
    const id = [...seen][0];
    expectOk(await storage(srv, nsA, id, 'put', { entries: { a: 1 } }));
    assert.deepEqual(expectOk(await storage(srv, nsA, id, 'get', { keys: ['a'] })), { a: 1 });
    expectError(await storage(srv, nsB, id, 'get', { keys: ['a'] }), 400, 10068, WRONG_NS);
  });

  it('a malformed id is 400/10067, an id of another namespace 400/10068, on every object route', async () => {
    const good = await newId(srv, nsA, 'verify');
    const foreign = await newId(srv, nsB, 'verify');
    const random = '0'.repeat(32) + hex32();
    const routes = [
      ['POST', 'storage/get', { keys: ['a'] }],
      ['POST', 'storage/put', { entries: { a: 1 } }],
      ['POST', 'storage/delete', { keys: ['a'] }],
      ['GET', 'storage/list', undefined],
      ['POST', 'storage/deleteAll', {}],
      ['POST', 'storage/transaction', { checks: [], then: [], else: [] }],
      ['GET', 'alarm', undefined],
      ['PUT', 'alarm', { scheduledTime: Date.now() + 3600e3 }],
      ['DELETE', 'alarm', undefined],
    ];
    for (const [m, sub, json] of routes) {
      for (const bad of ['abc', 'a'.repeat(63), 'a'.repeat(65), `${'z'.repeat(64)}`, `${good.slice(0, 63)}g`]) {
        expectError(await srv.api(m, `${objPath(srv, nsA, bad)}/${sub}`, { json }), 400, 10067, BAD_ID);
      }
      expectError(await srv.api(m, `${objPath(srv, nsA, foreign)}/${sub}`, { json }), 400, 10068, WRONG_NS);
      expectError(await srv.api(m, `${objPath(srv, nsA, random)}/${sub}`, { json }), 400, 10068, WRONG_NS);
      // a flipped bit of a valid id is not valid either
      const flipped = good.slice(0, 10) + ((parseInt(good[10], 16) ^ 1).toString(16)) + good.slice(11);
      expectError(await srv.api(m, `${objPath(srv, nsA, flipped)}/${sub}`, { json }), 400, 10068, WRONG_NS);
    }
    // nothing was written through the refused calls
    assert.deepEqual(expectOk(await srv.api('GET', `${nsPath(srv, nsA)}/objects`)).filter((o) => o.id === foreign || o.id === random), []);
  });

  it('objects list: only objects with data or an alarm, by id; limit=10 pages over 25 by cursor', async () => {
    const ns = (await createNs(srv)).id;
    const withData = [];
    for (let i = 0; i < 24; i++) {
      const id = await newId(srv, ns, `obj-${i}`);
      withData.push(id);
      expectOk(await storage(srv, ns, id, 'put', { entries: { [`k${i}`]: { i } } }));
    }
    const alarmOnly = await newId(srv, ns, 'alarm-only');
    expectOk(await srv.api('PUT', `${objPath(srv, ns, alarmOnly)}/alarm`, { json: { scheduledTime: Date.now() + 24 * 3600e3 } }));
    // ids that never stored anything, and one whose only key was deleted
    for (let i = 0; i < 5; i++) await newId(srv, ns, `empty-${i}`);
    await newId(srv, ns);
    const emptied = await newId(srv, ns, 'emptied');
    expectOk(await storage(srv, ns, emptied, 'put', { entries: { x: 1 } }));
    assert.deepEqual(expectOk(await storage(srv, ns, emptied, 'delete', { keys: ['x'] })), { deleted: 1 });
    const cleared = await newId(srv, ns, 'cleared');
    expectOk(await storage(srv, ns, cleared, 'put', { entries: { x: 1, y: 2 } }));
    assert.equal(expectOk(await storage(srv, ns, cleared, 'deleteAll', {})), null);

    const want = [...withData, alarmOnly].sort();
    const pages = await objectPages(srv, ns, 10);
    assert.deepEqual(pages.map((p) => p.result.length), [10, 10, 5]);
    const got = pages.flatMap((p) => p.result);
    assert.deepEqual(got, want.map((id) => ({ id, hasStoredData: true })));
    for (const [i, p] of pages.entries()) {
      const last = i === pages.length - 1;
      assert.equal(p.info.count, p.result.length);
      assert.equal(typeof p.info.cursor, 'string');
      assert.equal(p.info.cursor === '', last, `page ${i} cursor ${JSON.stringify(p.info.cursor)}`);
      assert.deepEqual(p.info.cursors, { after: p.info.cursor }, `page ${i}: cursors.after must equal cursor`);
    }
    // default limit 1000: everything at once
    const r = await srv.api('GET', `${nsPath(srv, ns)}/objects`);
    assert.deepEqual(expectOk(r), want.map((id) => ({ id, hasStoredData: true })));
    assert.equal(r.body.result_info.count, 25);
    assert.equal(r.body.result_info.cursor, '');
    assert.deepEqual(r.body.result_info.cursors, { after: '' });
    // limit bounds
    for (const l of ['9', '10001', '0', 'x']) expectError(await srv.api('GET', `${nsPath(srv, ns)}/objects?limit=${l}`), 400, 10074);
    expectOk(await srv.api('GET', `${nsPath(srv, ns)}/objects?limit=10000`));
    // removing the alarm unlists the alarm-only object
    assert.equal(expectOk(await srv.api('DELETE', `${objPath(srv, ns, alarmOnly)}/alarm`)), null);
    const after1 = expectOk(await srv.api('GET', `${nsPath(srv, ns)}/objects`));
    assert.deepEqual(after1.map((o) => o.id), [...withData].sort());
  });
});

describe('durable objects: storage', T, () => {
  let srv;
  let ns; // SQLite-backed
  let kvns; // KV-backed
  before(async () => {
    srv = await startServer();
    ns = (await createNs(srv)).id;
    kvns = (await createNs(srv, { use_sqlite: false })).id;
  });
  after(async () => { await srv?.stop(); });

  // A reply may run the client's next pipelined request at once (the HTTP layer parses on
  // after a reply): requests on the same idle object, back to back in one TCP write, must all
  // be answered, in order, and the server must survive it (it once freed the object twice).
  it('pipelined requests on one object, in one TCP write, are all answered in order', async () => {
    const obj = await newId(srv, ns, 'pipelined');
    const path = (p) => `/client/v4${objPath(srv, ns, obj)}${p}`;
    const req = (method, p, body) => `${method} ${path(p)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\n` +
      (body !== undefined ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : '') + `\r\n${body ?? ''}`;
    const batch = [
      req('POST', '/storage/get', '{"keys":["a"]}'),
      req('GET', '/alarm'),
      req('POST', '/storage/put', '{"entries":{"a":1}}'),
      req('GET', '/alarm'),
      req('POST', '/storage/get', '{"keys":["a","b"]}'),
      req('GET', '/storage/list'),
      req('POST', '/storage/delete', '{"keys":["a"]}'),
      req('GET', '/alarm'),
    ];
    const c = await RawConn.open(srv.port);
    try {
      await c.write(batch.join(''));
      const want = [{}, { scheduledTime: null }, null, { scheduledTime: null }, { a: 1 },
        [{ key: 'a', value: 1 }], { deleted: 1 }, { scheduledTime: null }];
      for (let i = 0; i < want.length; i++) {
        const r = await c.readResponse(10000);
        assert.equal(r.status, 200, `reply ${i}: ${r.body}`);
        assert.deepEqual(JSON.parse(r.body).result, want[i], `reply ${i}`);
      }
    } finally {
      c.destroy();
    }
    expectOk(await srv.api('GET', '/accounts/' + srv.accountId + '/workers/durable_objects/namespaces'));
  });

  it('put / get any JSON value; absent keys omitted; overwrite; get result in UTF-8 key order', async () => {
    const obj = await newId(srv, ns, 'values');
    const entries = {
      str: 'hello', num: 42.5, neg: -7, big: 1e300, t: true, f: false, nul: null,
      arr: [1, 'two', [3], { four: 4 }], obj: { a: { b: { c: [null, true] } } }, uni: 'ключ 🔑 "q" \\ \n', empty: '',
    };
    assert.equal(expectOk(await storage(srv, ns, obj, 'put', { entries })), null);
    const keys = [...Object.keys(entries), 'missing', 'also-missing'];
    const got = expectOk(await storage(srv, ns, obj, 'get', { keys }));
    assert.deepEqual(got, entries);
    assert.deepEqual(Object.keys(got), Object.keys(entries).sort(byteCompare), 'result keys in UTF-8 byte order');
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['missing'] })), {});
    expectOk(await storage(srv, ns, obj, 'put', { entries: { str: { now: 'an object' }, nul: 0 } }));
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['str', 'nul', 'num'] })),
      { nul: 0, num: 42.5, str: { now: 'an object' } });
    // other objects are separate
    const other = await newId(srv, ns, 'values-other');
    assert.deepEqual(expectOk(await storage(srv, ns, other, 'get', { keys })), {});
  });

  it('unicode keys: get and list order by UTF-8 bytes (not UTF-16 code units)', async () => {
    const obj = await newId(srv, ns, 'unicode');
    // U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80) in UTF-8, after it in UTF-16
    const keys = ['\u{1F600}', '\uFFFD', 'é', 'e', 'E', 'z', '~', 'a b', 'a', 'ab', '\u00ff', '\u0100', '\u4e2d'];
    const entries = Object.fromEntries(keys.map((k, i) => [k, i]));
    expectOk(await storage(srv, ns, obj, 'put', { entries }));
    const want = [...keys].sort(byteCompare);
    assert.ok(want.indexOf('\uFFFD') < want.indexOf('\u{1F600}'));
    const r = await storage(srv, ns, obj, 'get', { keys });
    expectOk(r);
    // read the order from the JSON text (no integer-like keys here, so JSON.parse keeps it)
    assert.deepEqual(Object.keys(r.body.result), want);
    const l = expectOk(await list(srv, ns, obj));
    assert.deepEqual(l.map((e) => e.key), want);
    assert.deepEqual(l.map((e) => e.value), want.map((k) => entries[k]));
    const rev = expectOk(await list(srv, ns, obj, { reverse: 'true' }));
    assert.deepEqual(rev.map((e) => e.key), [...want].reverse());
    // a range in byte order: ["\uFFFD", "\u{1F600}"] with end exclusive
    const mid = expectOk(await list(srv, ns, obj, { start: '\u4e2d', end: '\u{1F600}' }));
    assert.deepEqual(mid.map((e) => e.key), ['\u4e2d', '\uFFFD']);
  });

  it('delete returns how many keys existed', async () => {
    const obj = await newId(srv, ns, 'delete');
    expectOk(await storage(srv, ns, obj, 'put', { entries: { a: 1, b: 2, c: 3 } }));
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'delete', { keys: ['a', 'x', 'c'] })), { deleted: 2 });
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'delete', { keys: ['a', 'c', 'y'] })), { deleted: 0 });
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['a', 'b', 'c'] })), { b: 2 });
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'delete', { keys: ['b'] })), { deleted: 1 });
    assert.deepEqual(expectOk(await list(srv, ns, obj)), []);
  });

  describe('list options', () => {
    let obj;
    const keys = [];
    for (const p of ['a', 'b', 'ba', 'bb', 'c']) for (let i = 0; i < 6; i++) keys.push(`${p}:${i}`);
    keys.push('b', 'bz', 'b:');
    const sorted = [...keys].sort(byteCompare);
    const val = (k) => ({ k, n: k.length });
    const sel = (f) => sorted.filter(f);
    before(async () => {
      obj = await newId(srv, ns, 'list');
      expectOk(await storage(srv, ns, obj, 'put', { entries: Object.fromEntries(keys.map((k) => [k, val(k)])) }));
    });
    const check = async (query, want, what = JSON.stringify(query)) => {
      const r = await list(srv, ns, obj, query);
      const res = expectOk(r);
      assert.deepEqual(res.map((e) => e.key), want, what);
      for (const e of res) assert.deepEqual(e, { key: e.key, value: val(e.key) });
      assert.equal(r.body.result_info.count, want.length, `${what}: count`);
      return r;
    };

    it('no options: every key ascending with values, cursor ""', async () => {
      const r = await check({}, sorted);
      assert.equal(r.body.result_info.cursor, '');
    });
    it('prefix, start (inclusive), startAfter (exclusive), end (exclusive)', async () => {
      await check({ prefix: 'b:' }, sel((k) => k.startsWith('b:')));
      await check({ prefix: 'b' }, sel((k) => k.startsWith('b')));
      await check({ prefix: 'nothing' }, []);
      await check({ start: 'b:3' }, sel((k) => byteCompare(k, 'b:3') >= 0));
      await check({ startAfter: 'b:3' }, sel((k) => byteCompare(k, 'b:3') > 0));
      await check({ end: 'b:3' }, sel((k) => byteCompare(k, 'b:3') < 0));
      await check({ start: 'b:1', end: 'ba:2' }, sel((k) => byteCompare(k, 'b:1') >= 0 && byteCompare(k, 'ba:2') < 0));
      await check({ startAfter: 'b:1', end: 'ba:2' }, sel((k) => byteCompare(k, 'b:1') > 0 && byteCompare(k, 'ba:2') < 0));
      await check({ prefix: 'b', start: 'ba', end: 'bb:3' }, sel((k) => k.startsWith('b') && byteCompare(k, 'ba') >= 0 && byteCompare(k, 'bb:3') < 0));
      await check({ start: 'b:3', end: 'b:3' }, []);
      await check({ start: 'c', end: 'b' }, []);
      await check({ startAfter: 'zzz' }, []);
    });
    it('reverse: same range, descending', async () => {
      const desc = (a) => [...a].reverse();
      await check({ reverse: 'true' }, desc(sorted));
      await check({ reverse: 'true', prefix: 'bb' }, desc(sel((k) => k.startsWith('bb'))));
      await check({ reverse: 'true', start: 'b:2', end: 'bb' }, desc(sel((k) => byteCompare(k, 'b:2') >= 0 && byteCompare(k, 'bb') < 0)));
      await check({ reverse: 'true', startAfter: 'b:2', end: 'bb' }, desc(sel((k) => byteCompare(k, 'b:2') > 0 && byteCompare(k, 'bb') < 0)));
      await check({ reverse: 'true', limit: '3' }, desc(sorted).slice(0, 3));
      await check({ reverse: 'true', prefix: 'a', limit: '2' }, ['a:5', 'a:4']);
      await check({ reverse: 'false', limit: '2' }, sorted.slice(0, 2));
    });
    it('limit with cursor paging (forward, reverse, with a range) returns every key once', async () => {
      const cases = [
        [{ limit: '7' }, sorted],
        [{ limit: '1' }, sorted],
        [{ limit: '4', reverse: 'true' }, [...sorted].reverse()],
        [{ limit: '2', prefix: 'b' }, sel((k) => k.startsWith('b'))],
        [{ limit: '3', start: 'a:4', end: 'bb:1' }, sel((k) => byteCompare(k, 'a:4') >= 0 && byteCompare(k, 'bb:1') < 0)],
        [{ limit: '3', startAfter: 'a:4', end: 'bb:1', reverse: 'true' }, sel((k) => byteCompare(k, 'a:4') > 0 && byteCompare(k, 'bb:1') < 0).reverse()],
        [{ limit: '5', prefix: 'c', reverse: 'true' }, sel((k) => k.startsWith('c')).reverse()],
        [{ limit: String(sorted.length) }, sorted],
      ];
      for (const [q, want] of cases) {
        const { items, pages } = await listAll(srv, ns, obj, q);
        assert.deepEqual(items.map((e) => e.key), want, JSON.stringify(q));
        const lim = Number(q.limit);
        assert.ok(pages.every((n) => n <= lim), `${JSON.stringify(q)} pages ${pages}`);
        // pages are full until the last one (no byte cut with these small values)
        assert.deepEqual(pages.slice(0, -1).filter((n) => n !== lim), [], `${JSON.stringify(q)} pages ${pages}`);
      }
      // a page that ends exactly at the end of the range: nothing remains, so cursor ""
      const r = await list(srv, ns, obj, { prefix: 'a', limit: '6' });
      assert.equal(expectOk(r).length, 6);
      assert.equal(r.body.result_info.cursor, '', 'cursor must be "" when no more items remain in the range');
      const r3 = await list(srv, ns, obj, { prefix: 'a', limit: '5' });
      assert.equal(expectOk(r3).length, 5);
      assert.notEqual(r3.body.result_info.cursor, '', 'one item remains: cursor must be non-empty');
    });
    it('start with startAfter, bad limits: 400/10074', async () => {
      expectError(await list(srv, ns, obj, { start: 'a', startAfter: 'b' }), 400, 10074, BOTH_START);
      expectError(await list(srv, ns, obj, { start: '', startAfter: 'b' }), 400, 10074, BOTH_START);
      for (const l of ['0', '1001', '-5', 'ten']) expectError(await list(srv, ns, obj, { limit: l }), 400, 10074);
      await check({ limit: '1000' }, sorted);
    });
  });

  it('a list page is cut after ~8 MiB of values, with a cursor to the rest', async () => {
    const obj = await newId(srv, ns, 'big-list');
    const big = (i) => `${String(i)}${'v'.repeat(1_000_000 - 1)}`; // 1,000,000 chars, JSON 1,000,002 bytes
    const n = SAN ? 10 : 12;
    for (let i = 0; i < n; i += 4) {
      const entries = {};
      for (let j = i; j < Math.min(n, i + 4); j++) entries[`big:${String(j).padStart(2, '0')}`] = big(j);
      expectOk(await storage(srv, ns, obj, 'put', { entries }));
    }
    const { items, pages } = await listAll(srv, ns, obj, {});
    assert.deepEqual(items.map((e) => e.key), Array.from({ length: n }, (_, j) => `big:${String(j).padStart(2, '0')}`));
    items.forEach((e, j) => assert.ok(e.value === big(j), `value of ${e.key}`));
    assert.ok(pages.length >= 2, `one page of ${n} MB of values: pages ${pages}`);
    assert.ok(pages[0] >= 1 && pages[0] <= 9, `first page ${pages[0]} values of 1 MB (≈8 MiB cut): pages ${pages}`);
    const { items: rev } = await listAll(srv, ns, obj, { reverse: 'true' });
    assert.deepEqual(rev.map((e) => e.key), items.map((e) => e.key).reverse());
  });

  it('deleteAll removes every key and the alarm; the object leaves the objects list', async () => {
    const obj = await newId(srv, ns, 'deleteAll');
    expectOk(await storage(srv, ns, obj, 'put', { entries: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i])) }));
    const at = Date.now() + 3600e3;
    assert.deepEqual(expectOk(await srv.api('PUT', `${objPath(srv, ns, obj)}/alarm`, { json: { scheduledTime: at } })), { scheduledTime: at });
    assert.ok(expectOk(await srv.api('GET', `${nsPath(srv, ns)}/objects`)).some((o) => o.id === obj));
    assert.equal(expectOk(await storage(srv, ns, obj, 'deleteAll', {})), null);
    assert.deepEqual(expectOk(await list(srv, ns, obj)), []);
    assert.deepEqual(expectOk(await srv.api('GET', `${objPath(srv, ns, obj)}/alarm`)), { scheduledTime: null });
    assert.ok(!expectOk(await srv.api('GET', `${nsPath(srv, ns)}/objects`)).some((o) => o.id === obj));
    // deleteAll of an empty object is fine; the object is usable afterwards
    assert.equal(expectOk(await storage(srv, ns, obj, 'deleteAll', {})), null);
    expectOk(await storage(srv, ns, obj, 'put', { entries: { again: true } }));
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['again', 'k1'] })), { again: true });
  });

  describe('transactions', () => {
    const tx = (obj, body) => storage(srv, ns, obj, 'transaction', body);
    const txRaw = (obj, text) => srv.api('POST', `${objPath(srv, ns, obj)}/storage/transaction`,
      { body: text, headers: { 'content-type': 'application/json' } });

    it('all checks hold: then-ops; otherwise else-ops', async () => {
      const obj = await newId(srv, ns, 'tx1');
      expectOk(await storage(srv, ns, obj, 'put', { entries: { n: 1, s: 'x' } }));
      let r = expectOk(await tx(obj, {
        checks: [{ key: 'n', value: 1 }, { key: 's', value: 'x' }],
        then: [{ op: 'put', key: 'n', value: 2 }, { op: 'delete', key: 's' }, { op: 'put', key: 'new', value: [1] }],
        else: [{ op: 'put', key: 'else-ran', value: true }],
      }));
      assert.deepEqual(r, { succeeded: true });
      assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['n', 's', 'new', 'else-ran'] })), { n: 2, new: [1] });
      r = expectOk(await tx(obj, {
        checks: [{ key: 'n', value: 2 }, { key: 'new', value: [2] }],
        then: [{ op: 'put', key: 'n', value: 3 }],
        else: [{ op: 'put', key: 'else-ran', value: true }, { op: 'delete', key: 'new' }],
      }));
      assert.deepEqual(r, { succeeded: false });
      assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['n', 'new', 'else-ran'] })), { 'else-ran': true, n: 2 });
      // no checks: then runs; else may be omitted
      assert.deepEqual(expectOk(await tx(obj, { checks: [], then: [{ op: 'put', key: 'z', value: 'z' }] })), { succeeded: true });
      assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['z'] })), { z: 'z' });
      // a failed check with no else: nothing changes
      assert.deepEqual(expectOk(await tx(obj, { checks: [{ key: 'z', value: 'y' }], then: [{ op: 'delete', key: 'z' }] })), { succeeded: false });
      assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['z'] })), { z: 'z' });
    });

    it('exists checks', async () => {
      const obj = await newId(srv, ns, 'tx2');
      expectOk(await storage(srv, ns, obj, 'put', { entries: { here: null } }));
      const t = async (checks) => expectOk(await tx(obj, { checks, then: [], else: [] })).succeeded;
      assert.equal(await t([{ key: 'here', exists: true }]), true, 'a key holding null exists');
      assert.equal(await t([{ key: 'gone', exists: false }]), true);
      assert.equal(await t([{ key: 'here', exists: false }]), false);
      assert.equal(await t([{ key: 'gone', exists: true }]), false);
      assert.equal(await t([{ key: 'here', exists: true }, { key: 'gone', exists: false }]), true);
      assert.equal(await t([{ key: 'here', exists: true }, { key: 'gone', exists: true }]), false);
      assert.equal(await t([{ key: 'gone', value: null }]), false, 'an absent key does not equal the value null');
      assert.equal(await t([{ key: 'here', value: null }]), true);
      // create-if-absent
      const once = { checks: [{ key: 'lock', exists: false }], then: [{ op: 'put', key: 'lock', value: 'mine' }], else: [] };
      assert.deepEqual(expectOk(await tx(obj, once)), { succeeded: true });
      assert.deepEqual(expectOk(await tx(obj, once)), { succeeded: false });
    });

    it('value checks use deep JSON equality (1 == 1.0, object key order ignored, arrays ordered)', async () => {
      const obj = await newId(srv, ns, 'tx3');
      expectOk(await srv.api('POST', `${objPath(srv, ns, obj)}/storage/put`, {
        body: '{"entries":{"v":{"a":1,"b":[1.0,2.50,{"c":"x","d":null}],"e":1e2}}}', headers: { 'content-type': 'application/json' },
      }));
      const run = async (checkValueText) => {
        const r = expectOk(await txRaw(obj, `{"checks":[{"key":"v","value":${checkValueText}}],"then":[],"else":[]}`));
        return r.succeeded;
      };
      assert.equal(await run('{"e":100,"b":[1,2.5,{"d":null,"c":"x"}],"a":1.0}'), true);
      assert.equal(await run('{ "a" : 1 , "b" : [ 1 , 2.5 , { "c" : "x" , "d" : null } ] , "e" : 100.0 }'), true);
      assert.equal(await run('{"a":1,"b":[2.5,1,{"c":"x","d":null}],"e":100}'), false, 'array order matters');
      assert.equal(await run('{"a":1,"b":[1,2.5,{"c":"x"}],"e":100}'), false, 'missing member');
      assert.equal(await run('{"a":1,"b":[1,2.5,{"c":"x","d":null,"f":0}],"e":100}'), false, 'extra member');
      assert.equal(await run('{"a":"1","b":[1,2.5,{"c":"x","d":null}],"e":100}'), false, '"1" != 1');
      assert.equal(await run('{"a":true,"b":[1,2.5,{"c":"x","d":null}],"e":100}'), false, 'true != 1');
      assert.equal(await run('{"a":1,"b":[1,2.5,{"c":"x","d":false}],"e":100}'), false, 'false != null');
    });

    it('a then-branch is atomic: a refused op (too large) applies nothing', async () => {
      const kobj = await newId(srv, kvns, 'tx-atomic');
      expectOk(await storage(srv, kvns, kobj, 'put', { entries: { a: 1 } }));
      const r = await storage(srv, kvns, kobj, 'transaction', {
        checks: [{ key: 'a', value: 1 }],
        then: [{ op: 'put', key: 'a', value: 2 }, { op: 'put', key: 'huge', value: 'x'.repeat(140000) }],
      });
      expectError(r, 413, 10071, valueTooLarge(140002));
      assert.deepEqual(expectOk(await storage(srv, kvns, kobj, 'get', { keys: ['a', 'huge'] })), { a: 1 });
    });

    it('malformed transactions are 400/10073', async () => {
      const obj = await newId(srv, ns, 'tx4');
      const bad = [
        { checks: 'no' },
        { checks: [{ value: 1 }], then: [] },
        { checks: [{ key: 'a' }], then: [] },
        { checks: [], then: [{ op: 'increment', key: 'a' }] },
        { checks: [], then: [{ op: 'put', value: 1 }] },
        { checks: [], then: [{ op: 'put', key: 'a' }] },
        { checks: [{ key: 'a', exists: 'yes' }], then: [] },
        { checks: [], then: {} },
      ];
      for (const b of bad) {
        const r = await tx(obj, b);
        assert.equal(r.status, 400, `${JSON.stringify(b)} -> ${r.status} ${r.text}`);
        expectError(r, 400, 10073);
      }
      assert.deepEqual(expectOk(await list(srv, ns, obj)), []);
    });
  });

  describe('limits', () => {
    it('KV-backed: key ≤ 2048 bytes (400/10070), value JSON ≤ 131072 bytes (413/10071)', async () => {
      const obj = await newId(srv, kvns, 'limits');
      const k2048 = 'é'.repeat(1024);
      const k2049 = `x${k2048}`;
      expectOk(await storage(srv, kvns, obj, 'put', { entries: { [k2048]: 1 } }));
      assert.deepEqual(expectOk(await storage(srv, kvns, obj, 'get', { keys: [k2048] })), { [k2048]: 1 });
      expectError(await storage(srv, kvns, obj, 'put', { entries: { [k2049]: 1 } }), 400, 10070, keyTooLarge(2049));
      expectError(await storage(srv, kvns, obj, 'get', { keys: [k2049] }), 400, 10070, keyTooLarge(2049));
      expectError(await storage(srv, kvns, obj, 'put', { entries: { ok: 1, [k2049]: 2 } }), 400, 10070, keyTooLarge(2049));
      assert.deepEqual(expectOk(await storage(srv, kvns, obj, 'get', { keys: ['ok'] })), {}, 'a refused put applies nothing');

      const s131070 = 'v'.repeat(131070); // JSON "..." = 131072 bytes
      expectOk(await storage(srv, kvns, obj, 'put', { entries: { max: s131070 } }));
      assert.equal(expectOk(await storage(srv, kvns, obj, 'get', { keys: ['max'] })).max, s131070);
      expectError(await storage(srv, kvns, obj, 'put', { entries: { over: `${s131070}v` } }), 413, 10071, valueTooLarge(131073));
      // multi-byte: 'é' is 2 bytes in the JSON text
      expectError(await storage(srv, kvns, obj, 'put', { entries: { over: 'é'.repeat(65536) } }), 413, 10071, valueTooLarge(131074));
      // escapes count as sent compactly: "\n" is 2 bytes of JSON text
      expectError(await storage(srv, kvns, obj, 'put', { entries: { over: '\n'.repeat(65536) } }), 413, 10071, valueTooLarge(131074));
      // sizes count the compact JSON text, not the request's whitespace
      const n = 65535; // [1,1,...] = 2n+1 = 131071 bytes
      const spaced = `{"entries":{"arr":[ ${Array(n).fill('1').join(' ,  ')} ]}}`;
      assert.ok(spaced.length > 131072 * 2);
      expectOk(await srv.api('POST', `${objPath(srv, kvns, obj)}/storage/put`, { body: spaced, headers: { 'content-type': 'application/json' } }));
      assert.equal(expectOk(await storage(srv, kvns, obj, 'get', { keys: ['arr'] })).arr.length, n);
      // 1,000,000-byte string: refused on KV-backed
      expectError(await storage(srv, kvns, obj, 'put', { entries: { mb: 'm'.repeat(1_000_000) } }), 413, 10071, valueTooLarge(1_000_002));
    });

    it('SQLite-backed: key + value ≤ 2,000,000 bytes; a 1 MB value and a 2049-byte key work', async () => {
      const obj = await newId(srv, ns, 'limits-sqlite');
      const mb = 'm'.repeat(1_000_000);
      expectOk(await storage(srv, ns, obj, 'put', { entries: { mb } }));
      assert.equal(expectOk(await storage(srv, ns, obj, 'get', { keys: ['mb'] })).mb, mb);
      const k3000 = 'k'.repeat(3000);
      expectOk(await storage(srv, ns, obj, 'put', { entries: { [k3000]: 1 } }));
      assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: [k3000] })), { [k3000]: 1 });
      // key "k" (1 byte) + JSON string of 1,999,999 bytes = 2,000,000
      expectOk(await storage(srv, ns, obj, 'put', { entries: { k: 's'.repeat(1_999_997) } }));
      assert.equal(expectOk(await storage(srv, ns, obj, 'get', { keys: ['k'] })).k.length, 1_999_997);
      const r = await storage(srv, ns, obj, 'put', { entries: { k: 's'.repeat(1_999_998) } });
      expectError(r, 413, 10071);
      const r2 = await storage(srv, ns, obj, 'put', { entries: { kk: 's'.repeat(1_999_997) } });
      expectError(r2, 413, 10071);
      assert.equal(expectOk(await storage(srv, ns, obj, 'get', { keys: ['k'] })).k.length, 1_999_997, 'the refused put changed nothing');
    });

    it('more than 128 keys per call: 400/10072 with the count; 128 is fine; zero keys 400/10073', async () => {
      const obj = await newId(srv, ns, 'limits-count');
      const keysN = (n) => Array.from({ length: n }, (_, i) => `k${i}`);
      const entriesN = (n) => Object.fromEntries(keysN(n).map((k) => [k, 1]));
      expectOk(await storage(srv, ns, obj, 'put', { entries: entriesN(128) }));
      assert.equal(Object.keys(expectOk(await storage(srv, ns, obj, 'get', { keys: keysN(128) }))).length, 128);
      expectError(await storage(srv, ns, obj, 'put', { entries: entriesN(129) }), 400, 10072, tooManyKeys(129));
      expectError(await storage(srv, ns, obj, 'get', { keys: keysN(129) }), 400, 10072, tooManyKeys(129));
      expectError(await storage(srv, ns, obj, 'delete', { keys: keysN(200) }), 400, 10072, tooManyKeys(200));
      assert.deepEqual(expectOk(await storage(srv, ns, obj, 'delete', { keys: keysN(128) })), { deleted: 128 });
      expectError(await storage(srv, ns, obj, 'put', { entries: {} }), 400, 10073);
      expectError(await storage(srv, ns, obj, 'get', { keys: [] }), 400, 10073);
      expectError(await storage(srv, ns, obj, 'delete', { keys: [] }), 400, 10073);
    });

    it('malformed storage bodies are 400/10073', async () => {
      const obj = await newId(srv, ns, 'malformed');
      const cases = [
        ['get', {}], ['get', { keys: 'a' }], ['get', { keys: [1] }], ['get', { keys: [null] }],
        ['put', {}], ['put', { entries: [] }], ['put', { entries: 'a' }],
        ['delete', {}], ['delete', { keys: {} }], ['delete', { keys: [['a']] }],
      ];
      for (const [op, json] of cases) {
        const r = await storage(srv, ns, obj, op, json);
        assert.equal(r.status, 400, `${op} ${JSON.stringify(json)} -> ${r.status} ${r.text}`);
        expectError(r, 400, 10073);
      }
      for (const op of ['get', 'put', 'delete', 'transaction']) {
        expectError(await srv.api('POST', `${objPath(srv, ns, obj)}/storage/${op}`, { body: '{"keys":[', headers: { 'content-type': 'application/json' } }), 400, 10073);
        expectError(await srv.api('POST', `${objPath(srv, ns, obj)}/storage/${op}`, {}), 400, 10073);
      }
      for (const bad of ['{"scheduledTime":"soon"}', '{"scheduledTime":-1}', '{"scheduledTime":1.5}', '{}', 'x']) {
        expectError(await srv.api('PUT', `${objPath(srv, ns, obj)}/alarm`, { body: bad, headers: { 'content-type': 'application/json' } }), 400, 10073);
      }
      assert.deepEqual(expectOk(await srv.api('GET', `${objPath(srv, ns, obj)}/alarm`)), { scheduledTime: null });
    });
  });
});

describe('durable objects: permissions', T, () => {
  let srv;
  let ns;
  let obj;
  let tokens;
  before(async () => {
    srv = await startServer();
    ns = (await createNs(srv)).id;
    obj = await newId(srv, ns, 'perm');
    expectOk(await storage(srv, ns, obj, 'put', { entries: { a: 1 } }));
    tokens = {
      kv: (await createToken(srv, ['kv:read', 'kv:write'])).value,
      read: (await createToken(srv, ['do:read'])).value,
      write: (await createToken(srv, ['do:write'])).value,
      groupRead: (await createToken(srv, ['Workers Scripts Read'])).value,
      groupWrite: (await createToken(srv, ['Workers Scripts Write'])).value,
    };
  });
  after(async () => { await srv?.stop(); });

  const root = () => nsRoot(srv);
  const o = () => objPath(srv, ns, obj);
  const reads = () => [
    ['GET', root()], ['GET', `${root()}/${ns}`], ['GET', `${root()}/${ns}/objects`],
    ['POST', `${root()}/${ns}/objects/ids`, { name: 'x' }],
    ['POST', `${o()}/storage/get`, { keys: ['a'] }], ['GET', `${o()}/storage/list`], ['GET', `${o()}/alarm`],
  ];
  let n = 0;
  const writes = () => [
    ['POST', root(), { name: `perm-${hex32()}-${n++}`, class: 'C' }],
    ['PUT', `${root()}/${ns}`, { class: 'C2' }],
    ['POST', `${o()}/storage/put`, { entries: { b: 2 } }],
    ['POST', `${o()}/storage/delete`, { keys: ['zz'] }],
    ['POST', `${o()}/storage/transaction`, { checks: [], then: [{ op: 'put', key: 'c', value: 3 }] }],
    ['PUT', `${o()}/alarm`, { scheduledTime: Date.now() + 3600e3 }],
    ['DELETE', `${o()}/alarm`],
    ['POST', `${o()}/storage/deleteAll`, {}],
    ['GET', `${o()}/fetch/x`],
  ];
  const call = (tok, [m, p, json]) => srv.api(m, p, { json, ...bearer(tok) });

  it('a token with only KV permissions gets 403/10000 on every DO route', async () => {
    for (const rt of [...reads(), ...writes(), ['DELETE', `${root()}/${ns}`]]) {
      expectError(await call(tokens.kv, rt), 403, 10000);
    }
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['a', 'b', 'c'] })), { a: 1 }, 'nothing was written');
  });

  it('do:read ("Workers Scripts Read") reads; every write is 403/10000', async () => {
    for (const tok of [tokens.read, tokens.groupRead]) {
      for (const rt of reads()) expectOk(await call(tok, rt));
      for (const rt of [...writes(), ['DELETE', `${root()}/${ns}`]]) {
        const r = await call(tok, rt);
        assert.equal(r.status, 403, `${rt[0]} ${rt[1]} with do:read: ${r.status} ${r.text}`);
        expectError(r, 403, 10000);
      }
    }
    assert.deepEqual(expectOk(await storage(srv, ns, obj, 'get', { keys: ['a', 'b', 'c'] })), { a: 1 }, 'nothing was written');
    expectOk(await srv.api('GET', `${root()}/${ns}`));
  });

  it('do:write ("Workers Scripts Write") reads and writes; admin does everything', async () => {
    for (const tok of [tokens.write, tokens.groupWrite, srv.token]) {
      for (const rt of reads()) expectOk(await call(tok, rt));
      for (const rt of writes()) {
        const r = await call(tok, rt);
        if (rt[1].endsWith('/fetch/x')) expectError(r, 400, 10075); // permitted, but the namespace has no script
        else expectOk(r);
      }
    }
    const extra = await createNs(srv);
    expectOk(await call(tokens.write, ['DELETE', `${root()}/${extra.id}`]));
  });
});
