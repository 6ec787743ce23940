// Replication, primary -> replicas, with real processes on loopback (the replication spec:
// roles, status/checksum endpoints, read-only replicas, convergence, resume, snapshot bootstrap,
// stalled-replica detection). Failover is in failover.test.mjs, the 1 GB bootstrap in
// bootstrap_1gb.test.mjs. Helpers: lib/cluster.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, expectOk, expectError, runCli, multipart, sleep, sha256 } from './lib/harness.mjs';
import {
  Cluster, call, status, tryStatus, checksum, promote, metricsText, metricValue, logLinesWith,
  waitStreaming, waitConverged, startLoad, verifyAcked, pause, resume,
} from './lib/cluster.mjs';

const isInt = (v) => Number.isInteger(v);
const HEX = /^[0-9a-f]+$/i;
const out = (r) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

// The 403 every write on a replica gets (spec: "Writes ... on a replica").
const replicaWriteMessage = (primary) =>
  `this node is a read-only replica; send writes to the primary ${primary.nodeId} at http://127.0.0.1:${primary.port}`;

describe('replication: roles, status, read-only replicas', { timeout: 120000 }, () => {
  const c = new Cluster('basics');
  let p; // primary p1
  let r; // replica r1
  let s; // a standalone node, for the status shape of the default role
  let ns;
  before(async () => {
    p = await c.startPrimary({ nodeId: 'p1' });
    r = await c.startReplica(p, { nodeId: 'r1' });
    s = await startServer();
    ns = await p.createNamespace('basics-main');
    await waitStreaming(c, r, { primary: p });
  });
  after(async () => {
    await s?.stop();
    await c.cleanup();
  });

  // Status shapes of the three roles, as documented (types, role-specific sections, addresses).
  it('status endpoint: primary, replica and standalone shapes', async () => {
    await waitConverged(c, p, [r]);
    const ps = await status(p);
    assert.equal(ps.role, 'primary');
    assert.equal(ps.node_id, 'p1');
    assert.ok(isInt(ps.epoch) && ps.epoch >= 0, `epoch ${ps.epoch}`);
    assert.ok(typeof ps.history_id === 'string' && HEX.test(ps.history_id), `history_id ${ps.history_id}`);
    assert.ok('history2_id' in ps && 'history2_seq' in ps, `history2 fields: ${JSON.stringify(ps)}`);
    assert.ok(isInt(ps.last_seq) && ps.last_seq > 0, `last_seq ${ps.last_seq} (a namespace was created)`);
    assert.ok(isInt(ps.first_log_seq), `first_log_seq ${ps.first_log_seq}`);
    assert.ok(ps.first_log_seq <= ps.last_seq, `first_log_seq ${ps.first_log_seq} > last_seq ${ps.last_seq}`);
    assert.equal(ps.fenced, false);
    assert.equal(ps.writable, true);
    assert.match(ps.repl_listen, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(ps.repl_listen, '127.0.0.1:0', 'repl_listen must be the bound port');
    assert.ok(Array.isArray(ps.replicas), 'primary: replicas[]');
    assert.equal(ps.replicas.length, 1, JSON.stringify(ps.replicas));
    const link = ps.replicas[0];
    assert.equal(link.node_id, 'r1');
    assert.equal(link.state, 'streaming');
    assert.equal(typeof link.addr, 'string');
    for (const f of ['acked_seq', 'sent_seq', 'lag_seqs', 'lag_ms']) assert.ok(isInt(link[f]), `replicas[0].${f}: ${link[f]}`);
    assert.equal(link.acked_seq, ps.last_seq, 'converged replica has acked everything');
    assert.equal(link.lag_seqs, 0);
    assert.deepEqual(ps.dropped, { timeout: 0, lag: 0, protocol: 0 });
    assert.ok(ps.replica === undefined || ps.replica === null, 'no replica section on a primary');

    // the replica learns the primary's latest seq from the stream / heartbeats
    const rs = await c.waitFor(async () => {
      const x = await status(r);
      return x.replica.primary_latest_seq === ps.last_seq && x.replica.lag_seqs === 0 ? x : null;
    }, 5000, `replica to report primary_latest_seq ${ps.last_seq} and lag_seqs 0`);
    assert.equal(rs.role, 'replica');
    assert.equal(rs.node_id, 'r1');
    assert.equal(rs.fenced, false);
    assert.equal(rs.writable, false);
    assert.equal(rs.epoch, ps.epoch);
    assert.equal(rs.history_id, ps.history_id);
    assert.equal(rs.last_seq, ps.last_seq);
    assert.equal(rs.repl_listen, null, 'a replica started without --repl-listen binds nothing');
    const rr = rs.replica;
    assert.equal(rr.state, 'streaming');
    assert.equal(rr.primary_addr, p.replAddr);
    assert.equal(rr.primary_node_id, 'p1');
    assert.equal(rr.primary_url, `http://127.0.0.1:${p.port}`);
    assert.equal(rr.applied_seq, ps.last_seq);
    assert.equal(rr.primary_latest_seq, ps.last_seq);
    assert.equal(rr.lag_seqs, 0);
    assert.ok(isInt(rr.lag_ms) && rr.lag_ms >= 0, `lag_ms ${rr.lag_ms}`);
    for (const f of ['snapshots', 'snapshot_attempts', 'connects', 'discarded_records']) {
      assert.ok(isInt(rr[f]) && rr[f] >= 0, `replica.${f}: ${rr[f]}`);
    }
    assert.ok(rr.connects >= 1, `connects ${rr.connects}`);
    assert.ok(rr.snapshots <= rr.snapshot_attempts, 'completed snapshots <= attempts');
    assert.equal(rr.discarded_records, 0);
    assert.ok(rs.replicas === undefined || rs.replicas === null, 'no replicas[] on a replica');

    const ss = await status(s);
    assert.equal(ss.role, 'standalone');
    assert.equal(ss.writable, true);
    assert.equal(ss.fenced, false);
    assert.equal(ss.repl_listen, null);
    assert.ok(isInt(ss.last_seq) && isInt(ss.epoch));
    assert.ok(ss.replica === undefined || ss.replica === null);
  });

  // A namespace (and its later rename / delete) created on the primary shows up on the replica.
  it('namespaces created, renamed and deleted on the primary are seen on the replica', async () => {
    const acct = `/accounts/${p.accountId}/storage/kv/namespaces`;
    const id = await p.createNamespace('repl-visible');
    const got = await c.waitFor(async () => {
      const x = await r.api('GET', `${acct}/${id}`);
      return x.status === 200 ? x : null;
    }, 10000, 'namespace on the replica');
    assert.deepEqual(expectOk(got), expectOk(await p.api('GET', `${acct}/${id}`)));
    const listed = expectOk(await r.api('GET', `${acct}?per_page=100`));
    assert.ok(listed.some((n) => n.id === id && n.title === 'repl-visible'), JSON.stringify(listed));

    expectOk(await p.api('PUT', `${acct}/${id}`, { json: { title: 'repl-renamed' } }));
    await c.waitFor(async () => {
      const x = await r.api('GET', `${acct}/${id}`);
      return x.status === 200 && x.body.result.title === 'repl-renamed';
    }, 10000, 'rename on the replica');

    expectOk(await p.api('PUT', `${r.ns(id)}/values/k`, { body: 'in-new-ns' }));
    await c.waitFor(async () => {
      const x = await r.fetch('GET', `${r.ns(id)}/values/k`);
      return x.status === 200 && (await x.text()) === 'in-new-ns';
    }, 10000, 'key of the new namespace on the replica');

    expectOk(await p.api('DELETE', `${acct}/${id}`));
    await c.waitFor(async () => (await r.api('GET', `${acct}/${id}`)).status === 404, 10000, 'delete on the replica');
    expectError(await r.api('GET', `${acct}/${id}`), 404, 10013);
  });

  // Every read route works on the replica with the primary's token and returns what the
  // primary returns.
  it('reads and lists on the replica work with the primary token', async () => {
    const P = p.ns(ns);
    const exp = Math.floor(Date.now() / 1000) + 7200;
    const mp = multipart([{ name: 'value', data: 'with-meta' }, { name: 'metadata', data: '{"a":[1,"x"]}' }]);
    expectOk(await p.api('PUT', `${P}/values/read%2Fmeta?expiration=${exp}`,
      { body: mp.body, headers: { 'content-type': mp.contentType } }));
    const bin = randomBytes(3000);
    expectOk(await p.api('PUT', `${P}/values/read%2Fbin`, { body: bin }));
    const items = [];
    for (let i = 0; i < 25; i++) items.push({ key: `read/list/${String(i).padStart(2, '0')}`, value: `v${i}`, metadata: { i } });
    expectOk(await p.api('PUT', `${P}/bulk`, { json: items }));
    await waitConverged(c, p, [r]);

    const g = await r.fetch('GET', `${P}/values/read%2Fmeta`);
    assert.equal(g.status, 200);
    assert.equal(await g.text(), 'with-meta');
    assert.equal(g.headers.get('expiration'), String(exp));
    const gb = await r.fetch('GET', `${P}/values/read%2Fbin`);
    assert.equal(gb.status, 200);
    assert.equal(sha256(Buffer.from(await gb.arrayBuffer())), sha256(bin));
    assert.deepEqual(expectOk(await r.api('GET', `${P}/metadata/read%2Fmeta`)), { a: [1, 'x'] });
    expectError(await r.api('GET', `${P}/values/read%2Fmissing`), 404, 10009);

    // list with prefix and pagination: same pages as on the primary
    const pages = async (node) => {
      const names = [];
      let cursor = '';
      for (let i = 0; i < 10; i++) {
        const q = new URLSearchParams({ prefix: 'read/list/', limit: '10', ...(cursor ? { cursor } : {}) });
        const x = await node.api('GET', `${P}/keys?${q}`);
        names.push(...expectOk(x).map((k) => `${k.name}:${JSON.stringify(k.metadata)}`));
        cursor = x.body.result_info.cursor;
        if (!cursor) break;
      }
      return names;
    };
    const onReplica = await pages(r);
    assert.equal(onReplica.length, 25);
    assert.deepEqual(onReplica, await pages(p));

    // bulk get is a POST but a read: it must work on a replica
    const bg = expectOk(await r.api('POST', `${P}/bulk/get`,
      { json: { keys: ['read/meta', 'read/list/03', 'read/nope'], withMetadata: true } }));
    assert.deepEqual(bg.values['read/list/03'], { value: 'v3', metadata: { i: 3 } });
    assert.equal(bg.values['read/meta'].value, 'with-meta');
    assert.equal(bg.values['read/nope'], null);

    const nsList = expectOk(await r.api('GET', `/accounts/${p.accountId}/storage/kv/namespaces`));
    assert.deepEqual(nsList, expectOk(await p.api('GET', `/accounts/${p.accountId}/storage/kv/namespaces`)));
    assert.ok(nsList.some((n) => n.id === ns));
    const accts = expectOk(await r.api('GET', '/accounts'));
    assert.deepEqual(accts.map((a) => a.id), [p.accountId]);
    assert.equal(expectOk(await r.api('GET', '/user/tokens/verify')).status, 'active');
    assert.deepEqual(expectOk(await r.api('GET', `/accounts/${p.accountId}/tokens`)).map((t) => t.id).sort(),
      expectOk(await p.api('GET', `/accounts/${p.accountId}/tokens`)).map((t) => t.id).sort());
  });

  // Tokens are replicated: one created on the primary works on the replica, a revoked one stops.
  it('tokens created and revoked on the primary take effect on the replica', async () => {
    const tok = expectOk(await p.api('POST', `/accounts/${p.accountId}/tokens`, { json: { name: 'ro', permissions: ['kv:read'] } }));
    const asTok = { auth: false, headers: { authorization: `Bearer ${tok.value}` } };
    await c.waitFor(async () => (await r.api('GET', `${r.ns(ns)}/keys`, asTok)).status === 200, 10000,
      'new token accepted by the replica');
    // the read-only token cannot read the checksum (operator only), nor can the admin token
    const cs = await call(r, 'GET', '/_edgekv/replication/checksum', { token: tok.value });
    assert.notEqual(cs.status, 200, `checksum with a kv:read token: ${cs.text}`);
    const csa = await call(r, 'GET', '/_edgekv/replication/checksum', { token: p.token });
    assert.equal(csa.status, 403, `checksum with an account admin token: ${csa.text}`);
    assert.equal(csa.body.errors[0].code, 10000);
    const cs0 = await call(r, 'GET', '/_edgekv/replication/checksum');
    assert.notEqual(cs0.status, 200, `checksum without a token: ${cs0.text}`);
    assert.equal(cs0.body.success, false);

    expectOk(await p.api('DELETE', `/accounts/${p.accountId}/tokens/${tok.id}`));
    await c.waitFor(async () => (await r.api('GET', `${r.ns(ns)}/keys`, asTok)).status === 403, 10000,
      'revoked token refused by the replica');
  });

  // Every kind of write on a replica: 403 / 10001 naming the primary and its URL; nothing changes.
  it('writes on a replica get 403 with a message naming the primary', async () => {
    const P = r.ns(ns);
    const acct = `/accounts/${p.accountId}`;
    expectOk(await p.api('PUT', `${P}/values/ro-key`, { body: 'original' }));
    const tok = expectOk(await p.api('POST', `${acct}/tokens`, { json: { name: 'keep', permissions: ['kv:read'] } }));
    await waitConverged(c, p, [r]);
    const before = await checksum(r);

    const mp = multipart([{ name: 'value', data: 'm' }, { name: 'metadata', data: '{}' }]);
    const attempts = [
      ['PUT', `${P}/values/ro-key`, { body: 'changed' }],
      ['PUT', `${P}/values/ro-new`, { body: mp.body, headers: { 'content-type': mp.contentType } }],
      ['DELETE', `${P}/values/ro-key`, {}],
      ['PUT', `${P}/bulk`, { json: [{ key: 'ro-bulk', value: 'x' }] }],
      ['POST', `${P}/bulk/delete`, { json: ['ro-key'] }],
      ['DELETE', `${P}/bulk`, { json: ['ro-key'] }],
      ['POST', `${acct}/storage/kv/namespaces`, { json: { title: 'ro-ns' } }],
      ['PUT', `${acct}/storage/kv/namespaces/${ns}`, { json: { title: 'ro-renamed' } }],
      ['DELETE', `${acct}/storage/kv/namespaces/${ns}`, {}],
      ['POST', `${acct}/tokens`, { json: { name: 'ro-tok', permissions: ['kv:read'] } }],
      ['DELETE', `${acct}/tokens/${tok.id}`, {}],
    ];
    for (const [method, path, o] of attempts) {
      expectError(await r.api(method, path, o), 403, 10001, replicaWriteMessage(p));
    }
    // nothing was written anywhere
    const g = await r.fetch('GET', `${P}/values/ro-key`);
    assert.equal(await g.text(), 'original');
    assert.equal((await p.fetch('GET', `${P}/values/ro-new`)).status, 404);
    assert.equal(expectOk(await r.api('GET', `${acct}/storage/kv/namespaces/${ns}`)).title, 'basics-main');
    const after = await checksum(r);
    assert.deepEqual(after, before, 'refused writes changed the replica');
  });

  // The checksum is equal on converged nodes and actually depends on the data.
  it('checksum: equal on converged nodes, changes with the data', async () => {
    const a = await waitConverged(c, p, [r]);
    assert.match(a.checksum, /^[0-9a-f]{16}$/);
    assert.ok(isInt(a.keys) && a.keys > 0, `keys ${a.keys}`);
    assert.ok(isInt(a.last_seq));
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/cs-probe`, { body: randomBytes(16).toString('hex') }));
    const b = await waitConverged(c, p, [r]);
    assert.ok(b.last_seq > a.last_seq, `last_seq ${a.last_seq} -> ${b.last_seq}`);
    assert.notEqual(b.checksum, a.checksum, 'a write did not change the checksum');
    assert.ok(b.keys > a.keys, `keys ${a.keys} -> ${b.keys} after adding a key`);
    expectOk(await p.api('DELETE', `${p.ns(ns)}/values/cs-probe`));
    const c2 = await waitConverged(c, p, [r]);
    assert.equal(c2.checksum, a.checksum, 'deleting the key restores the previous checksum');
    assert.equal(c2.keys, a.keys);
  });

  // Prometheus metrics of both roles, consistent with the status.
  it('/metrics has the replication series', async () => {
    await waitConverged(c, p, [r]);
    const ps = await status(p);
    await c.waitFor(async () => (await status(r)).replica.lag_seqs === 0, 5000, 'replica lag_seqs 0');
    const pm = await metricsText(p);
    assert.equal(metricValue(pm, 'edgekv_repl_last_seq'), ps.last_seq);
    assert.equal(metricValue(pm, 'edgekv_repl_epoch'), ps.epoch);
    assert.equal(metricValue(pm, 'edgekv_repl_replicas_connected'), 1);
    assert.equal(metricValue(pm, 'edgekv_repl_replica_acked_seq', { replica: 'r1' }), ps.last_seq);
    assert.equal(metricValue(pm, 'edgekv_repl_replica_lag_seqs', { replica: 'r1' }), 0);
    assert.ok(metricValue(pm, 'edgekv_repl_replica_lag_ms', { replica: 'r1' }) !== undefined, 'replica_lag_ms');
    for (const reason of ['timeout', 'lag', 'protocol']) {
      const v = metricValue(pm, 'edgekv_repl_replicas_dropped_total', { reason });
      assert.ok(v === 0 || v === undefined, `dropped_total{reason="${reason}"} = ${v}`);
    }
    assert.ok(metricValue(pm, 'edgekv_repl_snapshots_sent_total') !== undefined, 'snapshots_sent_total');
    assert.ok(metricValue(pm, 'edgekv_repl_sync_timeouts_total') !== undefined, 'sync_timeouts_total');

    const rs = await status(r);
    const rm = await metricsText(r);
    assert.equal(metricValue(rm, 'edgekv_repl_last_seq'), rs.last_seq);
    assert.equal(metricValue(rm, 'edgekv_repl_applied_seq'), rs.replica.applied_seq);
    assert.equal(metricValue(rm, 'edgekv_repl_lag_seqs'), 0);
    assert.equal(metricValue(rm, 'edgekv_repl_connects_total'), rs.replica.connects);
    assert.equal(metricValue(rm, 'edgekv_repl_snapshots_received_total'), rs.replica.snapshots);
    for (const m of ['edgekv_repl_lag_ms', 'edgekv_repl_apply_lag_ms_p50', 'edgekv_repl_apply_lag_ms_p99']) {
      assert.ok(metricValue(rm, m) !== undefined, `replica metric ${m}`);
    }
  });

  // CLI: `edgekv status` prints the role; promote refuses a node that is not a replica.
  it('edgekv status prints the status; promote on a non-replica fails', async () => {
    for (const [node, role] of [[p, 'primary'], [r, 'replica']]) {
      const x = await runCli(['status', '--url', node.origin]);
      assert.equal(x.code, 0, out(x));
      assert.match(x.stdout, new RegExp(`^\\s*role\\s*:\\s*${role}\\s*$`, 'm'), out(x));
      assert.match(x.stdout, new RegExp(`^\\s*node_id\\s*:\\s*${node.nodeId}\\s*$`, 'm'), out(x));
      assert.match(x.stdout, /^\s*last_seq\s*:\s*\d+\s*$/m, out(x));
    }
    const x = await runCli(['promote', '--url', p.origin, '--operator-token', p.operatorToken]);
    assert.notEqual(x.code, 0, `promote on a primary succeeded: ${out(x)}`);
    const h = await promote(p);
    assert.equal(h.status, 400, h.text);
    assert.equal(h.body.success, false);
    const hs = await promote(s);
    assert.equal(hs.status, 400, hs.text);
    assert.equal((await status(p)).role, 'primary', 'the primary is still the primary');
    assert.equal((await status(p)).writable, true);
  });
});

// Acceptance 1: primary + 2 replicas under a concurrent write load (single PUTs with and
// without metadata/TTL, bulk PUTs, overwrites, deletes, catalog changes, over two namespaces)
// end with identical content: equal full-keyspace checksums, and every acknowledged write is
// readable through each replica.
describe('replication: convergence under concurrent load', { timeout: 120000 }, () => {
  const c = new Cluster('conv');
  after(async () => { await c.cleanup(); });

  it('primary + 2 replicas converge to identical content', async (t) => {
    const p = await c.startPrimary({ nodeId: 'p1' });
    const r1 = await c.startReplica(p, { nodeId: 'r1' });
    const r2 = await c.startReplica(p, { nodeId: 'r2' });
    const nsA = await p.createNamespace('conv-a');
    const nsB = await p.createNamespace('conv-b');
    await waitStreaming(c, r1, { primary: p });
    await waitStreaming(c, r2, { primary: p });
    const before = await waitConverged(c, p, [r1, r2]);

    const load = startLoad(p, [nsA, nsB], { tag: 'conv', putWriters: 6, bulkWriters: 2, hardStopMs: 30000 });
    // catalog changes in the middle of the load
    await sleep(1000);
    const nsC = await p.createNamespace('conv-c');
    expectOk(await p.api('PUT', `${p.ns(nsC)}/values/x`, { body: 'in-c' }));
    expectOk(await p.api('PUT', `/accounts/${p.accountId}/storage/kv/namespaces/${nsB}`, { json: { title: 'conv-b2' } }));
    expectOk(await p.api('POST', `/accounts/${p.accountId}/tokens`, { json: { name: 'mid-load', permissions: ['kv:read'] } }));
    // the replicas keep up while the load runs (they are not only caught up at the end)
    const mid = await status(p);
    await c.waitFor(async () => {
      const [a, b] = [await status(r1), await status(r2)];
      return a.last_seq >= mid.last_seq && b.last_seq >= mid.last_seq;
    }, 15000, 'replicas past the mid-load seq while the load runs');
    await sleep(2000);
    await load.stop();
    t.diagnostic(load.summary());
    assert.equal(load.failureCount(), 0, `writes failed on the primary: ${load.summary()}`);
    assert.ok(load.acked.size > 200, `only ${load.acked.size} keys written: ${load.summary()}`);
    assert.ok(load.deleted.size > 0, 'no delete was acknowledged');

    const sum = await waitConverged(c, p, [r1, r2]);
    assert.notEqual(sum.checksum, before.checksum);
    assert.ok(sum.keys >= load.acked.size, `checksum counts ${sum.keys} keys, ${load.acked.size} are live`);
    for (const rep of [r1, r2]) {
      await verifyAcked(rep, load);
      const x = await rep.fetch('GET', `${rep.ns(nsC)}/values/x`);
      assert.equal(await x.text(), 'in-c', `${rep.nodeId}: key of the namespace created mid-load`);
      assert.equal(expectOk(await rep.api('GET', `/accounts/${p.accountId}/storage/kv/namespaces/${nsB}`)).title, 'conv-b2');
    }
    // the links stayed up the whole time
    const ps = await status(p);
    assert.deepEqual(ps.dropped, { timeout: 0, lag: 0, protocol: 0 });
    assert.deepEqual(ps.replicas.map((x) => `${x.node_id}:${x.state}:${x.acked_seq}`).sort(),
      [`r1:streaming:${ps.last_seq}`, `r2:streaming:${ps.last_seq}`]);
  });
});

// Acceptance 2a: a replica SIGKILLed mid-stream and restarted on its data dir resumes from its
// own position (no snapshot, not even an attempt) and converges.
describe('replication: replica crash and incremental resume', { timeout: 120000 }, () => {
  const c = new Cluster('resume');
  after(async () => { await c.cleanup(); });

  it('SIGKILLed replica resumes incrementally and converges', async (t) => {
    const p = await c.startPrimary({ nodeId: 'p1' });
    const r1 = await c.startReplica(p, { nodeId: 'r1' });
    const ns = await p.createNamespace('resume');
    await waitStreaming(c, r1, { primary: p });

    const load = startLoad(p, [ns], { tag: 'resume', putWriters: 4, bulkWriters: 1, hardStopMs: 40000 });
    // the replica is applying the stream when it dies
    const s0 = await status(r1);
    await c.waitFor(async () => (await status(r1)).last_seq > s0.last_seq + 50, 10000, 'replica applying the load');
    const resumesBefore = logLinesWith(p.stderr, 'replica resumes', { replica: 'r1' }).length;
    const killedAt = (await status(r1)).last_seq;
    await r1.kill('SIGKILL');
    const ackedBeforeDown = load.ackOps;
    await sleep(1500); // writes continue while it is down
    assert.ok(load.ackOps > ackedBeforeDown, 'the primary kept acknowledging writes while the replica was down');

    const r1b = await c.restart(r1);
    const rs0 = await status(r1b);
    assert.ok(rs0.last_seq > 0, `restarted replica lost its state: last_seq ${rs0.last_seq} (was >= ${killedAt})`);
    await waitStreaming(c, r1b, { primary: p });
    await sleep(1000);
    await load.stop();
    t.diagnostic(load.summary());
    assert.equal(load.failureCount(), 0, load.summary());

    await waitConverged(c, p, [r1b]);
    const rs = await status(r1b);
    assert.equal(rs.replica.snapshot_attempts, 0, `resume started a snapshot: ${JSON.stringify(rs.replica)}`);
    assert.equal(rs.replica.snapshots, 0, `resume used a snapshot: ${JSON.stringify(rs.replica)}`);
    assert.ok(rs.replica.connects >= 1);
    assert.equal(rs.replica.discarded_records, 0);
    const resumes = logLinesWith(p.stderr, 'replica resumes', { replica: 'r1' });
    assert.ok(resumes.length > resumesBefore, `no "replica resumes" line for r1 after the restart:\n${p.stderr.slice(-3000)}`);
    const from = Number(resumes[resumes.length - 1].match(/from_seq=(\d+)/)?.[1]);
    assert.ok(from > 1, `resumed from_seq ${from}: the replica restarted from scratch`);
    await verifyAcked(r1b, load);
  });
});

// Acceptance 2b: a replica down while the primary (tiny --log-retain-mb 1) writes several MB
// finds its resume point trimmed away, bootstraps by exactly one snapshot, and converges.
describe('replication: snapshot bootstrap after the log was trimmed', { timeout: 120000 }, () => {
  const c = new Cluster('trim');
  after(async () => { await c.cleanup(); });

  it('a replica behind the trimmed log bootstraps by snapshot and converges', async (t) => {
    const p = await c.startPrimary({ nodeId: 'p1', args: ['--log-retain-mb', '1'] });
    const r1 = await c.startReplica(p, { nodeId: 'r1' });
    const ns = await p.createNamespace('trim');
    await waitStreaming(c, r1, { primary: p });
    // some data the replica gets over the stream
    const load = startLoad(p, [ns], { tag: 'trim', putWriters: 2, bulkWriters: 1, hardStopMs: 20000 });
    await sleep(1000);
    await load.stop();
    assert.equal(load.failureCount(), 0, load.summary());
    const atKill = await waitConverged(c, p, [r1]);
    const resumeSeq = atKill.last_seq; // the replica's position: it would resume at resumeSeq + 1
    await r1.kill('SIGKILL');

    // write 1 MiB requests of incompressible 64 KiB values until the log no longer holds
    // resumeSeq + 1 (bounded: at most 48 MiB or 30 s)
    const big = new Map(); // key -> sha256
    const deadline = Date.now() + 30000;
    let mb = 0;
    let ps = await status(p);
    while (ps.first_log_seq <= resumeSeq + 1) {
      assert.ok(mb < 48 && Date.now() < deadline,
        `log not trimmed past ${resumeSeq + 1} after writing ${mb} MiB with --log-retain-mb 1: ${JSON.stringify(ps)}`);
      const items = [];
      for (let j = 0; j < 16; j++) {
        const v = randomBytes(64 * 1024);
        const key = `big/${mb}/${j}`;
        big.set(key, sha256(v));
        items.push({ key, value: v.toString('base64'), base64: true });
      }
      expectOk(await p.api('PUT', `${p.ns(ns)}/bulk`, { json: items }));
      mb++;
      ps = await status(p);
    }
    t.diagnostic(`log trimmed to first_log_seq ${ps.first_log_seq} (replica at ${resumeSeq}) after ${mb} MiB`);
    const startsBefore = logLinesWith(p.stderr, 'snapshot start', { replica: 'r1' }).length;

    const r1b = await c.restart(r1);
    await c.waitFor(async () => {
      const s = await tryStatus(r1b);
      return s && s.replica.snapshots >= 1 && s.replica.state === 'streaming';
    }, 60000, 'r1 bootstrapped by snapshot and streaming');
    await waitConverged(c, p, [r1b]);
    const rs = await status(r1b);
    assert.equal(rs.replica.snapshots, 1, JSON.stringify(rs.replica));
    assert.equal(rs.replica.snapshot_attempts, 1, JSON.stringify(rs.replica));
    assert.equal(logLinesWith(p.stderr, 'snapshot start', { replica: 'r1' }).length, startsBefore + 1,
      `primary should log exactly one "snapshot start" for r1 after the restart:\n${p.stderr.slice(-3000)}`);
    assert.ok(logLinesWith(r1b.stderr, 'snapshot complete').length === 1, `replica log:\n${r1b.stderr.slice(-3000)}`);

    // the data from before the kill and the data it missed are both there
    await verifyAcked(r1b, load);
    const keys = [...big.keys()];
    for (const k of [keys[0], keys[Math.floor(keys.length / 2)], keys[keys.length - 1]]) {
      const x = await r1b.fetch('GET', `${r1b.ns(ns)}/values/${encodeURIComponent(k)}`);
      assert.equal(x.status, 200, k);
      assert.equal(sha256(Buffer.from(await x.arrayBuffer())), big.get(k), k);
    }
    // and it follows new writes after the snapshot
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/after-snapshot`, { body: 'fresh' }));
    await waitConverged(c, p, [r1b]);
    assert.equal(await (await r1b.fetch('GET', `${r1b.ns(ns)}/values/after-snapshot`)).text(), 'fresh');
  });
});

