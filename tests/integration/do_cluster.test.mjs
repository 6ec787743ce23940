// Durable Objects in a cluster (docs/API.md "Durable Objects": on a replica or an edge every
// route is forwarded to the primary, the objects' owner): the same answers through primary,
// replica and edge; storage replicated (converged checksums, a promoted replica serves it);
// concurrent compare-and-set increments from every node lose nothing and double nothing; and
// the same load across a kill -9 + restart of the primary loses no acknowledged increment.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { expectOk, expectError, sleep } from './lib/harness.mjs';
import { Cluster, waitStreaming, waitEdgeSynced, waitConverged, promote } from './lib/cluster.mjs';
import { nsRoot, nsPath, objPath, createNs, newId, storage, list } from './lib/do_api.mjs';
import { startUpstream } from './lib/do_upstream.mjs';

const SAN = process.env.EDGEKV_SANITIZED === '1';
const CLIENTS = SAN ? 6 : 16;
const PER_CLIENT = SAN ? 40 : 200;
const OBJECTS = 8;

// One compare-and-set increment of key "n" on obj through node (retried on succeeded:false).
// stats: { acked, unknown, errors, lastError }. Returns true when acknowledged; false when
// the outcome is unknown (an error answer or a network error after the transaction was sent,
// or giving up because `running()` turned false).
async function increment(node, ns, obj, stats, running = () => true) {
  for (;;) {
    if (!running()) return false;
    let cur;
    try {
      const g = await storage(node(), ns, obj, 'get', { keys: ['n'] });
      if (g.status !== 200 || g.body?.success !== true) {
        stats.errors++; stats.lastError = `get -> ${g.status} ${g.text.slice(0, 200)}`;
        await sleep(20);
        continue;
      }
      cur = g.body.result.n;
    } catch (e) {
      stats.errors++; stats.lastError = `get: ${e.message}`;
      await sleep(20);
      continue;
    }
    const check = cur === undefined ? { key: 'n', exists: false } : { key: 'n', value: cur };
    const next = (cur ?? 0) + 1;
    let r;
    try {
      r = await storage(node(), ns, obj, 'transaction', { checks: [check], then: [{ op: 'put', key: 'n', value: next }], else: [] });
    } catch (e) {
      stats.errors++; stats.unknown++; stats.lastError = `transaction: ${e.message}`;
      await sleep(20);
      continue;
    }
    if (r.status === 200 && r.body?.success === true) {
      if (r.body.result?.succeeded === true) { stats.acked++; return true; }
      if (r.body.result?.succeeded === false) { stats.conflicts++; continue; }
    }
    stats.errors++; stats.unknown++; stats.lastError = `transaction -> ${r.status} ${r.text.slice(0, 200)}`;
    await sleep(20);
  }
}

const newStats = () => ({ acked: 0, unknown: 0, errors: 0, conflicts: 0, lastError: null });

