// The official `cloudflare` npm SDK (pinned in package.json) against a real edgekv binary.
// Every Workers KV method of SDK 7.x, its auto-paginators, and its error classes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Cloudflare, { toFile } from 'cloudflare';
import { startServer, hex32 } from '../integration/lib/harness.mjs';
import { makeTracer } from './lib/trace.mjs';

let srv;
let cf;
let account_id;
const tracer = makeTracer();
const t = (name, fn) => test(name, () => tracer.traced(fn));

before(async () => {
  srv = await startServer();
  account_id = srv.accountId;
  cf = new Cloudflare({ apiToken: srv.token, baseURL: srv.base, maxRetries: 0, timeout: 30_000, fetch: tracer.fetch });
});

after(async () => {
  if (srv) await srv.stop();
});

const uniq = (p) => `${p}-${hex32().slice(0, 10)}`;
const bytesOf = async (res) => Buffer.from(await res.arrayBuffer());
const now = () => Math.floor(Date.now() / 1000);
// An expiration computed by the server from a TTL, given the client clock before/after the call.
const assertAround = (v, lo, hi, what) => assert.ok(Number.isInteger(v) && v >= lo - 1 && v <= hi + 1, `${what}: ${v} not in [${lo}, ${hi}]`);
const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function newNs(prefix = 'sdk') {
  const ns = await cf.kv.namespaces.create({ account_id, title: uniq(prefix) });
  return ns.id;
}

async function expectApiError(promise, Klass, status, code) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${Klass.name}, but the call succeeded`);
  assert.ok(err instanceof Klass, `expected ${Klass.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status);
  assert.ok(Array.isArray(err.errors) && err.errors.length >= 1, `errors array: ${JSON.stringify(err.errors)}`);
  assert.equal(err.errors[0].code, code, `errors: ${JSON.stringify(err.errors)}`);
  assert.equal(typeof err.errors[0].message, 'string');
  return err;
}

// ---------------------------------------------------------------------------------------
// Namespaces

t('namespaces: create / get / list / update / delete', async () => {
  const title = uniq('crud');
  const created = await cf.kv.namespaces.create({ account_id, title });
  assert.match(created.id, /^[0-9a-f]{32}$/);
  assert.equal(created.title, title);
  assert.equal(created.supports_url_encoding, true);

  const got = await cf.kv.namespaces.get(created.id, { account_id });
  assert.deepEqual(got, created);

  const listed = [];
  for await (const ns of cf.kv.namespaces.list({ account_id, per_page: 100 })) listed.push(ns);
  assert.deepEqual(listed.filter((n) => n.id === created.id), [created]);

  const renamed = await cf.kv.namespaces.update(created.id, { account_id, title: `${title}-renamed` });
  assert.equal(renamed.id, created.id);
  assert.equal(renamed.title, `${title}-renamed`);
  assert.equal((await cf.kv.namespaces.get(created.id, { account_id })).title, `${title}-renamed`);

  const del = await cf.kv.namespaces.delete(created.id, { account_id });
  assert.ok(del === null || (typeof del === 'object' && Object.keys(del).length === 0), `delete result ${JSON.stringify(del)}`);
  await expectApiError(cf.kv.namespaces.get(created.id, { account_id }), Cloudflare.NotFoundError, 404, 10013);
  await expectApiError(cf.kv.namespaces.delete(created.id, { account_id }), Cloudflare.NotFoundError, 404, 10013);
});

t('namespaces: duplicate title -> BadRequestError 10014 (create and rename)', async () => {
  const title = uniq('dup');
  const a = await cf.kv.namespaces.create({ account_id, title });
  const err = await expectApiError(cf.kv.namespaces.create({ account_id, title }), Cloudflare.BadRequestError, 400, 10014);
  assert.equal(err.errors[0].message, 'a namespace with this account ID and title already exists');
  const b = await cf.kv.namespaces.create({ account_id, title: `${title}-b` });
  await expectApiError(cf.kv.namespaces.update(b.id, { account_id, title }), Cloudflare.BadRequestError, 400, 10014);
  // Renaming to its own current title is not a conflict with another namespace.
  assert.equal((await cf.kv.namespaces.get(a.id, { account_id })).title, title);
  await cf.kv.namespaces.delete(a.id, { account_id });
  await cf.kv.namespaces.delete(b.id, { account_id });
});