// Acceptance 4: a replica whose link stalls (SIGSTOP: no reads, no acks) is dropped by the
// primary within --repl-timeout-ms (+ slack); the primary keeps serving PUT/GET quickly
// meanwhile, and the healthy replica is not affected. After SIGCONT the replica reconnects
// (incrementally) and converges.
describe('replication: stalled replica is dropped, primary stays responsive', { timeout: 120000 }, () => {
  const c = new Cluster('stall');
  after(async () => { await c.cleanup(); });

  it('SIGSTOPped replica is dropped within the timeout and rejoins after SIGCONT', async (t) => {
    const TIMEOUT_MS = 1500;
    const p = await c.startPrimary({ nodeId: 'p1', args: ['--repl-timeout-ms', String(TIMEOUT_MS)] });
    const r1 = await c.startReplica(p, { nodeId: 'r1' });
    const r2 = await c.startReplica(p, { nodeId: 'r2' });
    const ns = await p.createNamespace('stall');
    await waitStreaming(c, r1, { primary: p });
    await waitStreaming(c, r2, { primary: p });

    const load = startLoad(p, [ns], { tag: 'stall', putWriters: 3, bulkWriters: 1, pauseMs: 5, hardStopMs: 60000 });
    await sleep(1500);
    const before = await status(p);
    assert.equal(before.dropped.timeout, 0, `a healthy replica was dropped under load: ${JSON.stringify(before)}`);
    const r1Before = (await status(r1)).replica;
    const r2Before = (await status(r2)).replica;

    // probe the primary's latency during the stall: PUT then GET, one at a time
    const lat = { put: [], get: [], errors: [] };
    let probing = true;
    const prober = (async () => {
      for (let i = 0; probing; i++) {
        const key = `probe/${i}`;
        const v = `p${i}`;
        let t0 = Date.now();
        try {
          const pr = await p.api('PUT', `${p.ns(ns)}/values/${key}`, { body: v });
          lat.put.push(Date.now() - t0);
          if (pr.status !== 200) lat.errors.push(`PUT ${key} -> ${pr.status}`);
          t0 = Date.now();
          const g = await p.fetch('GET', `${p.ns(ns)}/values/${key}`);
          const body = await g.text();
          lat.get.push(Date.now() - t0);
          if (g.status !== 200 || body !== v) lat.errors.push(`GET ${key} -> ${g.status} ${body}`);
        } catch (e) { lat.errors.push(e.message); }
        await sleep(100);
      }
    })();

    const stalledAt = Date.now();
    pause(r1);
    let detectedMs;
    try {
      const st = await c.waitFor(async () => {
        const s = await status(p);
        return s.dropped.timeout >= 1 ? s : null;
      }, 6000, 'primary to drop the stalled replica (dropped.timeout >= 1)', 50);
      detectedMs = Date.now() - stalledAt;
      assert.ok(!st.replicas.some((x) => x.node_id === 'r1'), `dropped replica still listed: ${JSON.stringify(st.replicas)}`);
      await sleep(1000); // keep probing a little after the drop
    } finally {
      probing = false;
      await prober;
    }
    t.diagnostic(`dropped after ${detectedMs} ms; max PUT ${Math.max(...lat.put)} ms, max GET ${Math.max(...lat.get)} ms, `
      + `${lat.put.length} probes`);
    assert.deepEqual(lat.errors, []);
    assert.ok(lat.put.length >= 5, `only ${lat.put.length} probes completed during the stall`);
    assert.ok(Math.max(...lat.put) < 1000, `PUT latency during the stall: ${lat.put.join(',')}`);
    assert.ok(Math.max(...lat.get) < 1000, `GET latency during the stall: ${lat.get.join(',')}`);

    const pm = await metricsText(p);
    assert.ok(metricValue(pm, 'edgekv_repl_replicas_dropped_total', { reason: 'timeout' }) >= 1,
      `dropped_total{reason="timeout"}: ${pm.split('\n').filter((l) => l.includes('dropped_total')).join('\n')}`);
    const dropLines = logLinesWith(p.stderr, 'replica dropped', { replica: 'r1', reason: 'timeout' });
    assert.equal(dropLines.length, 1, `primary log:\n${p.stderr.slice(-3000)}`);

    // the healthy replica kept its link and kept applying
    const r2Now = await status(r2);
    assert.equal(r2Now.replica.state, 'streaming');
    assert.equal(r2Now.replica.connects, r2Before.connects, 'r2 lost its link during r1\'s stall');
    assert.ok(r2Now.last_seq > before.last_seq, 'r2 did not apply anything during the stall');
    assert.equal((await status(p)).dropped.timeout, 1, 'only the stalled replica is dropped');

    // SIGCONT: r1 notices the closed link, reconnects and catches up
    resume(r1);
    await c.waitFor(async () => {
      const s = await tryStatus(r1);
      return s && s.replica.connects > r1Before.connects && s.replica.state === 'streaming';
    }, 20000, 'r1 reconnected after SIGCONT');
    await sleep(500);
    await load.stop();
    t.diagnostic(load.summary());
    assert.equal(load.failureCount(), 0, load.summary());
    await waitConverged(c, p, [r1, r2]);
    const r1After = (await status(r1)).replica;
    assert.equal(r1After.snapshots, r1Before.snapshots, 'the reconnect should resume incrementally, not snapshot');
    await verifyAcked(r1, load);
  });
});

