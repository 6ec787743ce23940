// The official `cloudflare` npm SDK (pinned in package.json) against a real edgekv binary:
// the two Durable Objects methods it has, with auto-pagination across pages:
//   client.durableObjects.namespaces.list({account_id, per_page})           V4PagePaginationArray
//   client.durableObjects.namespaces.objects.list(nsId, {account_id, limit}) CursorPaginationAfter
// (the second reads result_info.cursors.after: a server sending only `cursor` stops after page 1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { startServer, hex32 } from '../integration/lib/harness.mjs';
import { nsRoot, createNs, newId, storage } from '../integration/lib/do_api.mjs';
import { makeTracer } from './lib/trace.mjs';

let srv;
let cf;
let account_id;
const tracer = makeTracer();
const t = (name, fn) => test(name, () => tracer.traced(fn));
const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

before(async () => {
  srv = await startServer();
  account_id = srv.accountId;
  cf = new Cloudflare({ apiToken: srv.token, baseURL: srv.base, maxRetries: 0, timeout: 30_000, fetch: tracer.fetch });
});

after(async () => {
  if (srv) await srv.stop();
});

t('durableObjects.namespaces.list auto-paginates: 25 namespaces with per_page 10', async () => {
  const made = [];
  for (let i = 0; i < 25; i++) {
    made.push(await createNs(srv, { name: `sdk-${String(i).padStart(2, '0')}-${hex32().slice(0, 6)}`, class: 'Sdk', ...(i % 5 === 0 ? { script: 'http://127.0.0.1:9/s', use_sqlite: false } : {}) }));
  }
  made.sort((a, b) => byteOrder(a.name, b.name));
  const listed = [];
  for await (const ns of cf.durableObjects.namespaces.list({ account_id, per_page: 10 })) listed.push(ns);
  assert.equal(listed.length, 25, `listed ${listed.length}`);
  assert.deepEqual(listed, made);

  const first = await cf.durableObjects.namespaces.list({ account_id, per_page: 10 });
  assert.equal(first.result.length, 10);
  assert.ok(first.hasNextPage());
  const pages = [];
  for await (const page of first.iterPages()) pages.push(page.result.length);
  assert.deepEqual(pages.filter((n) => n > 0), [10, 10, 5]);
  // the raw call shows the page-style result_info
  const raw = await srv.api('GET', `${nsRoot(srv)}?per_page=10&page=3`);
  assert.deepEqual(raw.body.result_info, { page: 3, per_page: 10, count: 5, total_count: 25, total_pages: 3 });
});

t('durableObjects.namespaces.objects.list auto-paginates: 25 objects with limit 10', async () => {
  const ns = (await createNs(srv, { name: `sdk-objects-${hex32()}`, class: 'Sdk' })).id;
  const ids = [];
  for (let i = 0; i < 25; i++) {
    const id = await newId(srv, ns, `o-${i}`);
    ids.push(id);
    const r = await storage(srv, ns, id, 'put', { entries: { i } });
    assert.equal(r.status, 200, r.text);
  }
  // an id without data is not listed
  await newId(srv, ns, 'no-data');
  ids.sort();
  const listed = [];
  for await (const o of cf.durableObjects.namespaces.objects.list(ns, { account_id, limit: 10 })) listed.push(o);
  assert.equal(listed.length, 25, `listed ${listed.length} (SDK 7 follows result_info.cursors.after)`);
  assert.deepEqual(listed, ids.map((id) => ({ id, hasStoredData: true })));

  const first = await cf.durableObjects.namespaces.objects.list(ns, { account_id, limit: 10 });
  assert.equal(first.result.length, 10);
  const pages = [];
  for await (const page of first.iterPages()) pages.push(page.result.length);
  assert.deepEqual(pages, [10, 10, 5]);

  // errors map to the SDK's classes
  let err;
  try { await cf.durableObjects.namespaces.objects.list(hex32(), { account_id, limit: 10 }); } catch (e) { err = e; }
  assert.ok(err instanceof Cloudflare.NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.errors?.[0]?.code, 10066);
  err = null;
  try { await cf.durableObjects.namespaces.objects.list(ns, { account_id, limit: 5 }); } catch (e) { err = e; }
  assert.ok(err instanceof Cloudflare.BadRequestError, `got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.errors?.[0]?.code, 10074);
});