t('namespaces: auto-pagination over 45 namespaces with per_page 10', async () => {
  const prefix = uniq('page');
  const ids = new Map();
  for (let i = 0; i < 45; i++) {
    const title = `${prefix}-${String(i).padStart(2, '0')}`;
    const ns = await cf.kv.namespaces.create({ account_id, title });
    ids.set(ns.id, title);
  }

  // Item iteration: every namespace exactly once.
  const seen = new Map();
  let total = 0;
  for await (const ns of cf.kv.namespaces.list({ account_id, per_page: 10 })) {
    total++;
    if (!ids.has(ns.id)) continue;
    assert.ok(!seen.has(ns.id), `namespace ${ns.id} seen twice`);
    assert.equal(ns.title, ids.get(ns.id));
    seen.set(ns.id, ns.title);
  }
  assert.equal(seen.size, 45);

  // Page iteration: page sizes and result_info are consistent.
  const first = await cf.kv.namespaces.list({ account_id, per_page: 10 });
  assert.equal(first.result_info.page, 1);
  assert.equal(first.result_info.per_page, 10);
  assert.equal(first.result_info.count, 10);
  assert.equal(first.result_info.total_count, total);
  assert.equal(first.result_info.total_pages, Math.ceil(total / 10));
  let pages = 0;
  let items = 0;
  for await (const page of first.iterPages()) {
    pages++;
    assert.ok(page.result.length <= 10);
    items += page.result.length;
  }
  assert.equal(items, total);
  assert.ok(pages >= Math.ceil(total / 10));

  // Ordered by title, descending, across pages.
  const titles = [];
  for await (const ns of cf.kv.namespaces.list({ account_id, per_page: 10, order: 'title', direction: 'desc' })) {
    if (ids.has(ns.id)) titles.push(ns.title);
  }
  assert.deepEqual(titles, [...ids.values()].sort(byteOrder).reverse());

  // A page past the end is an empty 200 page.
  const past = await cf.kv.namespaces.list({ account_id, per_page: 10, page: 1000 });
  assert.deepEqual(past.result, []);
  assert.equal(past.hasNextPage(), false);

  for (const id of ids.keys()) await cf.kv.namespaces.delete(id, { account_id });
});

// ---------------------------------------------------------------------------------------
// Values and metadata

t('values: string value round trip, content-type, overwrite, delete', async () => {
  const namespace_id = await newNs();
  const key = 'greeting';
  const r = await cf.kv.namespaces.values.update(key, { account_id, namespace_id, value: 'hello, edgekv' });
  await cf.kv.namespaces.values.update('unicode', { account_id, namespace_id, value: 'ünïcödé ✓ 日本語' });
  assert.equal((await bytesOf(await cf.kv.namespaces.values.get('unicode', { account_id, namespace_id }))).toString('utf8'), 'ünïcödé ✓ 日本語');
  assert.ok(r === null || (typeof r === 'object' && Object.keys(r).length === 0), `update result ${JSON.stringify(r)}`);

  const res = await cf.kv.namespaces.values.get(key, { account_id, namespace_id });
  assert.ok(res instanceof Response);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  assert.equal(res.headers.get('expiration'), null);
  assert.equal((await bytesOf(res)).toString('utf8'), 'hello, edgekv');

  // No metadata given -> metadata is null.
  assert.equal(await cf.kv.namespaces.metadata.get(key, { account_id, namespace_id }), null);

  await cf.kv.namespaces.values.update(key, { account_id, namespace_id, value: 'second' });
  assert.equal((await bytesOf(await cf.kv.namespaces.values.get(key, { account_id, namespace_id }))).toString(), 'second');

  const d = await cf.kv.namespaces.values.delete(key, { account_id, namespace_id });
  assert.ok(d === null || (typeof d === 'object' && Object.keys(d).length === 0), `delete result ${JSON.stringify(d)}`);
  await expectApiError(cf.kv.namespaces.values.get(key, { account_id, namespace_id }), Cloudflare.NotFoundError, 404, 10009);
  // Deleting a missing key succeeds.
  await cf.kv.namespaces.values.delete(key, { account_id, namespace_id });
});

