// Edge role (stateless API nodes in front of a primary and its replicas), with real processes
// on loopback: 1 primary, 2 replicas (--repl-listen, they serve the edges), 3 edges. The edge
// interface: the full KV API through any edge, read-your-writes at the accepting edge, cache
// invalidation by the keys-only change stream within a bounded time, single-flight misses,
// degraded mode with the primary down, stream failover, and the cache TTL bounding staleness
// when invalidations cannot arrive. Helpers: lib/cluster.mjs (Cluster.startEdge).
//
// Every propagation delay is measured (t.diagnostic) and asserted under BOUND_MS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { startServer, expectOk, expectError, multipart, sleep, newToken, sha256 } from './lib/harness.mjs';
import {
  Cluster, status, metricsText, metricValue, waitStreaming, pause, resume,
} from './lib/cluster.mjs';

const BOUND_MS = 2000; // a change made anywhere is seen through every edge within this
const isInt = (v) => Number.isInteger(v);
const UNAVAILABLE = 'the primary is unavailable; writes are not accepted right now, retry later';
const NOT_SYNCED = 'this edge has not received the catalog from an upstream yet (see GET /_edgekv/replication/status)';

const EDGE_COUNTERS = {
  hits: 'edgekv_edge_cache_hits_total',
  misses: 'edgekv_edge_cache_misses_total',
  upstream_fetches: 'edgekv_edge_upstream_fetches_total',
  coalesced: 'edgekv_edge_coalesced_total',
  stale_served: 'edgekv_edge_stale_served_total',
  reads_forwarded: 'edgekv_edge_reads_forwarded_total',
  writes_forwarded: 'edgekv_edge_writes_forwarded_total',
  failovers: 'edgekv_edge_failovers_total',
  upstream_failures: 'edgekv_edge_upstream_failures_total',
  fetches_refused: 'edgekv_edge_fetches_refused_total',
  inflight: 'edgekv_edge_inflight_fetches',
  synced: 'edgekv_edge_synced',
};

// The edge counters from /metrics, as { hits, misses, ... }.
async function edgeMetrics(node) {
  const text = await metricsText(node);
  const out = {};
  for (const [k, name] of Object.entries(EDGE_COUNTERS)) {
    const v = metricValue(text, name);
    assert.ok(v !== undefined, `${node.nodeId}: /metrics has no ${name}`);
    out[k] = v;
  }
  return out;
}
const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));

// A value GET: { status, text, headers, body (parsed JSON or undefined) }.
async function getValue(node, ns, key, { query = '', headers } = {}) {
  const res = await node.fetch('GET', `${node.ns(ns)}/values/${encodeURIComponent(key)}${query}`,
    headers ? { auth: false, headers } : {});
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.status, text, headers: res.headers, body };
}
const describeGet = (node, key, g) => `${node.nodeId} GET ${key} -> ${g.status} ${g.text.slice(0, 200)}`;

// Assert a value GET answered `want` (a string), or 404/10009 when want is null.
function assertValue(node, key, g, want, what = '') {
  if (want === null) {
    assert.equal(g.status, 404, `${what}${describeGet(node, key, g)} (want 404)`);
    assert.equal(g.body?.errors?.[0]?.code, 10009, `${what}${describeGet(node, key, g)}`);
  } else {
    assert.equal(g.status, 200, `${what}${describeGet(node, key, g)} (want ${JSON.stringify(want)})`);
    assert.equal(g.text, want, `${what}${describeGet(node, key, g)}`);
  }
}
const isValue = (g, want) => (want === null
  ? g.status === 404 && g.body?.errors?.[0]?.code === 10009
  : g.status === 200 && g.text === want);

// A port nothing listens on (bound, then closed).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