// --sync-replicas: a write waits for a replica's ack; with no replica it times out with a
// clear 504 that says the write is committed, and the write is indeed readable on the
// primary (and reaches a replica that joins later). With a replica attached, writes succeed
// and are on the replica when acknowledged.
describe('replication: --sync-replicas holds replies for replica acks', { timeout: 120000 }, () => {
  const c = new Cluster('sync');
  after(async () => { await c.cleanup(); });

  it('times out with 504 (write committed) without a replica, succeeds with one', async () => {
    const p = await c.startPrimary({ nodeId: 'p1', args: ['--sync-replicas', '1', '--sync-timeout-ms', '400'] });
    // the namespace create itself waits for an ack: committed, answered 504
    const t0 = Date.now();
    const cr = await p.api('POST', `/accounts/${p.accountId}/storage/kv/namespaces`, { json: { title: 'sync-ns' } });
    const waited = Date.now() - t0;
    const e = expectError(cr, 504, 10001);
    assert.match(e.message, /committed on the primary/, e.message);
    assert.ok(waited >= 350, `answered after ${waited} ms, before the 400 ms sync timeout`);
    // ... and the namespace exists (committed, in the catalog)
    const list = expectOk(await p.api('GET', `/accounts/${p.accountId}/storage/kv/namespaces`));
    const ns = list.find((n) => n.title === 'sync-ns');
    assert.ok(ns, `namespace missing after a 504: ${JSON.stringify(list)}`);
    const put = await p.api('PUT', `${p.ns(ns.id)}/values/k-unacked`, { body: 'committed-anyway' });
    expectError(put, 504, 10001);
    const got = await p.fetch('GET', `${p.ns(ns.id)}/values/k-unacked`);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'committed-anyway');
    const m0 = await metricsText(p);
    assert.equal(metricValue(m0, 'edgekv_repl_sync_timeouts_total'), 2);

    // a replica joins: it gets both writes, and new writes are acked (200) once it has them
    const r = await c.startReplica(p, { nodeId: 'r1' });
    await waitStreaming(c, r, { primary: p });
    for (let i = 0; i < 20; i++) {
      expectOk(await p.api('PUT', `${p.ns(ns.id)}/values/k${i}`, { body: `v${i}` }));
      // acknowledged => already applied on the replica (its ack came first)
      const rv = await r.fetch('GET', `${r.ns(ns.id)}/values/k${i}`);
      assert.equal(rv.status, 200, `k${i} acked by the primary but not on the replica`);
      assert.equal(await rv.text(), `v${i}`);
    }
    const rv = await r.fetch('GET', `${r.ns(ns.id)}/values/k-unacked`);
    assert.equal(await rv.text(), 'committed-anyway');
    assert.equal(metricValue(await metricsText(p), 'edgekv_repl_sync_timeouts_total'), 2);
  });
});