t('values: binary value as File / toFile / Blob-backed file, bytes equal', async () => {
  const namespace_id = await newNs();
  const bin = randomBytes(70_000);
  bin[0] = 0; bin[1] = 0xff; bin[2] = 0x0d; bin[3] = 0x0a; // NUL, 0xFF, CRLF in the payload

  // 1) toFile() (works on every Node the SDK supports)
  await cf.kv.namespaces.values.update('bin/tofile', {
    account_id, namespace_id, value: await toFile(bin, 'blob.bin', { type: 'application/octet-stream' }),
  });
  assert.ok((await bytesOf(await cf.kv.namespaces.values.get('bin/tofile', { account_id, namespace_id }))).equals(bin));

  // 2) a File built from a Blob (global File exists on Node >= 20)
  if (typeof File === 'function') {
    const blob = new Blob([bin]);
    await cf.kv.namespaces.values.update('bin/file', { account_id, namespace_id, value: new File([blob], 'v.bin') });
    assert.ok((await bytesOf(await cf.kv.namespaces.values.get('bin/file', { account_id, namespace_id }))).equals(bin));
  }

  // 3) empty value
  await cf.kv.namespaces.values.update('empty', { account_id, namespace_id, value: await toFile(Buffer.alloc(0), 'e') });
  assert.equal((await bytesOf(await cf.kv.namespaces.values.get('empty', { account_id, namespace_id }))).length, 0);
});

t('values: metadata object (SDK-7 bracket fields), JSON-string metadata, keys.list shows it', async () => {
  const namespace_id = await newNs();
  const meta = { owner: 'alice', tags: ['x', 'y'], nested: { level: 'two', deeper: { leaf: 'ok' } } };
  await cf.kv.namespaces.values.update('with-meta', { account_id, namespace_id, value: 'v1', metadata: meta });
  assert.deepEqual(await cf.kv.namespaces.metadata.get('with-meta', { account_id, namespace_id }), meta);
  assert.equal((await bytesOf(await cf.kv.namespaces.values.get('with-meta', { account_id, namespace_id }))).toString(), 'v1');

  // Non-string leaves in an object travel as form text, rebuilt as strings (docs/API.md).
  await cf.kv.namespaces.values.update('num-meta', { account_id, namespace_id, value: 'v2', metadata: { n: 5, ok: true } });
  assert.deepEqual(await cf.kv.namespaces.metadata.get('num-meta', { account_id, namespace_id }), { n: '5', ok: 'true' });

  // A string is sent verbatim as the `metadata` part: JSON types survive.
  const typed = { n: 5, ok: true, list: [1, 'two', null], obj: { pi: 3.5 } };
  await cf.kv.namespaces.values.update('json-meta', { account_id, namespace_id, value: 'v3', metadata: JSON.stringify(typed) });
  assert.deepEqual(await cf.kv.namespaces.metadata.get('json-meta', { account_id, namespace_id }), typed);

  // An empty metadata object sends no metadata field at all -> null.
  await cf.kv.namespaces.values.update('empty-meta', { account_id, namespace_id, value: 'v5', metadata: {} });
  assert.equal(await cf.kv.namespaces.metadata.get('empty-meta', { account_id, namespace_id }), null);
  await cf.kv.namespaces.values.delete('empty-meta', { account_id, namespace_id });

  // Overwriting without metadata clears it.
  await cf.kv.namespaces.values.update('json-meta', { account_id, namespace_id, value: 'v4' });
  assert.equal(await cf.kv.namespaces.metadata.get('json-meta', { account_id, namespace_id }), null);

  const keys = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id })) keys.push(k);
  assert.deepEqual(keys, [
    { name: 'json-meta' },
    { name: 'num-meta', metadata: { n: '5', ok: 'true' } },
    { name: 'with-meta', metadata: meta },
  ]);

  await expectApiError(cf.kv.namespaces.metadata.get('nope', { account_id, namespace_id }), Cloudflare.NotFoundError, 404, 10009);
});

t('values: 3 MiB value and multipart-boundary-like content survive the SDK multipart body', async () => {
  const namespace_id = await newNs();
  const big = randomBytes(3 * 1024 * 1024);
  await cf.kv.namespaces.values.update('big', { account_id, namespace_id, value: await toFile(big, 'big.bin') });
  assert.ok((await bytesOf(await cf.kv.namespaces.values.get('big', { account_id, namespace_id }))).equals(big));

  const tricky = '\r\n------formdata-undici-000000000000\r\nContent-Disposition: form-data; name="value"\r\n\r\nfake\r\n--\r\n';
  await cf.kv.namespaces.values.update('tricky', { account_id, namespace_id, value: tricky, metadata: { note: 'a\r\nb' } });
  assert.equal((await bytesOf(await cf.kv.namespaces.values.get('tricky', { account_id, namespace_id }))).toString(), tricky);
  assert.deepEqual(await cf.kv.namespaces.metadata.get('tricky', { account_id, namespace_id }), { note: 'a\r\nb' });
});