describe('edge role: 1 primary, 2 replicas, 3 edges', { timeout: 150000 }, () => {
  const c = new Cluster('edge');
  let p; // primary p1 (--test-clock: its purger expires keys when the test moves its clock)
  let r1;
  let r2;
  let e1; // replicas r1,r2 (follows r1)
  let e2; // replicas r2,r1 (follows r2)
  let e3; // replicas r1,r2
  let edges;
  let ns; // the main namespace
  let standalone;
  const acct = () => `/accounts/${p.accountId}`;
  const nsList = () => `${acct()}/storage/kv/namespaces`;

  // Poll until fn() is truthy (fast: measures propagation), return the elapsed ms. The wait
  // runs past `bound` (2.5 x bound, at least 5 s) so that the measured time is reported even
  // when it is over.
  async function timeUntil(t, what, fn, bound = BOUND_MS) {
    const t0 = performance.now();
    await c.waitFor(fn, Math.max(5000, bound * 2.5), what, 5);
    const ms = Math.round(performance.now() - t0);
    t.diagnostic(`${what}: ${ms} ms`);
    assert.ok(ms < bound, `${what} took ${ms} ms (bound ${bound} ms)\n${await c.describe()}`);
    return ms;
  }
  // Until `key` reads as `want` through every node of `nodes`; measured per node.
  async function untilEverywhere(t, nodes, nsId, key, want, what, bound = BOUND_MS) {
    const t0 = performance.now();
    const times = await Promise.all(nodes.map(async (n) => {
      let last = null;
      try {
        await c.waitFor(async () => { last = await getValue(n, nsId, key); return isValue(last, want); },
          Math.max(5000, bound * 2.5), `${what} through ${n.nodeId}`, 5);
      } catch (e) {
        const m = await edgeMetrics(n).catch(() => null);
        e.message = `${n.nodeId} still answers ${last ? `${last.status} ${last.text.slice(0, 200)}` : '(nothing)'} `
          + `(want ${JSON.stringify(want)}); ${n.nodeId} counters ${JSON.stringify(m)}\n${e.message}`;
        throw e;
      }
      return [n.nodeId, Math.round(performance.now() - t0)];
    }));
    t.diagnostic(`${what}: ${times.map(([id, ms]) => `${id} ${ms} ms`).join(', ')}`);
    for (const [id, ms] of times) {
      assert.ok(ms < bound, `${what}: ${id} took ${ms} ms (bound ${bound} ms)\n${await c.describe()}`);
    }
    return Math.max(...times.map(([, ms]) => ms));
  }

  // Until every given edge's stream has applied everything the primary committed (so that no
  // invalidation is on its way: a fetch that overlaps one is not cached, by design).
  async function quiesce(nodes = edges) {
    await c.waitFor(async () => {
      const ps = await status(p);
      const sts = await Promise.all(nodes.map((e) => status(e)));
      return sts.every((x) => x.stream.applied_seq === ps.last_seq);
    }, 10000, `${nodes.map((e) => e.nodeId).join(', ')} applied the primary's last_seq`);
  }
  // Get `key` cached on edge `e`: once e's stream is quiet, read it (a miss fills the cache);
  // the next read must be a fresh hit (asserted through the metrics).
  async function cacheOn(e, nsId, key, want, query = '') {
    await quiesce([e]);
    assertValue(e, key, await getValue(e, nsId, key, { query }), want);
    const m0 = await edgeMetrics(e);
    assertValue(e, key, await getValue(e, nsId, key), want);
    const d = delta(m0, await edgeMetrics(e));
    assert.equal(d.hits, 1, `${e.nodeId}: ${key} is cached (second read a hit): ${JSON.stringify(d)}`);
    assert.equal(d.upstream_fetches, 0, `${e.nodeId}: ${key}: ${JSON.stringify(d)}`);
  }

  before(async () => {
    p = await c.startPrimary({ nodeId: 'p1', args: ['--test-clock'] });
    r1 = await c.startReplica(p, { nodeId: 'r1', replListen: '127.0.0.1:0' });
    r2 = await c.startReplica(p, { nodeId: 'r2', replListen: '127.0.0.1:0' });
    await waitStreaming(c, r1, { primary: p });
    await waitStreaming(c, r2, { primary: p });
    assert.match(r1.replAddr || '', /^127\.0\.0\.1:\d+$/, 'r1 repl_listen');
    assert.match(r2.replAddr || '', /^127\.0\.0\.1:\d+$/, 'r2 repl_listen');
    ns = await p.createNamespace('edge-main');
    [e1, e2, e3] = await Promise.all([
      c.startEdge(p, [r1, r2], { nodeId: 'e1' }),
      c.startEdge(p, [r2, r1], { nodeId: 'e2' }),
      c.startEdge(p, [r1, r2], { nodeId: 'e3' }),
    ]);
    edges = [e1, e2, e3];
    standalone = await startServer();
  });
  after(async () => {
    await standalone?.stop();
    await c.cleanup();
  });

  // ------------------------------------------------------------------------------------------
  it('status and metrics shapes (edge, and the edges listed by the primary and replicas)', async () => {
    await c.waitFor(async () => {
      const st = await Promise.all(edges.map((e) => status(e)));
      const ps = await status(p);
      // the edges own the Durable Object partitions: each table change is a record, so wait
      // until the table has settled (3 owners, nothing pending) before comparing seqs
      const d = ps.durable_objects;
      return d && Object.keys(d.owners).length === 3 && d.pending === 0 &&
        st.every((s) => s.stream.applied_seq === ps.last_seq && s.stream.lag_seqs === 0 &&
          s.durable_objects.table_version === d.table_version);
    }, 10000, 'edges caught up with the primary (and the Durable Object table settled)');
    const ps = await status(p);
    const follows = { e1: r1, e2: r2, e3: r1 };
    for (const e of edges) {
      const s = await status(e);
      const j = JSON.stringify(s);
      assert.equal(s.role, 'edge', j);
      assert.equal(s.node_id, e.nodeId, j);
      // an edge's link listener serves the Durable Objects it owns (issue 11), on its API host
      assert.match(s.repl_listen, /^127\.0\.0\.1:\d+$/, `an edge's owner link listener: ${j}`);
      assert.equal(s.durable_objects.addr, s.repl_listen, j);
      const st = s.stream;
      assert.equal(st.state, 'streaming', j);
      assert.equal(st.primary_addr, follows[e.nodeId].replAddr, `${e.nodeId} follows its first replica: ${j}`);
      assert.equal(st.primary_node_id, follows[e.nodeId].nodeId, j);
      for (const f of ['applied_seq', 'primary_latest_seq', 'lag_seqs', 'lag_ms', 'snapshots',
        'snapshot_attempts', 'connects', 'reconnects']) {
        assert.ok(isInt(st[f]) && st[f] >= 0, `${e.nodeId} stream.${f}: ${st[f]}`);
      }
      assert.equal(st.applied_seq, ps.last_seq, j);
      assert.equal(st.primary_latest_seq, ps.last_seq, j);
      assert.equal(st.lag_seqs, 0, j);
      assert.ok(st.connects >= 1, j);
      assert.ok(st.snapshots >= 1 && st.snapshots <= st.snapshot_attempts, `catalog snapshot: ${j}`);
      const ed = s.edge;
      assert.equal(ed.synced, true, j);
      assert.ok(isInt(ed.max_write_seq) && ed.max_write_seq >= 0, j);
      assert.equal(ed.upstreams.length, 3, j);
      const byAddr = Object.fromEntries(ed.upstreams.map((u) => [u.addr, u]));
      assert.equal(byAddr[p.replAddr]?.role, 'primary', j);
      assert.equal(byAddr[r1.replAddr]?.role, 'replica', j);
      assert.equal(byAddr[r2.replAddr]?.role, 'replica', j);
      for (const u of ed.upstreams) {
        assert.equal(u.ready, true, `${e.nodeId} upstream ${u.addr} ready: ${j}`);
        for (const f of ['seq', 'inflight', 'calls', 'timeouts', 'failed_fast']) {
          assert.ok(isInt(u[f]) && u[f] >= 0, `${e.nodeId} upstream ${u.addr}.${f}: ${u[f]}`);
        }
      }
      const stats = ['hits', 'misses', 'upstream_fetches', 'coalesced', 'stale_served', 'reads_forwarded',
        'writes_forwarded', 'failovers', 'upstream_failures'];
      for (const f of stats) assert.ok(isInt(ed.stats[f]) && ed.stats[f] >= 0, `${e.nodeId} edge.stats.${f}: ${ed.stats[f]}`);
      // metrics agree with the status (no traffic meanwhile)
      const m = await edgeMetrics(e);
      const s2 = await status(e);
      for (const f of stats) assert.equal(m[f], s2.edge.stats[f], `${e.nodeId}: metric ${f} vs status`);
      assert.equal(m.synced, 1);
      assert.equal(m.inflight, 0);
      const text = await metricsText(e);
      assert.equal(metricValue(text, 'edgekv_repl_streaming'), 1, `${e.nodeId} edgekv_repl_streaming`);
      assert.equal(metricValue(text, 'edgekv_repl_applied_seq'), ps.last_seq, `${e.nodeId} edgekv_repl_applied_seq`);
      assert.equal(metricValue(text, 'edgekv_repl_lag_seqs'), 0);
      assert.ok(metricValue(text, 'edgekv_repl_lag_ms') >= 0);
      assert.ok(metricValue(text, 'edgekv_repl_connects_total') >= 1);
    }
    // primary: replicas[] lists replicas only; edges[] lists every edge's RPC link
    assert.deepEqual(ps.replicas.map((x) => x.node_id).sort(), ['r1', 'r2'], JSON.stringify(ps.replicas));
    for (const e of edges) {
      assert.ok(ps.edges.some((x) => x.node_id === e.nodeId && x.kind === 'edge-rpc'),
        `primary edges[] lacks ${e.nodeId}'s rpc link: ${JSON.stringify(ps.edges)}`);
    }
    // replicas: the streams of the edges following them, and every edge's RPC link
    const rs1 = await status(r1);
    const rs2 = await status(r2);
    const streams = (st) => st.edges.filter((x) => x.kind === 'edge-stream' && x.state === 'streaming').map((x) => x.node_id).sort();
    assert.deepEqual(streams(rs1), ['e1', 'e3'], JSON.stringify(rs1.edges));
    assert.deepEqual(streams(rs2), ['e2'], JSON.stringify(rs2.edges));
    for (const st of [rs1, rs2]) {
      assert.deepEqual(st.edges.filter((x) => x.kind === 'edge-rpc').map((x) => x.node_id).sort(), ['e1', 'e2', 'e3'],
        JSON.stringify(st.edges));
      assert.deepEqual(st.replicas, [], 'edges are not replicas');
    }
  });

  // ------------------------------------------------------------------------------------------
  it('the full KV API works through the edges (namespaces, values, metadata, lists, bulk, tokens)', async (t) => {
    // read-your-writes checks are collected and asserted at the end, so that one violation does
    // not hide the rest of the API
    const ryw = [];
    const soft = (fn) => { try { fn(); } catch (e) { ryw.push(e.message.split('\n')[0]); } };
    // namespaces: create through e1, visible through every edge within the bound
    const made = expectOk(await e1.api('POST', nsList(), { json: { title: 'edge-api' } }));
    assert.match(made.id, /^[0-9a-f]{32}$/);
    assert.equal(made.title, 'edge-api');
    const id = made.id;
    await timeUntil(t, 'new namespace readable through e1, e2, e3', async () => {
      const rs = await Promise.all(edges.map((e) => e.api('GET', `${nsList()}/${id}`)));
      return rs.every((r) => r.status === 200 && r.body.result.title === 'edge-api');
    });
    for (const e of edges) {
      const list = expectOk(await e.api('GET', `${nsList()}?per_page=100`));
      assert.ok(list.some((n) => n.id === id && n.title === 'edge-api'), `${e.nodeId}: ${JSON.stringify(list)}`);
      assert.ok(list.some((n) => n.id === ns), `${e.nodeId}: main namespace listed`);
      assert.deepEqual(list, expectOk(await p.api('GET', `${nsList()}?per_page=100`)), `${e.nodeId}: same list as the primary`);
    }
    // rename through e2: seen through every edge within the bound (read-your-writes of catalog
    // changes at the accepting edge: the next test)
    assert.equal(expectOk(await e2.api('PUT', `${nsList()}/${id}`, { json: { title: 'edge-api-2' } })).title, 'edge-api-2');
    await timeUntil(t, 'namespace rename (through e2) seen through e1, e2, e3', async () => {
      const rs = await Promise.all(edges.map((e) => e.api('GET', `${nsList()}/${id}`)));
      return rs.every((r) => r.status === 200 && r.body.result.title === 'edge-api-2');
    });
    expectError(await e3.api('POST', nsList(), { json: { title: 'edge-api-2' } }), 400, 10014);

    // raw value through e1, read through e2
    const P = e1.ns(id);
    expectOk(await e1.api('PUT', `${P}/values/raw%2Fa`, { body: 'raw-value-a' }));
    const ga = await getValue(e1, id, 'raw/a');
    soft(() => assertValue(e1, 'raw/a', ga, 'raw-value-a', 'read-your-write: '));
    await untilEverywhere(t, [e2, e3], id, 'raw/a', 'raw-value-a', 'new key through e2, e3');
    // binary value
    const bin = randomBytes(5000);
    expectOk(await e2.api('PUT', `${P}/values/bin`, { body: bin }));
    const gb = await e2.fetch('GET', `${P}/values/bin`);
    assert.equal(gb.status, 200);
    assert.equal(sha256(Buffer.from(await gb.arrayBuffer())), sha256(bin), 'binary value through e2');

    // multipart with metadata and expiration_ttl through e3
    const mp = multipart([{ name: 'value', data: 'mp-value' }, { name: 'metadata', data: '{"owner":"e3","n":[1,2]}' }]);
    const before = Math.floor(Date.now() / 1000);
    expectOk(await e3.api('PUT', `${P}/values/mp%2Fk?expiration_ttl=3600`,
      { body: mp.body, headers: { 'content-type': mp.contentType } }));
    const after = Math.floor(Date.now() / 1000);
    const g3 = await getValue(e3, id, 'mp/k');
    assertValue(e3, 'mp/k', g3, 'mp-value');
    const exp = Number(g3.headers.get('expiration'));
    assert.ok(exp >= before + 3600 && exp <= after + 3601, `expiration header ${g3.headers.get('expiration')} (now ${before})`);
    const m3 = await e3.api('GET', `${P}/metadata/mp%2Fk`);
    soft(() => assert.deepEqual(expectOk(m3), { owner: 'e3', n: [1, 2] }, 'e3 reads its own metadata'));
    await untilEverywhere(t, [e1, e2], id, 'mp/k', 'mp-value', 'multipart key through e1, e2');
    for (const e of [e1, e2]) {
      const g = await getValue(e, id, 'mp/k');
      assert.equal(g.headers.get('expiration'), String(exp), `${e.nodeId}: expiration header`);
      assert.deepEqual(expectOk(await e.api('GET', `${P}/metadata/mp%2Fk`)), { owner: 'e3', n: [1, 2] }, `${e.nodeId} metadata`);
    }
    expectError(await e1.api('GET', `${P}/metadata/none`), 404, 10009, "metadata: 'key not found'");
    expectError(await e1.api('GET', `${P}/values/none`), 404, 10009, "get: 'key not found'");

    // bulk put through e2, list with prefix + cursor through e3, bulk get through e1
    const items = [];
    for (let i = 0; i < 25; i++) {
      const key = `list/${String(i).padStart(2, '0')}`;
      items.push(i % 2
        ? { key, value: Buffer.from(`bv${i}`).toString('base64'), base64: true, metadata: { i } }
        : { key, value: `bv${i}`, metadata: { i } });
    }
    items.push({ key: 'other/x', value: 'ox', expiration_ttl: 7200 });
    const bw = expectOk(await e2.api('PUT', `${P}/bulk`, { json: items }));
    assert.deepEqual(bw, { successful_key_count: 26, unsuccessful_keys: [] });
    const pages = async (node) => {
      const names = [];
      let cursor = '';
      for (let i = 0; i < 10; i++) {
        const q = new URLSearchParams({ prefix: 'list/', limit: '10', ...(cursor ? { cursor } : {}) });
        const x = await node.api('GET', `${P}/keys?${q}`);
        const res = expectOk(x);
        assert.ok(res.length <= 10, `page of ${res.length}`);
        names.push(...res.map((k) => `${k.name}:${JSON.stringify(k.metadata)}`));
        cursor = x.body.result_info.cursor;
        if (!cursor) break;
      }
      return names;
    };
    const want = items.slice(0, 25).map((it) => `${it.key}:${JSON.stringify(it.metadata)}`);
    const own = await pages(e2);
    soft(() => assert.deepEqual(own, want, `e2 lists its own bulk write at once (3 pages of 10/10/5): got ${own.length} keys`));
    await timeUntil(t, 'bulk-written keys listed through e3', async () => (await pages(e3)).length === 25);
    assert.deepEqual(await pages(e3), want);
    assert.deepEqual(await pages(e3), await pages(p), 'same pages as the primary');
    const all = expectOk(await e1.api('GET', `${P}/keys`));
    const ox = all.find((k) => k.name === 'other/x');
    assert.ok(ox && isInt(ox.expiration), `other/x listed with its expiration: ${JSON.stringify(ox)}`);
    const bg = expectOk(await e1.api('POST', `${P}/bulk/get`,
      { json: { keys: ['list/03', 'list/04', 'mp/k', 'nope'], withMetadata: true } }));
    assert.deepEqual(bg.values['list/03'], { value: 'bv3', metadata: { i: 3 } });
    assert.deepEqual(bg.values['list/04'], { value: 'bv4', metadata: { i: 4 } });
    assert.deepEqual(bg.values['mp/k'], { value: 'mp-value', metadata: { owner: 'e3', n: [1, 2] }, expiration: exp });
    assert.equal(bg.values.nope, null);
    // read list/05 through e3 so it is cached there, then bulk delete through e1 (both routes)
    await cacheOn(e3, id, 'list/05', 'bv5');
    assert.deepEqual(expectOk(await e1.api('POST', `${P}/bulk/delete`, { json: ['list/05', 'list/06'] })),
      { successful_key_count: 2, unsuccessful_keys: [] });
    assert.deepEqual(expectOk(await e1.api('DELETE', `${P}/bulk`, { json: ['list/07'] })),
      { successful_key_count: 1, unsuccessful_keys: [] });
    const bg1 = expectOk(await e1.api('POST', `${P}/bulk/get`, { json: { keys: ['list/05', 'list/06', 'list/07', 'list/08'] } }));
    soft(() => assert.deepEqual(bg1.values, { 'list/05': null, 'list/06': null, 'list/07': null, 'list/08': 'bv8' },
      `e1 reads its own bulk delete: ${JSON.stringify(bg1.values)}`));
    await untilEverywhere(t, [e2, e3], id, 'list/05', null, 'bulk-deleted key (cached on e3) gone through e2, e3');
    // single delete through e2
    expectOk(await e2.api('DELETE', `${P}/values/raw%2Fa`));
    const gd = await getValue(e2, id, 'raw/a');
    soft(() => assertValue(e2, 'raw/a', gd, null, 'read-your-delete: '));

    // tokens: created through the admin API on e1, used through e2; revoked through e3
    const tok = expectOk(await e1.api('POST', `${acct()}/tokens`, { json: { name: 'edge-rw', permissions: ['kv:read', 'kv:write'] } }));
    assert.match(tok.id, /^[0-9a-f]{32}$/);
    assert.equal(tok.status, 'active');
    const asTok = { auth: false, headers: { authorization: `Bearer ${tok.value}` } };
    await timeUntil(t, 'token created through e1 accepted by e2', async () => (await e2.api('GET', `${P}/keys`, asTok)).status === 200);
    expectOk(await e2.api('PUT', `${P}/values/by-token`, { ...asTok, body: 'tok-write' }));
    const gt = await getValue(e2, id, 'by-token', { headers: asTok.headers });
    assertValue(e2, 'by-token', gt, 'tok-write');
    assert.deepEqual(expectOk(await e2.api('GET', '/user/tokens/verify', asTok)), { id: tok.id, status: 'active' });
    const listed = expectOk(await e3.api('GET', `${acct()}/tokens`));
    assert.ok(listed.some((x) => x.id === tok.id && x.name === 'edge-rw'), JSON.stringify(listed));
    assert.deepEqual(expectOk(await e3.api('DELETE', `${acct()}/tokens/${tok.id}`)), { id: tok.id });
    await timeUntil(t, 'token revoked through e3 refused by e1 and e2', async () => {
      const rs = await Promise.all([e1, e2].map((e) => e.api('GET', `${P}/keys`, asTok)));
      return rs.every((r) => r.status === 403);
    });
    expectError(await e2.api('PUT', `${P}/values/by-token`, { ...asTok, body: 'x' }), 403, 10000, 'Authentication error');

    // namespace delete through e3: its keys (cached on e1) are gone everywhere
    await cacheOn(e1, id, 'mp/k', 'mp-value');
    expectOk(await e3.api('DELETE', `${nsList()}/${id}`));
    expectError(await e3.api('GET', `${nsList()}/${id}`), 404, 10013);
    await timeUntil(t, 'namespace delete seen through e1, e2', async () => {
      const rs = await Promise.all([e1, e2].map((e) => getValue(e, id, 'mp/k')));
      return rs.every((g) => g.status === 404 && g.body?.errors?.[0]?.code === 10013);
    });
    for (const e of edges) expectError(await e.api('GET', `${nsList()}/${id}`), 404, 10013);
    assert.deepEqual(ryw, [], 'read-your-writes through the accepting edge');
  });

  // ------------------------------------------------------------------------------------------
  // The edge's namespace check and authentication use its replicated catalog: a client that
  // creates a namespace (or a token) through an edge must be able to use it through that edge
  // at once (read-your-writes at the accepting edge), as on a standalone node.
  it('catalog read-your-writes at the accepting edge: namespaces and tokens are usable at once', async () => {
    const failures = [];
    const N = 15;
    for (let i = 0; i < N; i++) {
      // namespace created through e1, written into and listed through e1 at once
      const id = expectOk(await e1.api('POST', nsList(), { json: { title: `ryw-${i}` } })).id;
      const put = await e1.api('PUT', `${e1.ns(id)}/values/k`, { body: `v${i}` });
      if (put.status !== 200) failures.push(`PUT into namespace ${id} created through e1 just before -> ${put.status} ${put.text}`);
      const list = await e1.api('GET', `${nsList()}?per_page=1000`);
      if (list.status !== 200 || !list.body.result.some((n) => n.id === id)) {
        failures.push(`namespace ${id} created through e1 just before not in e1's list -> ${list.status}`);
      }
      // renamed through e3, read back through e3 at once
      const ren = await e3.api('PUT', `${nsList()}/${id}`, { json: { title: `ryw-${i}-renamed` } });
      const got = await e3.api('GET', `${nsList()}/${id}`);
      if (ren.status !== 200 || got.status !== 200 || got.body.result.title !== `ryw-${i}-renamed`) {
        failures.push(`GET namespace ${id} renamed through e3 just before -> ${got.status} title ${JSON.stringify(got.body?.result?.title)}`);
      }
      // token created through e2, used through e2 at once
      const tok = expectOk(await e2.api('POST', `${acct()}/tokens`, { json: { name: `ryw-${i}`, permissions: ['kv:read'] } }));
      const use = await e2.api('GET', `${e2.ns(ns)}/keys`, { auth: false, headers: { authorization: `Bearer ${tok.value}` } });
      if (use.status !== 200) failures.push(`GET keys with a token created through e2 just before -> ${use.status} ${use.text}`);
      // namespace deleted through e1: gone through e1 at once
      expectOk(await e1.api('DELETE', `${nsList()}/${id}`));
      const gone = await e1.api('GET', `${nsList()}/${id}`);
      if (gone.status !== 404) failures.push(`GET namespace ${id} deleted through e1 just before -> ${gone.status} ${gone.text}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${N * 5} immediate reads of a catalog write through the same edge failed`);
  });

  // ------------------------------------------------------------------------------------------
  it('negative cache: a 404 is cached, and invalidated when the key is created through another edge', async (t) => {
    const key = 'neg/k';
    // missing key read through B and C: the 404 is cached (the second read is a hit)
    for (const e of [e2, e3]) await cacheOn(e, ns, key, null);
    expectOk(await e1.api('PUT', `${e1.ns(ns)}/values/${encodeURIComponent(key)}`, { body: 'created' }));
    assertValue(e1, key, await getValue(e1, ns, key), 'created', 'read-your-write: ');
    await untilEverywhere(t, [e2, e3], ns, key, 'created', 'negative entry invalidated by a create (A=e1 -> B=e2, C=e3)');
  });

  // ------------------------------------------------------------------------------------------
  it('writes through A: read-your-writes at A, invalidation at B and C within the bound', async (t) => {
    const key = 'conv/hot';
    expectOk(await e1.api('PUT', `${e1.ns(ns)}/values/${encodeURIComponent(key)}`, { body: 'v0' }));
    assertValue(e1, key, await getValue(e1, ns, key), 'v0', 'read-your-write: ');
    const newMs = await untilEverywhere(t, [e2, e3], ns, key, 'v0', 'new key (A=e1) readable through e2, e3');

    // overwrites: A never returns an older value; B and C see each within the bound. Before each
    // one, A, B and C hold the previous value in their caches (proved by hits).
    const overwriteMs = [];
    for (let n = 1; n <= 5; n++) {
      for (const e of edges) await cacheOn(e, ns, key, `v${n - 1}`);
      const w = n % 2
        ? await e1.api('PUT', `${e1.ns(ns)}/values/${encodeURIComponent(key)}`, { body: `v${n}` })
        : await (async () => {
          const mp = multipart([{ name: 'value', data: `v${n}` }, { name: 'metadata', data: JSON.stringify({ n }) }]);
          return e1.api('PUT', `${e1.ns(ns)}/values/${encodeURIComponent(key)}`, { body: mp.body, headers: { 'content-type': mp.contentType } });
        })();
      expectOk(w);
      for (let i = 0; i < 5; i++) assertValue(e1, key, await getValue(e1, ns, key), `v${n}`, `read-your-write after overwrite ${n} (read ${i}): `);
      if (n % 2 === 0) assert.deepEqual(expectOk(await e1.api('GET', `${e1.ns(ns)}/metadata/${encodeURIComponent(key)}`)), { n });
      overwriteMs.push(await untilEverywhere(t, [e2, e3], ns, key, `v${n}`, `overwrite ${n} (A=e1) seen through e2, e3`));
    }
    // delete through A: A answers 404 at once, B and C within the bound
    for (const e of edges) await cacheOn(e, ns, key, 'v5');
    expectOk(await e1.api('DELETE', `${e1.ns(ns)}/values/${encodeURIComponent(key)}`));
    for (let i = 0; i < 5; i++) assertValue(e1, key, await getValue(e1, ns, key), null, `read-your-delete (read ${i}): `);
    const delMs = await untilEverywhere(t, [e2, e3], ns, key, null, 'delete (A=e1) seen through e2, e3');
    // and a write through B is read back at B and seen at A (the roles swapped)
    expectOk(await e2.api('PUT', `${e2.ns(ns)}/values/${encodeURIComponent(key)}`, { body: 'from-b' }));
    assertValue(e2, key, await getValue(e2, ns, key), 'from-b', 'read-your-write at e2: ');
    await untilEverywhere(t, [e1, e3], ns, key, 'from-b', 'write through e2 seen through e1, e3');
    t.diagnostic(`summary: new key ${newMs} ms, overwrites max ${Math.max(...overwriteMs)} ms, delete ${delMs} ms`);
  });

  // ------------------------------------------------------------------------------------------
  it('an expiration emitted by the primary\'s purger evicts the key from every edge', async (t) => {
    const key = 'exp/soon';
    const mp = multipart([{ name: 'value', data: 'short-lived' }, { name: 'metadata', data: '{"e":1}' }]);
    expectOk(await e1.api('PUT', `${e1.ns(ns)}/values/${encodeURIComponent(key)}?expiration_ttl=60`,
      { body: mp.body, headers: { 'content-type': mp.contentType } }));
    await untilEverywhere(t, edges, ns, key, 'short-lived', 'key with expiration_ttl=60 through every edge');
    for (const e of edges) { // cached everywhere
      await cacheOn(e, ns, key, 'short-lived');
      const g = await getValue(e, ns, key);
      assert.ok(Number(g.headers.get('expiration')) > Date.now() / 1000, `${e.nodeId}: expiration header ${g.headers.get('expiration')}`);
    }
    const purged0 = metricValue(await metricsText(p), 'edgekv_expired_keys_purged_total') || 0;
    await p.advanceClock(120);
    // the purger runs every second: the bound here is BOUND_MS + its period
    await untilEverywhere(t, edges, ns, key, null, 'expiry (primary clock +120 s) seen through every edge', BOUND_MS + 1000);
    assert.ok((metricValue(await metricsText(p), 'edgekv_expired_keys_purged_total') || 0) > purged0, 'the primary purged it');
    for (const e of edges) {
      expectError(await e.api('GET', `${e.ns(ns)}/metadata/${encodeURIComponent(key)}`), 404, 10009);
    }
  });

  // ------------------------------------------------------------------------------------------
  it('100 concurrent GETs of an uncached key through one edge: exactly one upstream fetch', async (t) => {
    // (a) upstreams held (SIGSTOP) while the 100 requests arrive: all 100 must join one fetch
    const key = 'sf/held';
    const value = `held-${randomBytes(8).toString('hex')}`;
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(key)}`, { body: value }));
    await c.waitFor(async () => {
      const ps = await status(p);
      const rs = await Promise.all([r1, r2].map((r) => status(r)));
      return rs.every((s) => s.last_seq === ps.last_seq);
    }, 10000, 'replicas caught up');
    const m0 = await edgeMetrics(e3);
    const ups = [r1, r2, p];
    let answers;
    const t0 = performance.now();
    for (const u of ups) pause(u);
    try {
      const reqs = Array.from({ length: 100 }, () => getValue(e3, ns, key));
      await c.waitFor(async () => {
        const d = delta(m0, await edgeMetrics(e3));
        return d.upstream_fetches === 1 && d.coalesced === 99 && d.inflight === 1;
      }, 4000, 'e3: 1 fetch in flight with 99 coalesced requests', 10).catch(async (e) => {
        throw new Error(`${e.message}\ne3 metrics delta: ${JSON.stringify(delta(m0, await edgeMetrics(e3)))}`);
      });
      for (const u of ups) resume(u);
      answers = await Promise.all(reqs);
    } finally {
      for (const u of ups) if (u.stopped) resume(u);
    }
    t.diagnostic(`held single-flight: 100 answers after ${Math.round(performance.now() - t0)} ms`);
    const bad = answers.filter((g) => g.status !== 200 || g.text !== value);
    assert.deepEqual(bad.map((g) => `${g.status} ${g.text.slice(0, 100)}`), [], 'every one of the 100 answers is the value');
    const d = delta(m0, await edgeMetrics(e3));
    assert.equal(d.upstream_fetches, 1, `exactly one upstream fetch: ${JSON.stringify(d)}`);
    assert.equal(d.coalesced, 99, JSON.stringify(d));
    assert.equal(d.hits, 0, JSON.stringify(d));
    assert.equal(d.upstream_failures, 0, JSON.stringify(d));
    assert.equal(d.inflight, 0, JSON.stringify(d));

    // (b) free-running: 100 concurrent GETs, one fetch; the rest joined it or hit the cache
    const key2 = 'sf/free';
    const value2 = randomBytes(2000).toString('base64');
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(key2)}`, { body: value2 }));
    await c.waitFor(async () => {
      const ps = await status(p);
      const rs = await Promise.all([r1, r2].map((r) => status(r)));
      return rs.every((s) => s.last_seq === ps.last_seq);
    }, 10000, 'replicas caught up');
    const m1 = await edgeMetrics(e2);
    const answers2 = await Promise.all(Array.from({ length: 100 }, () => getValue(e2, ns, key2)));
    assert.deepEqual(answers2.filter((g) => g.status !== 200 || g.text !== value2).map((g) => `${g.status} ${g.text.slice(0, 100)}`), []);
    const d2 = delta(m1, await edgeMetrics(e2));
    t.diagnostic(`free-running: ${JSON.stringify(d2)}`);
    assert.equal(d2.upstream_fetches, 1, `exactly one upstream fetch: ${JSON.stringify(d2)}`);
    assert.equal(d2.coalesced + d2.hits, 99, JSON.stringify(d2));
  });

  // ------------------------------------------------------------------------------------------
  it('bad tokens on an edge get the same answers as on a standalone node; cache_ttl validation', async (t) => {
    const s = standalone;
    const sNs = await s.createNamespace('auth-same');
    expectOk(await s.api('PUT', `${s.ns(sNs)}/values/keep`, { body: 'kept' }));
    expectOk(await e1.api('PUT', `${e1.ns(ns)}/values/keep`, { body: 'kept' }));
    const mkTok = async (node, name, permissions) => expectOk(await node.api('POST', `/accounts/${node.accountId}/tokens`,
      { json: { name, permissions } }));
    const sRo = await mkTok(s, 'ro', ['kv:read']);
    const sRw = await mkTok(s, 'rw', ['kv:read', 'kv:write']);
    const sRev = await mkTok(s, 'rev', ['kv:read', 'kv:write']);
    expectOk(await s.api('DELETE', `/accounts/${s.accountId}/tokens/${sRev.id}`));
    const eRo = await mkTok(e1, 'ro', ['kv:read']);
    const eRw = await mkTok(e1, 'rw', ['kv:read', 'kv:write']);
    const eRev = await mkTok(e1, 'rev', ['kv:read', 'kv:write']);
    const bearer = (v) => ({ authorization: `Bearer ${v}` });
    // wait until e2 knows the new tokens (and the revocation)
    await timeUntil(t, 'tokens created through e1 usable through e2', async () => {
      const ok = await Promise.all([eRo, eRw].map((x) => e2.api('GET', `${e2.ns(ns)}/keys`, { auth: false, headers: bearer(x.value) })));
      return ok.every((r) => r.status === 200);
    });
    expectOk(await e1.api('DELETE', `/accounts/${e1.accountId}/tokens/${eRev.id}`));
    await timeUntil(t, 'token revoked through e1 refused by e2', async () =>
      (await e2.api('GET', `${e2.ns(ns)}/keys`, { auth: false, headers: bearer(eRev.value) })).status === 403);

    const unknown = newToken();
    // [what, (node, nsId, tokens) => request args]
    const cases = [
      ['PUT without credentials', (n, id) => ['PUT', `${n.ns(id)}/values/keep`, { auth: false, body: 'x' }]],
      ['PUT with an unknown token', (n, id) => ['PUT', `${n.ns(id)}/values/keep`, { auth: false, headers: bearer(unknown), body: 'x' }]],
      ['PUT with a malformed Authorization', (n, id) => ['PUT', `${n.ns(id)}/values/keep`, { auth: false, headers: { authorization: 'Bearer a b' }, body: 'x' }]],
      ['PUT with a read-only token', (n, id, k) => ['PUT', `${n.ns(id)}/values/keep`, { auth: false, headers: bearer(k.ro.value), body: 'x' }]],
      ['DELETE with a read-only token', (n, id, k) => ['DELETE', `${n.ns(id)}/values/keep`, { auth: false, headers: bearer(k.ro.value) }]],
      ['bulk put with a read-only token', (n, id, k) => ['PUT', `${n.ns(id)}/bulk`, { auth: false, headers: bearer(k.ro.value), json: [{ key: 'keep', value: 'x' }] }]],
      ['bulk delete with a read-only token', (n, id, k) => ['POST', `${n.ns(id)}/bulk/delete`, { auth: false, headers: bearer(k.ro.value), json: ['keep'] }]],
      ['namespace create with a read-only token', (n, id, k) => ['POST', `/accounts/${n.accountId}/storage/kv/namespaces`, { auth: false, headers: bearer(k.ro.value), json: { title: 'nope' } }]],
      ['PUT with a revoked token', (n, id, k) => ['PUT', `${n.ns(id)}/values/keep`, { auth: false, headers: bearer(k.rev.value), body: 'x' }]],
      ['token create with a kv:write token', (n, id, k) => ['POST', `/accounts/${n.accountId}/tokens`, { auth: false, headers: bearer(k.rw.value), json: { name: 'x', permissions: ['admin'] } }]],
      ['PUT into another account', (n) => ['PUT', `/accounts/${'f'.repeat(32)}/storage/kv/namespaces/${'e'.repeat(32)}/values/keep`, { body: 'x' }]],
      ['verify with an unknown token', () => ['GET', '/user/tokens/verify', { auth: false, headers: bearer(unknown) }]],
    ];
    const sToks = { ro: sRo, rw: sRw, rev: sRev };
    const eToks = { ro: eRo, rw: eRw, rev: eRev };
    const shape = (r) => ({ status: r.status, success: r.body?.success, errors: r.body?.errors, result: r.body?.result });
    for (const [what, mk] of cases) {
      const want = shape(await s.api(...mk(s, sNs, sToks)));
      assert.ok(want.status >= 400 && want.status < 500, `${what}: standalone answered ${JSON.stringify(want)}`);
      for (const e of [e1, e2]) {
        const got = shape(await e.api(...mk(e, ns, eToks)));
        assert.deepEqual(got, want, `${what} through ${e.nodeId}`);
      }
    }
    // nothing was written
    for (const e of edges) assertValue(e, 'keep', await getValue(e, ns, 'keep'), 'kept');
    assertValue(p, 'keep', await getValue(p, ns, 'keep'), 'kept');

    // cache_ttl: an integer in [30, 31536000] (1 year), else 400 with a clear message; a valid
    // one is served. Bounds: 29 / 30, 31536000 / 31536001, 2^63-1 (no overflow: UBSan builds
    // would abort on one), beyond 2^64, non-numeric, and a value too long to be a TTL.
    const ttlErr = async (bad, message) => {
      const g = await getValue(e2, ns, 'keep', { query: `?cache_ttl=${bad}` });
      assert.equal(g.status, 400, `cache_ttl=${bad}: ${g.text}`);
      assert.equal(g.body?.success, false, g.text);
      assert.equal(g.body?.result, null, g.text);
      assert.equal(g.body?.errors?.[0]?.code, 10029, g.text);
      assert.equal(g.body?.errors?.[0]?.message, message, g.text);
    };
    for (const bad of ['29', '0', '-5', 'abc', '', '3e2', '+60', ' 60', '60s', '-9223372036854775808']) {
      await ttlErr(encodeURIComponent(bad), `Invalid cache_ttl of ${bad}. Cache TTL must be at least 30.`);
    }
    for (const big of ['31536001', '9223372036854775807', '99999999999999999999999', '000000000031536001']) {
      await ttlErr(big, `Invalid cache_ttl of ${big}. Cache TTL must be at most 31536000.`);
    }
    await ttlErr('1'.repeat(40), 'Invalid cache_ttl. Cache TTL must be at most 31536000.');
    assertValue(e2, 'keep', await getValue(e2, ns, 'keep', { query: '?cache_ttl=30' }), 'kept');
    assertValue(e2, 'keep', await getValue(e2, ns, 'keep', { query: '?cache_ttl=31536000' }), 'kept');
    assertValue(e2, 'keep', await getValue(e2, ns, 'keep', { query: '?cache_ttl=0000031536000' }), 'kept');
    assertValue(e2, 'keep', await getValue(e2, ns, 'keep', { query: '?cache_ttl=86400' }), 'kept');
  });

  // ------------------------------------------------------------------------------------------
  it('an edge that has not received the catalog answers 503 (code 10001) and says so in its status', async () => {
    const dead = await freePort();
    const eu = await c.startEdge(p, [], { nodeId: 'e-unsynced', waitSynced: false, primaryAddrs: `127.0.0.1:${dead}`, replicaAddrs: [] });
    try {
      await sleep(300);
      const st = await status(eu);
      assert.equal(st.role, 'edge');
      assert.equal(st.edge.synced, false, JSON.stringify(st));
      assert.notEqual(st.stream.state, 'streaming', JSON.stringify(st));
      assert.equal(st.edge.upstreams.length, 1);
      assert.equal(st.edge.upstreams[0].ready, false);
      assert.equal(metricValue(await metricsText(eu), 'edgekv_edge_synced'), 0);
      for (const [m, path, body] of [['GET', `${eu.ns(ns)}/values/keep`], ['PUT', `${eu.ns(ns)}/values/keep`, 'x'],
        ['GET', `/accounts/${p.accountId}/storage/kv/namespaces`], ['GET', '/user/tokens/verify']]) {
        expectError(await eu.api(m, path, { body }), 503, 10001, NOT_SYNCED);
      }
    } finally {
      await eu.kill('SIGKILL');
    }
  });

  // ------------------------------------------------------------------------------------------
  it('stream cut: the edge fails over to another upstream, resumes, and sees writes made during and after the cut', async (t) => {
    const s0 = await status(e1);
    const followed = [r1, r2].find((r) => r.replAddr === s0.stream.primary_addr);
    assert.ok(followed, `e1 follows a replica: ${JSON.stringify(s0.stream)}`);
    const other = followed === r1 ? r2 : r1;
    const kDuring = 'cut/during';
    const kAfter = 'cut/after';
    for (const k of [kDuring, kAfter]) expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(k)}`, { body: 'old' }));
    for (const k of [kDuring, kAfter]) await cacheOn(e1, ns, k, 'old');
    await followed.kill('SIGKILL');
    const tCut = performance.now();
    // a write during the cut (through the primary: e1 does not see it at write time)
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(kDuring)}`, { body: 'new-during' }));
    await timeUntil(t, `write during the cut of ${followed.nodeId} seen through e1`, async () =>
      isValue(await getValue(e1, ns, kDuring), 'new-during'));
    const s1 = await c.waitFor(async () => {
      const x = await status(e1);
      return x.stream.state === 'streaming' && x.stream.primary_addr !== followed.replAddr ? x : null;
    }, 10000, 'e1 streaming from another upstream');
    t.diagnostic(`e1 stream: ${s0.stream.primary_node_id} -> ${s1.stream.primary_node_id} after ${Math.round(performance.now() - tCut)} ms`);
    assert.equal(s1.stream.primary_addr, other.replAddr, `failed over to the other replica first: ${JSON.stringify(s1.stream)}`);
    assert.ok(s1.stream.connects > s0.stream.connects, `connects ${s0.stream.connects} -> ${s1.stream.connects}`);
    assert.equal(s1.stream.snapshots, s0.stream.snapshots, `resumed from its seq, no new catalog snapshot: ${JSON.stringify(s1.stream)}`);
    // a write after the cut
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(kAfter)}`, { body: 'new-after' }));
    await timeUntil(t, 'write after the failover seen through e1', async () => isValue(await getValue(e1, ns, kAfter), 'new-after'));
    // every edge still serves (the replica that is down is skipped)
    for (const e of edges) assertValue(e, kAfter, await getValue(e, ns, kAfter), 'new-after');

    // bring the replica back on the same repl port (the edges' --replicas name it)
    const back = await c.restart(followed, { replListen: followed.replAddr });
    assert.equal(back.replAddr, followed.replAddr);
    if (followed === r1) r1 = back; else r2 = back;
    await waitStreaming(c, back, { primary: p });
    await c.waitFor(async () => {
      const sts = await Promise.all(edges.map((e) => status(e)));
      return sts.every((x) => x.edge.upstreams.every((u) => u.ready));
    }, 10000, 'every edge reconnected to the restarted replica');
  });

  // ------------------------------------------------------------------------------------------
  it('no stale value outlives the cache TTL when invalidations cannot arrive (test clock)', async (t) => {
    // --repl-timeout-ms 60000: the stalled stream is not dropped during the test, so only the TTL
    // can end the stale entry; --upstream-timeout-ms 2500: a fetch sent to the stopped replica
    // fails over sooner than the default 5 s (it must stay above the upstreams' 1 s heartbeat
    // period: the RPC links use it as their silence timeout too).
    const UPSTREAM_TIMEOUT_MS = 2500;
    const e4 = await c.startEdge(p, [r1, r2], {
      nodeId: 'e4',
      args: ['--test-clock', '--cache-ttl-s', '30', '--repl-timeout-ms', '60000', '--upstream-timeout-ms', String(UPSTREAM_TIMEOUT_MS)],
    });
    const s0 = await status(e4);
    const followed = [r1, r2].find((r) => r.replAddr === s0.stream.primary_addr);
    assert.ok(followed, `e4 follows a replica: ${JSON.stringify(s0.stream)}`);
    const other = followed === r1 ? r2 : r1;
    const k = 'ttl/k';
    const kLong = 'ttl/long';
    for (const x of [k, kLong]) expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(x)}`, { body: 'old' }));
    await cacheOn(e4, ns, k, 'old');
    await cacheOn(e4, ns, kLong, 'old', '?cache_ttl=300');

    pause(followed);
    try {
      for (const x of [k, kLong]) expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(x)}`, { body: 'new' }));
      await c.waitFor(async () => isValue(await getValue(other, ns, k), 'new') && isValue(await getValue(other, ns, kLong), 'new'),
        5000, `${other.nodeId} has the new values`);
      // the invalidation cannot arrive: e4 still serves its cached (fresh) entries
      await sleep(300);
      assertValue(e4, k, await getValue(e4, ns, k), 'old', 'precondition (stream stalled, entry fresh): ');
      await e4.advanceClock(31);
      const m1 = await edgeMetrics(e4);
      const t0 = performance.now();
      const g = await getValue(e4, ns, k);
      const ms = Math.round(performance.now() - t0);
      const d = delta(m1, await edgeMetrics(e4));
      t.diagnostic(`after +31 s on e4: ttl/k refetched in ${ms} ms; e4 counters ${JSON.stringify(d)}`);
      assertValue(e4, k, g, 'new', `past the 30 s TTL (e4 counters for this GET: ${JSON.stringify(d)}; `
        + `${isValue(g, 'new') ? '' : await c.describe([e4])}): `);
      assert.equal(d.upstream_fetches, 1, `refetched: ${JSON.stringify(d)}`);
      assert.ok(ms < UPSTREAM_TIMEOUT_MS + 1000, `refetch took ${ms} ms`);
      // cache_ttl=300 on the first read: still fresh after 31 s, so still the cached value
      assertValue(e4, kLong, await getValue(e4, ns, kLong), 'old', 'per-request cache_ttl=300 honoured: ');
      const st = await status(e4);
      assert.equal(st.stream.primary_addr, followed.replAddr, `the stream did not fail over meanwhile: ${JSON.stringify(st.stream)}`);
    } finally {
      resume(followed);
    }
    await timeUntil(t, 'e4 invalidated ttl/long after its upstream resumed', async () => isValue(await getValue(e4, ns, kLong), 'new'),
      BOUND_MS + 1000);
    await e4.kill('SIGKILL');
  });

  // ------------------------------------------------------------------------------------------
  it('primary SIGKILLed: cached and uncached reads still work, writes fail fast with 503; after a restart writes work again', async (t) => {
    const cached = 'down/cached';
    const uncached = 'down/uncached';
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(cached)}`, { body: 'c-val' }));
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/${encodeURIComponent(uncached)}`, { body: 'u-val' }));
    for (const e of edges) await cacheOn(e, ns, cached, 'c-val');
    await c.waitFor(async () => {
      const ps = await status(p);
      const rs = await Promise.all([r1, r2].map((r) => status(r)));
      return rs.every((s) => s.last_seq === ps.last_seq);
    }, 10000, 'replicas caught up');
    const m0 = await Promise.all(edges.map((e) => edgeMetrics(e)));
    const replAddr = p.replAddr;
    await p.kill('SIGKILL');
    const tDown = performance.now();

    for (const [i, e] of edges.entries()) {
      // cached: answered locally
      assertValue(e, cached, await getValue(e, ns, cached), 'c-val', 'primary down, cached key: ');
      // uncached: fetched from a replica
      assertValue(e, uncached, await getValue(e, ns, uncached), 'u-val', 'primary down, uncached key: ');
      // other reads go to replicas
      const keys = expectOk(await e.api('GET', `${e.ns(ns)}/keys?prefix=down%2F`)).map((x) => x.name);
      assert.deepEqual(keys, [cached, uncached]);
      expectOk(await e.api('GET', `${nsList()}`));
      const d = delta(m0[i], await edgeMetrics(e));
      assert.equal(d.hits, 1, `${e.nodeId}: the cached key was a hit: ${JSON.stringify(d)}`);
      assert.equal(d.upstream_fetches, 1, `${e.nodeId}: ${JSON.stringify(d)}`);
      assert.equal(d.upstream_failures, 0, `${e.nodeId}: ${JSON.stringify(d)}`);
    }
    // writes: 503, Retry-After, code 10001, fast
    const writes = [
      ['PUT', `${e1.ns(ns)}/values/down%2Fw`, { body: 'x' }],
      ['DELETE', `${e1.ns(ns)}/values/${encodeURIComponent(cached)}`, {}],
      ['PUT', `${e1.ns(ns)}/bulk`, { json: [{ key: 'down/b', value: 'x' }] }],
      ['POST', `${e1.ns(ns)}/bulk/delete`, { json: ['down/b'] }],
      ['POST', nsList(), { json: { title: 'while-down' } }],
      ['POST', `${acct()}/tokens`, { json: { name: 'while-down', permissions: ['kv:read'] } }],
    ];
    const durations = [];
    for (const e of edges) {
      for (const [m, path, o] of writes) {
        const t0 = performance.now();
        const r = await e.api(m, path, o);
        const ms = Math.round(performance.now() - t0);
        durations.push(ms);
        expectError(r, 503, 10001, UNAVAILABLE);
        assert.equal(r.headers.get('retry-after'), '1', `${e.nodeId} ${m} ${path}: Retry-After`);
        assert.ok(ms < 1000, `${e.nodeId} ${m} ${path}: took ${ms} ms`);
      }
    }
    t.diagnostic(`503 writes with the primary down: max ${Math.max(...durations)} ms over ${durations.length}`);
    // the cached key is still there (the DELETE did not happen)
    for (const e of edges) assertValue(e, cached, await getValue(e, ns, cached), 'c-val');

    // restart the primary: same data dir, same repl port
    p = await c.restart(p, { replListen: replAddr });
    assert.equal(p.replAddr, replAddr);
    t.diagnostic(`primary down for ${Math.round(performance.now() - tDown)} ms`);
    const tUp = performance.now();
    let firstOk = null;
    await c.waitFor(async () => {
      const r = await e1.api('PUT', `${e1.ns(ns)}/values/down%2Fafter`, { body: 'after-restart' });
      if (r.status === 200) { firstOk = r; return true; }
      if (r.status !== 503) throw new Error(`unexpected answer while the primary restarts: ${r.status} ${r.text}`);
      return false;
    }, 15000, 'a write through e1 succeeds after the primary restart', 50);
    expectOk(firstOk);
    t.diagnostic(`first successful write through e1 ${Math.round(performance.now() - tUp)} ms after the restart`);
    assertValue(e1, 'down/after', await getValue(e1, ns, 'down/after'), 'after-restart', 'read-your-write after recovery: ');
    await untilEverywhere(t, [e2, e3], ns, 'down/after', 'after-restart', 'write after recovery seen through e2, e3');
    // every edge writes again and every edge converges on each other's writes
    for (const e of [e2, e3]) {
      await c.waitFor(async () => (await e.api('PUT', `${e.ns(ns)}/values/down%2F${e.nodeId}`, { body: e.nodeId })).status === 200,
        10000, `a write through ${e.nodeId} succeeds after the restart`, 50);
    }
    await untilEverywhere(t, edges, ns, 'down/e2', 'e2', 'e2\'s write after recovery through every edge');
    await untilEverywhere(t, edges, ns, 'down/e3', 'e3', 'e3\'s write after recovery through every edge');
    expectOk(await e2.api('DELETE', `${e2.ns(ns)}/values/${encodeURIComponent(cached)}`));
    await untilEverywhere(t, edges, ns, cached, null, 'delete after recovery through every edge');
    for (const r of [r1, r2]) await waitStreaming(c, r, { primary: p });
  });
});