describe('durable objects in a cluster: primary, replica, edge', { timeout: 300000 }, () => {
  const c = new Cluster('do');
  let p;
  let r;
  let e;
  let up;
  let ns;
  const nodes = () => [p, r, e];
  before(async () => {
    up = await startUpstream();
    p = await c.startPrimary({ nodeId: 'p1', args: ['--do-alarm-retry-base-ms', '100'] });
    r = await c.startReplica(p, { nodeId: 'r1', replListen: '127.0.0.1:0' });
    await waitStreaming(c, r, { primary: p });
    e = await c.startEdge(p, [r], { nodeId: 'e1' });
    ns = (await createNs(p, { script: `${up.url}/cl` })).id;
  });
  after(async () => {
    await c.cleanup();
    await up?.close();
  });

  // Readiness: once the replica says streaming and the edge says synced (the documented
  // signals), DO routes through them must work at once, not answer 503 "owner unreachable".
  it('the first DO call through the replica and the edge, right after they report ready, succeeds', async () => {
    for (const n of [r, e]) {
      const l = await n.api('GET', `${nsRoot(n)}?per_page=1000`);
      assert.deepEqual(expectOk(l), expectOk(await p.api('GET', `${nsRoot(p)}?per_page=1000`)), n.nodeId);
    }
  });

  it('namespace routes through replica and edge: writes reach the primary, reads are the primary\'s', async () => {
    // (readiness is the previous test's subject: here wait until both forward)
    await c.waitFor(async () => (await r.api('GET', nsRoot(r))).status === 200 && (await e.api('GET', nsRoot(e))).status === 200,
      15000, 'DO routes forwarded by r1 and e1');
    const viaR = expectOk(await r.api('POST', nsRoot(r), { json: { name: 'made-on-replica', class: 'R' } }));
    const viaE = expectOk(await e.api('POST', nsRoot(e), { json: { name: 'made-on-edge', class: 'E', use_sqlite: false } }));
    assert.deepEqual(expectOk(await p.api('GET', nsPath(p, viaR.id))), viaR);
    assert.deepEqual(expectOk(await p.api('GET', nsPath(p, viaE.id))), viaE);
    const pl = await p.api('GET', `${nsRoot(p)}?per_page=5`);
    for (const n of [r, e]) {
      const l = await n.api('GET', `${nsRoot(n)}?per_page=5`);
      assert.deepEqual(expectOk(l), expectOk(pl), `${n.nodeId} list`);
      assert.deepEqual(l.body.result_info, pl.body.result_info, `${n.nodeId} result_info`);
      expectError(await n.api('POST', nsRoot(n), { json: { name: 'made-on-replica', class: 'X' } }), 400, 10069);
      expectError(await n.api('GET', nsPath(n, '0'.repeat(32))), 404, 10066, `Durable Object namespace ID '${'0'.repeat(32)}' not found.`);
    }
    expectOk(await e.api('PUT', nsPath(e, viaR.id), { json: { class: 'R2' } }));
    assert.equal(expectOk(await r.api('GET', nsPath(r, viaR.id))).class, 'R2');
    assert.equal(expectOk(await r.api('DELETE', nsPath(r, viaE.id))), null);
    expectError(await p.api('GET', nsPath(p, viaE.id)), 404, 10066);
  });

  it('ids, storage, transactions, lists, alarms and calls give the same answers on every node', async () => {
    const ids = await Promise.all(nodes().map((n) => newId(n, ns, 'shared')));
    assert.equal(new Set(ids).size, 1, `idFromName differs between nodes: ${ids}`);
    const obj = ids[0];
    expectOk(await storage(r, ns, obj, 'put', { entries: { fromReplica: 1 } }));
    expectOk(await storage(e, ns, obj, 'put', { entries: { fromEdge: { x: [1, 2] } } }));
    expectOk(await storage(p, ns, obj, 'put', { entries: { fromPrimary: 'p' } }));
    const want = { fromEdge: { x: [1, 2] }, fromPrimary: 'p', fromReplica: 1 };
    for (const n of nodes()) {
      assert.deepEqual(expectOk(await storage(n, ns, obj, 'get', { keys: ['fromPrimary', 'fromReplica', 'fromEdge', 'none'] })), want, n.nodeId);
      assert.deepEqual(expectOk(await list(n, ns, obj, { limit: '2' })).map((x) => x.key), ['fromEdge', 'fromPrimary'], n.nodeId);
    }
    // read-your-write through every node, immediately
    for (const [i, n] of nodes().entries()) {
      expectOk(await storage(n, ns, obj, 'put', { entries: { ryw: i } }));
      for (const m of nodes()) assert.deepEqual(expectOk(await storage(m, ns, obj, 'get', { keys: ['ryw'] })), { ryw: i }, `${n.nodeId} -> ${m.nodeId}`);
    }
    assert.deepEqual(expectOk(await storage(e, ns, obj, 'transaction', { checks: [{ key: 'ryw', value: 2 }], then: [{ op: 'delete', key: 'ryw' }] })), { succeeded: true });
    assert.deepEqual(expectOk(await storage(r, ns, obj, 'transaction', { checks: [{ key: 'ryw', exists: true }], then: [] })), { succeeded: false });
    assert.deepEqual(expectOk(await storage(r, ns, obj, 'delete', { keys: ['fromEdge', 'zzz'] })), { deleted: 1 });
    const pObjs = expectOk(await p.api('GET', `${nsPath(p, ns)}/objects`));
    for (const n of [r, e]) assert.deepEqual(expectOk(await n.api('GET', `${nsPath(n, ns)}/objects`)), pObjs, n.nodeId);
    // errors are the primary's too
    const foreign = await newId(p, (await createNs(p)).id, 'shared');
    for (const n of [r, e]) {
      expectError(await storage(n, ns, foreign, 'get', { keys: ['a'] }), 400, 10068, 'Durable Object ID is not valid for this namespace.');
      expectError(await storage(n, ns, 'abc', 'get', { keys: ['a'] }), 400, 10067, 'Invalid Durable Object ID: must be 64 hex digits');
      expectError(await storage(n, ns, obj, 'put', { entries: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, i])) }),
        400, 10072, 'Maximum number of key value pairs is 128. 129 pairs were provided.');
      expectError(await list(n, ns, obj, { start: 'a', startAfter: 'b' }), 400, 10074, 'list() cannot be called with both start and startAfter values.');
    }
    // alarms set through the edge, read through the replica, delivered by the owner
    const aobj = await newId(e, ns, 'alarm-through-edge');
    const at = Date.now() + 800;
    assert.deepEqual(expectOk(await e.api('PUT', `${objPath(e, ns, aobj)}/alarm`, { json: { scheduledTime: at }, headers: { 'edgekv-object-name': 'alarm-through-edge' } })), { scheduledTime: at });
    assert.deepEqual(expectOk(await r.api('GET', `${objPath(r, ns, aobj)}/alarm`)), { scheduledTime: at });
    const [d] = await up.waitRequests((q) => q.isAlarm && q.objectId === aobj, 1, 15000, 'alarm set through the edge');
    assert.deepEqual(d.json, { namespaceId: ns, objectId: aobj, scheduledTime: at, retryCount: 0, isRetry: false });
    assert.equal(d.headers['edgekv-object-name'], 'alarm-through-edge');
    await c.waitFor(async () => expectOk(await e.api('GET', `${objPath(e, ns, aobj)}/alarm`)).scheduledTime === null, 10000, 'alarm removed');
    await sleep(500);
    assert.equal(up.alarms(aobj).length, 1, 'the alarm was delivered more than once (by more than one node?)');
    // calls through every node reach the script once, with the same headers, one at a time
    up.on({ path: '/cl/slow' }, { status: 200, body: 'ok', delayMs: 100 });
    const cobj = await newId(p, ns, 'call-target');
    const rs = await Promise.all(Array.from({ length: 9 }, (_, i) => {
      const n = nodes()[i % 3];
      return n.fetch('POST', `${objPath(n, ns, cobj)}/fetch/slow?from=${n.nodeId}`, { body: `from ${n.nodeId}`, headers: { 'x-from': n.nodeId } })
        .then(async (res) => ({ status: res.status, text: await res.text(), node: n.nodeId }));
    }));
    for (const x of rs) assert.deepEqual([x.status, x.text], [200, 'ok'], x.node);
    const calls = up.filter((q) => q.objectId === cobj);
    assert.equal(calls.length, 9);
    assert.equal(up.maxConcurrency(cobj), 1, 'calls to one object through different nodes overlapped');
    for (const q of calls) {
      assert.equal(q.path, '/cl/slow');
      assert.equal(q.headers['edgekv-namespace-id'], ns);
      assert.equal(q.headers.authorization, undefined);
      assert.equal(q.text, `from ${q.headers['x-from']}`);
      assert.equal(q.query, `from=${q.headers['x-from']}`);
    }
  });

  it(`${CLIENTS} clients x ${PER_CLIENT} compare-and-set increments on ${OBJECTS} objects via all nodes: exact counts`, async (t) => {
    const cns = (await createNs(p, { name: 'cas' })).id;
    const objs = [];
    for (let i = 0; i < OBJECTS; i++) objs.push(await newId(p, cns, `counter-${i}`));
    const perObj = new Map(objs.map((o) => [o, newStats()]));
    const clients = Array.from({ length: CLIENTS }, (_, ci) => (async () => {
      const node = nodes()[ci % 3];
      for (let k = 0; k < PER_CLIENT; k++) {
        const o = objs[(ci + k) % OBJECTS];
        await increment(() => node, cns, o, perObj.get(o));
      }
    })());
    await Promise.all(clients);
    const total = [...perObj.values()].reduce((a, s) => a + s.acked, 0);
    const errors = [...perObj.values()].reduce((a, s) => a + s.errors, 0);
    const conflicts = [...perObj.values()].reduce((a, s) => a + s.conflicts, 0);
    t.diagnostic(`acked ${total}, conflicts (retried) ${conflicts}, errors ${errors}`);
    assert.equal(total, CLIENTS * PER_CLIENT);
    assert.equal(errors, 0, `errors during the load: last ${[...perObj.values()].map((s) => s.lastError).filter(Boolean)[0]}`);
    for (const o of objs) {
      for (const n of nodes()) {
        const got = expectOk(await storage(n, cns, o, 'get', { keys: ['n'] })).n;
        assert.equal(got, perObj.get(o).acked, `${n.nodeId}: counter of ${o.slice(0, 8)} is ${got}, acknowledged increments ${perObj.get(o).acked}`);
      }
    }
    // storage replicated: converged, and the replica's own copy has the counters
    await waitConverged(c, p, [r]);
  });

  it('kill -9 of the primary during the increment load loses no acknowledged increment', async (t) => {
    const kns = (await createNs(p, { name: 'cas-crash' })).id;
    const objs = [];
    for (let i = 0; i < OBJECTS; i++) objs.push(await newId(p, kns, `crash-${i}`));
    const perObj = new Map(objs.map((o) => [o, newStats()]));
    const clientsN = SAN ? 6 : 12;
    let stop = false;
    const running = () => !stop;
    const clients = Array.from({ length: clientsN }, (_, ci) => (async () => {
      for (let k = 0; running(); k++) {
        const o = objs[(ci + k) % OBJECTS];
        // the primary is re-read each time: it is replaced by its restart
        await increment(() => nodes()[ci % 3], kns, o, perObj.get(o), running);
      }
    })());
    const acked = () => [...perObj.values()].reduce((a, s) => a + s.acked, 0);
    await c.waitFor(() => acked() >= (SAN ? 50 : 300), 60000, 'increments before the kill', 20);
    const replAddr = p.replAddr;
    await p.kill('SIGKILL');
    const atKill = acked();
    await sleep(300);
    p = await c.restart(p, { replListen: replAddr });
    await waitStreaming(c, r, { primary: p, timeoutMs: 30000 });
    await waitEdgeSynced(c, e, { timeoutMs: 30000 });
    await c.waitFor(() => acked() >= atKill + (SAN ? 50 : 300), 90000, 'increments after the restart', 20);
    stop = true;
    await Promise.all(clients);
    t.diagnostic(`acked ${acked()} (at kill ${atKill}), unknown outcomes ${[...perObj.values()].reduce((a, s) => a + s.unknown, 0)}`);
    for (const o of objs) {
      const s = perObj.get(o);
      for (const n of nodes()) {
        const got = expectOk(await storage(n, kns, o, 'get', { keys: ['n'] })).n ?? 0;
        assert.ok(got >= s.acked, `${n.nodeId}: ${o.slice(0, 8)} holds ${got} < ${s.acked} acknowledged increments (lost)`);
        assert.ok(got <= s.acked + s.unknown, `${n.nodeId}: ${o.slice(0, 8)} holds ${got} > ${s.acked} acknowledged + ${s.unknown} unknown (invented)`);
      }
    }
    await waitConverged(c, p, [r]);
  });

  it('a promoted replica serves the replicated storage and alarms', async () => {
    const pns = (await createNs(p, { name: 'promote', script: `${up.url}/pr` })).id;
    const obj = await newId(p, pns, 'keep');
    expectOk(await storage(p, pns, obj, 'put', { entries: { a: { deep: [1, 'x'] }, b: 2 } }));
    const at = Date.now() + 3600e3;
    expectOk(await p.api('PUT', `${objPath(p, pns, obj)}/alarm`, { json: { scheduledTime: at } }));
    await waitConverged(c, p, [r]);
    await p.kill('SIGKILL');
    expectOk(await promote(r));
    await c.waitFor(async () => {
      const g = await storage(r, pns, obj, 'get', { keys: ['a', 'b'] });
      return g.status === 200 && g.body.success === true ? g : null;
    }, 20000, 'the promoted replica answers DO reads');
    assert.deepEqual(expectOk(await storage(r, pns, obj, 'get', { keys: ['a', 'b'] })), { a: { deep: [1, 'x'] }, b: 2 });
    assert.deepEqual(expectOk(await r.api('GET', `${objPath(r, pns, obj)}/alarm`)), { scheduledTime: at });
    assert.equal(await newId(r, pns, 'keep'), obj, 'ids derive the same on the promoted node');
    expectOk(await storage(r, pns, obj, 'put', { entries: { c: 3 } }));
    assert.deepEqual(expectOk(await storage(r, pns, obj, 'get', { keys: ['a', 'b', 'c'] })), { a: { deep: [1, 'x'] }, b: 2, c: 3 });
  });
});