t('values: expiration_ttl and expiration are stored and reported', async () => {
  const namespace_id = await newNs();
  const t0 = now();
  await cf.kv.namespaces.values.update('ttl', { account_id, namespace_id, value: 'short-lived', expiration_ttl: 120, metadata: { why: 'ttl' } });
  const res = await cf.kv.namespaces.values.get('ttl', { account_id, namespace_id });
  const exp = Number(res.headers.get('expiration'));
  assert.ok(exp >= t0 + 120 - 2 && exp <= now() + 120 + 2, `expiration header ${res.headers.get('expiration')} vs now ${t0}`);
  assert.equal((await bytesOf(res)).toString(), 'short-lived');
  assert.deepEqual(await cf.kv.namespaces.metadata.get('ttl', { account_id, namespace_id }), { why: 'ttl' });

  const abs = now() + 3600;
  await cf.kv.namespaces.values.update('abs', { account_id, namespace_id, value: 'x', expiration: abs });
  // TTL wins over expiration when both are given.
  await cf.kv.namespaces.values.update('both', { account_id, namespace_id, value: 'y', expiration: abs, expiration_ttl: 300 });

  const keys = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id })) keys.push(k);
  assert.deepEqual(keys.map((k) => k.name), ['abs', 'both', 'ttl']);
  assert.equal(keys[0].expiration, abs);
  assertAround(keys[1].expiration, t0 + 300, now() + 300, 'both');
  assert.equal(keys[2].expiration, exp);
  assert.deepEqual(keys[2].metadata, { why: 'ttl' });

  // Too small a TTL is rejected with 10034.
  await expectApiError(
    cf.kv.namespaces.values.update('bad', { account_id, namespace_id, value: 'z', expiration_ttl: 30 }),
    Cloudflare.BadRequestError, 400, 10034);
});

t('values: special key names round-trip through the SDK path encoding', async () => {
  const namespace_id = await newNs();
  const names = ['dir/sub/file.txt', 'with space', 'q?x=1&y=2#frag', 'pct%20lit', 'ünïcödé-✓', 'colon:bang!', 'plus+sign'];
  for (const name of names) {
    await cf.kv.namespaces.values.update(name, { account_id, namespace_id, value: `v:${name}` });
  }
  for (const name of names) {
    const v = await bytesOf(await cf.kv.namespaces.values.get(name, { account_id, namespace_id }));
    assert.equal(v.toString('utf8'), `v:${name}`, `value of ${JSON.stringify(name)}`);
  }
  const listed = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id })) listed.push(k.name);
  assert.deepEqual(listed, [...names].sort(byteOrder));
  for (const name of names) await cf.kv.namespaces.values.delete(name, { account_id, namespace_id });
  const after = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id })) after.push(k.name);
  assert.deepEqual(after, []);
});

t('values: 200 concurrent SDK writes then reads (keep-alive connection pool)', async () => {
  const namespace_id = await newNs();
  const keys = Array.from({ length: 200 }, (_, i) => `c/${String(i).padStart(3, '0')}`);
  await Promise.all(keys.map((key, i) => cf.kv.namespaces.values.update(key, {
    account_id, namespace_id, value: `value ${i} ${'x'.repeat(i * 50)}`, ...(i % 3 === 0 ? { metadata: { i: String(i) } } : {}),
  })));
  const got = await Promise.all(keys.map(async (key) => (await bytesOf(await cf.kv.namespaces.values.get(key, { account_id, namespace_id }))).toString()));
  got.forEach((v, i) => assert.equal(v, `value ${i} ${'x'.repeat(i * 50)}`));
  const listed = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, limit: 50 })) listed.push(k);
  assert.deepEqual(listed.map((k) => k.name), keys);
  listed.forEach((k, i) => assert.deepEqual(k.metadata, i % 3 === 0 ? { i: String(i) } : undefined));
});

// ---------------------------------------------------------------------------------------
// Keys listing

