// Crash safety (acceptance): with the default sync policy, nothing acknowledged is lost when
// the server is SIGKILLed in the middle of a write load.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, expectOk, expectError, hex32, newToken, multipart, sleep, within } from './lib/harness.mjs';

const LOAD_MS = 2000; // write load before the kill
const HARD_STOP_MS = 8000; // no loop runs longer than this, whatever happens
const MAX_OPS_PER_LOOP = 20000;

const valueOf = (key, n = 0) => `value:${key}:${n}:${'x'.repeat(key.length % 50)}`;
const metaOf = (key, n = 0) => ({ key, n, tag: 'crash' });

describe('crash safety', { timeout: 120000 }, () => {
  const dirs = [];
  const servers = [];
  after(async () => {
    for (const s of servers) if (s.running) await s.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function runCycle(round, dataDir, accountId, token, ns, state) {
    const srv = await startServer({ dataDir, accountId, token });
    servers.push(srv);
    const p = srv.ns(ns);
    let stop = false;
    const deadline = Date.now() + HARD_STOP_MS;
    const running = () => !stop && Date.now() < deadline;

    // 8 single-key writers: PUT multipart value + metadata, unique keys
    const putLoop = async (w) => {
      for (let i = 0; i < MAX_OPS_PER_LOOP && running(); i++) {
        const key = `r${round}/w${w}/${i}`;
        const mp = multipart([{ name: 'value', data: valueOf(key) },
          { name: 'metadata', data: JSON.stringify(metaOf(key)) }]);
        try {
          const r = await srv.fetch('PUT', `${p}/values/${encodeURIComponent(key)}`,
            { body: mp.body, headers: { 'content-type': mp.contentType } });
          const body = await r.text();
          if (r.status === 200 && JSON.parse(body).success === true) state.acked.set(key, 0);
        } catch { /* killed mid-request: not acknowledged */ }
      }
    };
    // 2 bulk writers: 50 items per request, base64 for half of them
    const bulkLoop = async (w) => {
      for (let i = 0; i < MAX_OPS_PER_LOOP && running(); i++) {
        const items = [];
        for (let j = 0; j < 50; j++) {
          const key = `r${round}/b${w}/${i}/${j}`;
          const v = valueOf(key);
          items.push(j % 2
            ? { key, value: Buffer.from(v).toString('base64'), base64: true, metadata: metaOf(key) }
            : { key, value: v, metadata: metaOf(key) });
        }
        try {
          const r = await srv.fetch('PUT', `${p}/bulk`,
            { body: JSON.stringify(items), headers: { 'content-type': 'application/json' } });
          const body = await r.text();
          if (r.status === 200 && JSON.parse(body).result?.successful_key_count === 50) {
            for (const it of items) state.acked.set(it.key, 0);
          }
        } catch { /* not acknowledged */ }
      }
    };
    // 1 overwriter: the same few keys with increasing versions; after the crash each must hold
    // at least its last acknowledged version
    const overwriteLoop = async () => {
      for (let j = 1; j < MAX_OPS_PER_LOOP && running(); j++) {
        const i = (round + 1) * 1000000 + j; // versions grow across rounds too
        const key = `hot/${j % 5}`;
        const mp = multipart([{ name: 'value', data: valueOf(key, i) },
          { name: 'metadata', data: JSON.stringify(metaOf(key, i)) }]);
        try {
          const r = await srv.fetch('PUT', `${p}/values/${encodeURIComponent(key)}`,
            { body: mp.body, headers: { 'content-type': mp.contentType } });
          await r.text();
          if (r.status === 200) state.hot.set(key, Math.max(state.hot.get(key) || 0, i));
        } catch { /* not acknowledged */ }
      }
    };
    // 1 deleter: deletes keys acknowledged in earlier rounds (or in this one); an acknowledged
    // delete must stay deleted
    const deleteLoop = async () => {
      const candidates = [...state.acked.keys()].filter((k) => !k.startsWith(`r${round}/`)).slice(0, 2000);
      for (let i = 0; i < candidates.length && running(); i++) {
        const key = candidates[i];
        try {
          const r = await srv.fetch('DELETE', `${p}/values/${encodeURIComponent(key)}`);
          await r.text();
          if (r.status === 200) { state.acked.delete(key); state.deleted.add(key); }
        } catch { /* not acknowledged: the key may or may not exist */
          state.acked.delete(key); state.maybe.add(key);
        }
      }
    };

    const loops = [];
    for (let w = 0; w < 8; w++) loops.push(putLoop(w));
    for (let w = 0; w < 2; w++) loops.push(bulkLoop(w));
    loops.push(overwriteLoop());
    loops.push(deleteLoop());

    const ackedBefore = state.acked.size;
    await sleep(LOAD_MS);
    // make sure writes are really in flight at the kill
    const hadLoad = state.acked.size > ackedBefore;
    await srv.kill('SIGKILL');
    stop = true;
    await within(Promise.all(loops), HARD_STOP_MS + 2000);
    assert.ok(hadLoad, 'no write was acknowledged during the load phase');
    return srv;
  }

  async function verify(srv, ns, state) {
    const p = srv.ns(ns);
    const keys = [...state.acked.keys()];
    const missing = [];
    const wrong = [];
    // bulk get with metadata, 100 keys at a time, 4 requests in parallel
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next;
        next += 100;
        if (i >= keys.length) return;
        const batch = keys.slice(i, i + 100);
        const r = await srv.api('POST', `${p}/bulk/get`, { json: { keys: batch, withMetadata: true } });
        const res = expectOk(r);
        for (const k of batch) {
          const got = res.values[k];
          if (got === null || got === undefined) missing.push(k);
          else if (got.value !== valueOf(k) || JSON.stringify(got.metadata) !== JSON.stringify(metaOf(k))) {
            wrong.push({ k, got });
          }
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} of ${keys.length} acknowledged keys lost`);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} acknowledged keys have the wrong value/metadata`);

    // spot-check raw reads (exact bytes through the value route)
    for (const k of keys.filter((_, i) => i % Math.max(1, Math.floor(keys.length / 50)) === 0)) {
      const res = await srv.fetch('GET', `${p}/values/${encodeURIComponent(k)}`);
      assert.equal(res.status, 200, k);
      assert.equal(await res.text(), valueOf(k), k);
    }

    // overwritten keys hold at least their last acknowledged version
    for (const [k, v] of state.hot) {
      const m = await srv.api('GET', `${p}/metadata/${encodeURIComponent(k)}`);
      const meta = expectOk(m);
      assert.ok(meta.n >= v, `${k}: version ${meta.n} < last acknowledged ${v}`);
      const res = await srv.fetch('GET', `${p}/values/${encodeURIComponent(k)}`);
      assert.equal(await res.text(), valueOf(k, meta.n), `${k}: value and metadata from different writes`);
    }

    // acknowledged deletes stay deleted
    const del = [...state.deleted];
    for (let i = 0; i < del.length; i += 100) {
      const batch = del.slice(i, i + 100);
      const res = expectOk(await srv.api('POST', `${p}/bulk/get`, { json: { keys: batch } }));
      const back = batch.filter((k) => res.values[k] !== null);
      assert.deepEqual(back, [], 'acknowledged deletes came back');
    }

    // the list agrees with the reads: every acknowledged key is listed exactly once
    const listed = new Set();
    let cursor = '';
    for (let i = 0; i < 1000; i++) {
      const q = new URLSearchParams({ limit: '1000', ...(cursor ? { cursor } : {}) });
      const r = await srv.api('GET', `${p}/keys?${q}`);
      for (const it of expectOk(r)) {
        assert.ok(!listed.has(it.name), `listed twice: ${it.name}`);
        listed.add(it.name);
      }
      cursor = r.body.result_info.cursor;
      if (!cursor) break;
    }
    const unlisted = keys.filter((k) => !listed.has(k));
    assert.deepEqual(unlisted.slice(0, 20), [], `${unlisted.length} acknowledged keys not listed`);
    for (const k of del) assert.ok(!listed.has(k), `deleted key listed: ${k}`);
  }

  it('catalog and KV state survive a clean restart and a SIGKILL restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'edgekv-it-restart-'));
    dirs.push(dataDir);
    const accountId = hex32();
    const token = newToken();
    let srv = await startServer({ dataDir, accountId, token });
    servers.push(srv);
    const nsA = await srv.createNamespace('restart-a');
    const nsB = await srv.createNamespace('restart-b');
    const nsGone = await srv.createNamespace('restart-gone');
    expectOk(await srv.api('PUT', `/accounts/${accountId}/storage/kv/namespaces/${nsB}`, { json: { title: 'restart-b2' } }));
    expectOk(await srv.api('DELETE', `/accounts/${accountId}/storage/kv/namespaces/${nsGone}`));
    const mk = async (name, permissions) => expectOk(await srv.api('POST', `/accounts/${accountId}/tokens`,
      { json: { name, permissions } }));
    const ro = await mk('ro', ['kv:read']);
    const revoked = await mk('revoked', ['kv:read', 'kv:write']);
    expectOk(await srv.api('DELETE', `/accounts/${accountId}/tokens/${revoked.id}`));
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const mp = multipart([{ name: 'value', data: 'with-meta' }, { name: 'metadata', data: '{"x":[1,2]}' }]);
    expectOk(await srv.api('PUT', `${srv.ns(nsA)}/values/k1?expiration=${exp}`,
      { body: mp.body, headers: { 'content-type': mp.contentType } }));
    expectOk(await srv.api('PUT', `${srv.ns(nsA)}/values/deleted`, { body: 'x' }));
    expectOk(await srv.api('DELETE', `${srv.ns(nsA)}/values/deleted`));

    const check = async (s) => {
      const list = expectOk(await s.api('GET', `/accounts/${accountId}/storage/kv/namespaces?order=title`));
      assert.deepEqual(list.filter((n) => n.title.startsWith('restart-')).map((n) => [n.id, n.title]),
        [[nsA, 'restart-a'], [nsB, 'restart-b2']]);
      assert.ok(!list.some((n) => n.id === nsGone));
      expectError(await s.api('GET', `/accounts/${accountId}/storage/kv/namespaces/${nsGone}`), 404, 10013);
      const res = await s.fetch('GET', `${s.ns(nsA)}/values/k1`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'with-meta');
      assert.equal(res.headers.get('expiration'), String(exp));
      assert.deepEqual(expectOk(await s.api('GET', `${s.ns(nsA)}/metadata/k1`)), { x: [1, 2] });
      assert.deepEqual(expectOk(await s.api('GET', `${s.ns(nsA)}/keys`)),
        [{ name: 'k1', expiration: exp, metadata: { x: [1, 2] } }]);
      const roH = { auth: false, headers: { authorization: `Bearer ${ro.value}` } };
      expectOk(await s.api('GET', `${s.ns(nsA)}/keys`, roH));
      assert.equal((await s.api('PUT', `${s.ns(nsA)}/values/z`, { ...roH, body: 'z' })).status, 405);
      const rvH = { auth: false, headers: { authorization: `Bearer ${revoked.value}` } };
      assert.equal((await s.api('GET', `${s.ns(nsA)}/keys`, rvH)).status, 403);
      // titles in use stay taken
      expectError(await s.api('POST', `/accounts/${accountId}/storage/kv/namespaces`, { json: { title: 'restart-b2' } }),
        400, 10014);
    };

    assert.deepEqual(await srv.stop(), { code: 0, signal: null });
    srv = await startServer({ dataDir, accountId, token });
    servers.push(srv);
    await check(srv);
    await srv.kill('SIGKILL');
    srv = await startServer({ dataDir, accountId, token });
    servers.push(srv);
    await check(srv);
    // the deleted namespace's title and the renamed one's old title are free
    expectOk(await srv.api('POST', `/accounts/${accountId}/storage/kv/namespaces`, { json: { title: 'restart-gone' } }));
    expectOk(await srv.api('POST', `/accounts/${accountId}/storage/kv/namespaces`, { json: { title: 'restart-b' } }));
    await srv.stop();
  });

  it('every acknowledged write survives SIGKILL (two kill/restart rounds)', async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'edgekv-it-crash-'));
    dirs.push(dataDir);
    const accountId = hex32();
    const token = newToken();
    const state = { acked: new Map(), hot: new Map(), deleted: new Set(), maybe: new Set() };

    // the namespace itself is an acknowledged write
    const first = await startServer({ dataDir, accountId, token });
    servers.push(first);
    const ns = await first.createNamespace(`crash-${hex32()}`);
    await first.kill('SIGKILL');

    for (let round = 0; round < 2; round++) {
      await runCycle(round, dataDir, accountId, token, ns, state);
      const srv = await startServer({ dataDir, accountId, token });
      servers.push(srv);
      try {
        const nsObj = expectOk(await srv.api('GET', srv.ns(ns)));
        assert.equal(nsObj.id, ns);
        await verify(srv, ns, state);
      } finally {
        await srv.kill('SIGKILL');
      }
    }
    t.diagnostic(`acknowledged keys checked: ${state.acked.size}, acknowledged deletes: ${state.deleted.size}, `
      + `overwritten keys: ${state.hot.size}`);
    assert.ok(state.acked.size > 100, `only ${state.acked.size} writes were acknowledged`);
    assert.ok(state.deleted.size > 0, 'no delete was acknowledged');
  });
});