t('keys.list: auto-pagination over 2,600 keys (limit 1000) and with prefix', async () => {
  const namespace_id = await newNs();
  const main = Array.from({ length: 2600 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
  const other = Array.from({ length: 35 }, (_, i) => `p/${String(i).padStart(3, '0')}`);
  const all = [...main, ...other];
  for (let i = 0; i < all.length; i += 1000) {
    const chunk = all.slice(i, i + 1000).map((key) => ({ key, value: `val-${key}` }));
    const r = await cf.kv.namespaces.bulkUpdate(namespace_id, { account_id, body: chunk });
    assert.deepEqual(r, { successful_key_count: chunk.length, unsuccessful_keys: [] });
  }

  const names = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, limit: 1000 })) names.push(k.name);
  assert.equal(names.length, all.length);
  assert.equal(new Set(names).size, all.length, 'no key twice');
  assert.deepEqual(names, [...all].sort(byteOrder));

  // Page-level view: 1000 / 1000 / 635, cursor empty only on the last page.
  const first = await cf.kv.namespaces.keys.list(namespace_id, { account_id, limit: 1000 });
  const sizes = [];
  const cursors = [];
  for await (const page of first.iterPages()) {
    sizes.push(page.result.length);
    cursors.push(page.result_info.cursor);
    assert.equal(page.result_info.count, page.result.length);
  }
  assert.deepEqual(sizes, [1000, 1000, 635]);
  assert.ok(cursors[0] && cursors[1], 'non-empty cursors before the last page');
  assert.ok(!cursors[2], `last page cursor must be empty, got ${JSON.stringify(cursors[2])}`);

  // Prefix with a small limit: several pages, only matching keys, in order.
  const pnames = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, prefix: 'p/', limit: 10 })) pnames.push(k.name);
  assert.deepEqual(pnames, other);

  const k25 = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, prefix: 'k/0250' })) k25.push(k.name);
  assert.deepEqual(k25, main.filter((n) => n.startsWith('k/0250')));

  // Default limit is 1000.
  const dflt = await cf.kv.namespaces.keys.list(namespace_id, { account_id });
  assert.equal(dflt.result.length, 1000);

  // limit outside 10..1000 -> 10028
  await expectApiError(cf.kv.namespaces.keys.list(namespace_id, { account_id, limit: 5 }), Cloudflare.BadRequestError, 400, 10028);
  await expectApiError(cf.kv.namespaces.keys.list(namespace_id, { account_id, limit: 1001 }), Cloudflare.BadRequestError, 400, 10028);
});

// ---------------------------------------------------------------------------------------
// Bulk

t('bulkUpdate (incl. base64, metadata, expiration_ttl) / bulkGet (text, json, withMetadata) / bulkDelete', async () => {
  const namespace_id = await newNs();
  const bin = randomBytes(300);
  const t0 = now();
  const r = await cf.kv.namespaces.bulkUpdate(namespace_id, {
    account_id,
    body: [
      { key: 'plain', value: 'hello' },
      { key: 'b64', value: bin.toString('base64'), base64: true },
      { key: 'b64text', value: Buffer.from('decoded text').toString('base64'), base64: true },
      { key: 'json', value: JSON.stringify({ a: 1, b: [true, null] }) },
      { key: 'meta', value: 'm', metadata: { color: 'red', n: 3 } },
      { key: 'exp', value: 'e', expiration_ttl: 600 },
    ],
  });
  assert.deepEqual(r, { successful_key_count: 6, unsuccessful_keys: [] });

  assert.ok((await bytesOf(await cf.kv.namespaces.values.get('b64', { account_id, namespace_id }))).equals(bin));
  assert.equal((await bytesOf(await cf.kv.namespaces.values.get('b64text', { account_id, namespace_id }))).toString(), 'decoded text');
  assert.deepEqual(await cf.kv.namespaces.metadata.get('meta', { account_id, namespace_id }), { color: 'red', n: 3 });
  const expRes = await cf.kv.namespaces.values.get('exp', { account_id, namespace_id });
  const exp = Number(expRes.headers.get('expiration'));
  assertAround(exp, t0 + 600, now() + 600, 'exp header');

  // bulkGet, text (default) with a missing key
  const text = await cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: ['plain', 'b64text', 'json', 'missing'] });
  assert.deepEqual(text, { values: { plain: 'hello', b64text: 'decoded text', json: '{"a":1,"b":[true,null]}', missing: null } });

  const typed = await cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: ['plain', 'missing'], type: 'text' });
  assert.deepEqual(typed, { values: { plain: 'hello', missing: null } });

  // type json
  const json = await cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: ['json'], type: 'json' });
  assert.deepEqual(json, { values: { json: { a: 1, b: [true, null] } } });
  await expectApiError(cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: ['plain'], type: 'json' }), Cloudflare.BadRequestError, 400, 10029);

  // withMetadata
  const wm = await cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: ['meta', 'plain', 'exp', 'missing'], withMetadata: true });
  assert.deepEqual(wm, {
    values: {
      meta: { value: 'm', metadata: { color: 'red', n: 3 } },
      plain: { value: 'hello', metadata: null },
      exp: { value: 'e', metadata: null, expiration: exp },
      missing: null,
    },
  });
  const wmj = await cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: ['json'], type: 'json', withMetadata: true });
  assert.deepEqual(wmj, { values: { json: { value: { a: 1, b: [true, null] }, metadata: null } } });

  // > 100 keys -> 10029
  const many = Array.from({ length: 101 }, (_, i) => `x${i}`);
  await expectApiError(cf.kv.namespaces.bulkGet(namespace_id, { account_id, keys: many }), Cloudflare.BadRequestError, 400, 10029);

  // bulkDelete (POST /bulk/delete), including a key that does not exist
  const d = await cf.kv.namespaces.bulkDelete(namespace_id, { account_id, body: ['plain', 'b64', 'json', 'never-existed'] });
  assert.deepEqual(d, { successful_key_count: 4, unsuccessful_keys: [] });
  const left = [];
  for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id })) left.push(k.name);
  assert.deepEqual(left, ['b64text', 'exp', 'meta']);
  await expectApiError(cf.kv.namespaces.values.get('plain', { account_id, namespace_id }), Cloudflare.NotFoundError, 404, 10009);

  // Deprecated aliases on keys.* hit the same endpoints.
  const ra = await cf.kv.namespaces.keys.bulkUpdate(namespace_id, { account_id, body: [{ key: 'alias', value: 'A' }] });
  assert.deepEqual(ra, { successful_key_count: 1, unsuccessful_keys: [] });
  assert.deepEqual(await cf.kv.namespaces.keys.bulkGet(namespace_id, { account_id, keys: ['alias'] }), { values: { alias: 'A' } });
  assert.deepEqual(await cf.kv.namespaces.keys.bulkDelete(namespace_id, { account_id, body: ['alias'] }), { successful_key_count: 1, unsuccessful_keys: [] });
});

t('bulkUpdate: one invalid item fails the whole batch (documented choice)', async () => {
  const namespace_id = await newNs();
  await expectApiError(
    cf.kv.namespaces.bulkUpdate(namespace_id, { account_id, body: [{ key: 'good', value: 'g' }, { key: 'bad', value: '***', base64: true }] }),
    Cloudflare.BadRequestError, 400, 10012);
  await expectApiError(cf.kv.namespaces.values.get('good', { account_id, namespace_id }), Cloudflare.NotFoundError, 404, 10009);
});

// ---------------------------------------------------------------------------------------
// Error mapping

t('errors: SDK error classes, status codes and Cloudflare error codes', async () => {
  const namespace_id = await newNs();
  const err = await expectApiError(cf.kv.namespaces.values.get('missing-key', { account_id, namespace_id }), Cloudflare.NotFoundError, 404, 10009);
  assert.equal(err.errors[0].message, "get: 'key not found'");
  assert.ok(err instanceof Cloudflare.APIError);

  const unknownNs = hex32();
  await expectApiError(cf.kv.namespaces.values.get('k', { account_id, namespace_id: unknownNs }), Cloudflare.NotFoundError, 404, 10013);
  await expectApiError(cf.kv.namespaces.keys.list(unknownNs, { account_id }), Cloudflare.NotFoundError, 404, 10013);
  await expectApiError(cf.kv.namespaces.get('not-a-uuid', { account_id }), Cloudflare.BadRequestError, 400, 10011);

  // A token the server does not know -> 403 / 10000
  const bad = new Cloudflare({ apiToken: 'x'.repeat(40), baseURL: srv.base, maxRetries: 0, fetch: tracer.fetch });
  await expectApiError(bad.kv.namespaces.list({ account_id }), Cloudflare.PermissionDeniedError, 403, 10000);

  // Another account id with our token -> 403 / 10000
  await expectApiError(cf.kv.namespaces.list({ account_id: hex32() }), Cloudflare.PermissionDeniedError, 403, 10000);
});

t('auth: legacy X-Auth-Key/X-Auth-Email pair, and a read-only token (reads ok, writes 405)', async () => {
  const namespace_id = await newNs();
  await cf.kv.namespaces.values.update('k', { account_id, namespace_id, value: 'v' });

  const legacy = new Cloudflare({ apiKey: srv.token, apiEmail: 'ops@example.com', baseURL: srv.base, maxRetries: 0, fetch: tracer.fetch });
  assert.equal((await bytesOf(await legacy.kv.namespaces.values.get('k', { account_id, namespace_id }))).toString(), 'v');
  await legacy.kv.namespaces.values.update('k2', { account_id, namespace_id, value: 'v2' });

  const created = await srv.api('POST', `/accounts/${account_id}/tokens`, { json: { name: 'ro', permissions: ['kv:read'] } });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const ro = new Cloudflare({ apiToken: created.body.result.value, baseURL: srv.base, maxRetries: 0, fetch: tracer.fetch });
  assert.equal((await bytesOf(await ro.kv.namespaces.values.get('k2', { account_id, namespace_id }))).toString(), 'v2');
  const keys = [];
  for await (const k of ro.kv.namespaces.keys.list(namespace_id, { account_id })) keys.push(k.name);
  assert.deepEqual(keys, ['k', 'k2']);
  const err = await expectApiError(ro.kv.namespaces.values.update('k3', { account_id, namespace_id, value: 'x' }), Cloudflare.APIError, 405, 10000);
  assert.equal(err.errors[0].message, 'PUT method not allowed for the api_token authentication scheme');
  await expectApiError(ro.kv.namespaces.bulkDelete(namespace_id, { account_id, body: ['k'] }), Cloudflare.APIError, 405, 10000);
  await expectApiError(ro.kv.namespaces.create({ account_id, title: uniq('ro') }), Cloudflare.APIError, 405, 10000);
});

test('expiry: keys vanish from get / metadata / list / bulkGet once their TTL passes (test clock)', async () => {
  const clocked = await startServer({ testClock: true });
  const tr = makeTracer();
  try {
    await tr.traced(async () => {
      const c = new Cloudflare({ apiToken: clocked.token, baseURL: clocked.base, maxRetries: 0, fetch: tr.fetch });
      const acct = clocked.accountId;
      const { id: namespace_id } = await c.kv.namespaces.create({ account_id: acct, title: 'expiry' });
      await c.kv.namespaces.values.update('short', { account_id: acct, namespace_id, value: 's', expiration_ttl: 60, metadata: { m: '1' } });
      await c.kv.namespaces.bulkUpdate(namespace_id, { account_id: acct, body: [{ key: 'short-bulk', value: 'sb', expiration_ttl: 60 }, { key: 'long', value: 'l', expiration_ttl: 600 }, { key: 'forever', value: 'f' }] });
      const names = async () => { const out = []; for await (const k of c.kv.namespaces.keys.list(namespace_id, { account_id: acct })) out.push(k.name); return out; };
      assert.deepEqual(await names(), ['forever', 'long', 'short', 'short-bulk']);

      await clocked.advanceClock(61);
      await expectApiError(c.kv.namespaces.values.get('short', { account_id: acct, namespace_id }), Cloudflare.NotFoundError, 404, 10009);
      await expectApiError(c.kv.namespaces.metadata.get('short', { account_id: acct, namespace_id }), Cloudflare.NotFoundError, 404, 10009);
      assert.deepEqual(await names(), ['forever', 'long']);
      assert.deepEqual(await c.kv.namespaces.bulkGet(namespace_id, { account_id: acct, keys: ['short', 'short-bulk', 'long', 'forever'] }),
        { values: { short: null, 'short-bulk': null, long: 'l', forever: 'f' } });

      // Re-writing an expired key works and it is visible again.
      await c.kv.namespaces.values.update('short', { account_id: acct, namespace_id, value: 'again' });
      assert.equal((await bytesOf(await c.kv.namespaces.values.get('short', { account_id: acct, namespace_id }))).toString(), 'again');
      assert.equal(await c.kv.namespaces.metadata.get('short', { account_id: acct, namespace_id }), null);

      await clocked.advanceClock(600);
      assert.deepEqual(await names(), ['forever', 'short']);
    });
  } finally {
    await clocked.stop();
  }
});
