// Failover (acceptance 3): with --sync-replicas 1 and the default fsync, a primary SIGKILLed
// under load loses no acknowledged write once the most advanced replica is promoted; the old
// primary, restarted as a primary on its data dir, is fenced (503) by the new primary's probe
// and the fence survives a restart; restarted as a replica of the new primary it rejoins and
// converges. Also: promotion through `edgekv promote` while the old primary is still alive.
// Helpers: lib/cluster.mjs.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { expectOk, expectError, runCli, sleep, withTimeout } from './lib/harness.mjs';
import {
  Cluster, status, tryStatus, promote, logLinesWith, waitStreaming, waitConverged, startLoad, verifyAcked,
} from './lib/cluster.mjs';

const out = (r) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
const replicaWriteMessage = (primary) =>
  `this node is a read-only replica; send writes to the primary ${primary.nodeId} at http://127.0.0.1:${primary.port}`;

// A write on a fenced primary: 503 / 10001, the message says "fenced" and names the newer epoch.
async function expectFencedWrite(node, ns, epoch) {
  const r = await node.api('PUT', `${node.ns(ns)}/values/while-fenced`, { body: 'no' });
  const e = expectError(r, 503, 10001);
  assert.match(e.message, /fenced/i, e.message);
  assert.match(e.message, new RegExp(`\\b${epoch}\\b`), `message should name epoch ${epoch}: ${e.message}`);
}

// Promote `node` (a replica) and check the result and its new status; returns the status.
async function promoteAndCheck(c, node, old) {
  const pr = expectOk(await promote(node));
  assert.ok(Number.isInteger(pr.epoch) && pr.epoch > old.epoch, `new epoch ${pr.epoch} <= old ${old.epoch}`);
  assert.ok(typeof pr.history_id === 'string' && pr.history_id !== old.history_id,
    `history_id ${pr.history_id} (old ${old.history_id})`);
  assert.ok(Number.isInteger(pr.last_seq) && pr.last_seq >= old.last_seq, `promote last_seq ${pr.last_seq} < ${old.last_seq}`);
  const st = await c.waitFor(async () => {
    const s = await status(node);
    return s.role === 'primary' && s.repl_listen ? s : null;
  }, 5000, `${node.nodeId} to be a primary with its replication port bound`);
  assert.equal(st.epoch, pr.epoch);
  assert.equal(st.history_id, pr.history_id);
  assert.equal(st.writable, true);
  assert.equal(st.fenced, false);
  assert.match(st.repl_listen, /^127\.0\.0\.1:\d+$/);
  node.role = 'primary';
  node.replAddr = st.repl_listen;
  return { pr, st };
}

describe('failover: primary SIGKILLed under load with --sync-replicas 1', { timeout: 240000 }, () => {
  const c = new Cluster('failover');
  after(async () => { await c.cleanup(); });

  it('every acknowledged write is on the promoted replica; the old primary is fenced, then rejoins', async (t) => {
    const p1 = await c.startPrimary({ nodeId: 'p1', args: ['--sync-replicas', '1'] });
    const p1Repl = p1.replAddr;
    // replicas get a --repl-listen so that the promoted one can serve the others
    const r1 = await c.startReplica(p1, { nodeId: 'r1', replListen: '127.0.0.1:0' });
    const r2 = await c.startReplica(p1, { nodeId: 'r2', replListen: '127.0.0.1:0' });
    await waitStreaming(c, r1, { primary: p1 });
    await waitStreaming(c, r2, { primary: p1 });
    const ns = await p1.createNamespace('failover'); // acknowledged, so replicated to >= 1 replica
    await waitConverged(c, p1, [r1, r2]);
    const old = await status(p1);

    // --- load, then SIGKILL the primary with writes in flight
    const load = startLoad(p1, [ns], { tag: 'fo', putWriters: 6, bulkWriters: 2, hardStopMs: 30000 });
    await sleep(2500);
    const ackedAt = load.ackOps;
    await sleep(500);
    const inFlight = load.ackOps > ackedAt;
    await p1.kill('SIGKILL');
    await withTimeout(load.stop(), 15000, 'load to stop after the kill');
    t.diagnostic(load.summary());
    assert.ok(inFlight, `no write was acknowledged in the last 500 ms before the kill: ${load.summary()}`);
    assert.ok(load.acked.size > 50, `only ${load.acked.size} keys acknowledged: ${load.summary()}`);

    // --- the replicas settle (nothing more can arrive); promote the most advanced one
    let seqs = [];
    let stableSince = Date.now();
    await c.waitFor(async () => {
      const now = [(await status(r1)).last_seq, (await status(r2)).last_seq];
      if (now.join() !== seqs.join()) { seqs = now; stableSince = Date.now(); }
      return Date.now() - stableSince >= 600;
    }, 10000, 'replica last_seq values to settle after the kill', 100);
    const [best, other] = seqs[0] >= seqs[1] ? [r1, r2] : [r2, r1];
    t.diagnostic(`after the kill: r1 last_seq ${seqs[0]}, r2 last_seq ${seqs[1]}; promoting ${best.nodeId}`);
    const bestSeq = Math.max(...seqs);
    assert.ok(bestSeq > old.last_seq, 'the load reached the replicas');
    const { pr } = await promoteAndCheck(c, best, { ...old, last_seq: bestSeq });
    const np = best;

    // the acceptance criterion: every acknowledged write (and acknowledged delete, and the last
    // acknowledged version of each overwritten key) is there, read through the new primary
    const checked = await verifyAcked(np, load, `new primary ${np.nodeId}`);
    t.diagnostic(`${checked} acknowledged writes verified on the new primary`);
    expectOk(await np.api('PUT', `${np.ns(ns)}/values/after-failover`, { body: 'written on the new primary' }));

    // --- the other replica follows the new primary (its log is a prefix of the new history)
    await other.stop();
    const other2 = await c.restart(other, { primaryAddrs: np.replAddr });
    const os = await waitStreaming(c, other2, { primary: np, timeoutMs: 20000 });
    assert.equal(os.replica.primary_node_id, np.nodeId);
    expectError(await other2.api('PUT', `${other2.ns(ns)}/values/x`, { body: 'x' }), 403, 10001, replicaWriteMessage(np));

    // --- the old primary restarted as a primary (same data dir, same replication port, so the
    // new primary's probe reaches it): fenced, refuses writes with 503
    const p1b = await c.restart(p1, { replListen: p1Repl });
    const fst = await c.waitFor(async () => {
      const s = await tryStatus(p1b);
      return s && s.fenced === true ? s : null;
    }, 15000, 'old primary to be fenced by the new primary\'s probe');
    assert.equal(fst.writable, false);
    await expectFencedWrite(p1b, ns, pr.epoch);
    const fencedLines = logLinesWith(p1b.stderr, 'fenced', { epoch: pr.epoch });
    assert.ok(fencedLines.length >= 1, `no msg="fenced" epoch=${pr.epoch} line:\n${p1b.stderr.slice(-3000)}`);
    await p1b.stop();

    // the fence is persisted: restarted on another port (no probe can reach it), still fenced
    const p1c = await c.restart(p1, { replListen: '127.0.0.1:0' });
    const st1 = await status(p1c);
    assert.equal(st1.fenced, true, `fence not persisted: ${JSON.stringify(st1)}`);
    assert.equal(st1.writable, false);
    await expectFencedWrite(p1c, ns, pr.epoch);
    await p1c.stop();

    // --- the old primary restarted as a replica of the new primary: rejoins and converges
    const p1r = await c.restart(p1, { role: 'replica', primaryAddrs: np.replAddr, replListen: null, args: [] });
    const rs = await waitStreaming(c, p1r, { primary: np, timeoutMs: 60000 });
    assert.equal(rs.role, 'replica');
    assert.equal(rs.replica.primary_node_id, np.nodeId);
    await waitConverged(c, np, [other2, p1r], { timeoutMs: 60000 });

    const fin = await status(p1r);
    t.diagnostic(`old primary rejoined: ${JSON.stringify(fin.replica)}`);
    // records only the old primary had are discarded, which takes a snapshot
    if (fin.replica.discarded_records > 0) {
      assert.equal(fin.replica.snapshots, 1, `discarded ${fin.replica.discarded_records} records without a snapshot`);
      const dl = logLinesWith(p1r.stderr, 'history switch: records discarded');
      assert.equal(dl.length, 1, p1r.stderr.slice(-3000));
      assert.equal(Number(/count=(\d+)/.exec(dl[0])?.[1]), fin.replica.discarded_records);
    }
    const o2 = await status(other2);
    assert.equal(o2.replica.snapshot_attempts, 0, `the other replica needed a snapshot: ${JSON.stringify(o2.replica)}`);
    assert.equal(o2.replica.discarded_records, 0);
    assert.equal(o2.epoch, pr.epoch);
    assert.equal(o2.history_id, pr.history_id);

    // everything acknowledged by the dead primary, and what was written after, on every node
    await verifyAcked(other2, load);
    await verifyAcked(p1r, load);
    for (const n of [other2, p1r]) {
      const x = await n.fetch('GET', `${n.ns(ns)}/values/after-failover`);
      assert.equal(await x.text(), 'written on the new primary', n.nodeId);
    }
    expectError(await p1r.api('PUT', `${p1r.ns(ns)}/values/x`, { body: 'x' }), 403, 10001, replicaWriteMessage(np));
  });
});

// Promotion with `edgekv promote` while the old primary is still running: the new primary's
// probe makes the live old primary fence itself (503 on writes, msg="fenced" logged).
describe('failover: edgekv promote with a live old primary', { timeout: 120000 }, () => {
  const c = new Cluster('promote');
  after(async () => { await c.cleanup(); });

  it('promoted replica takes writes; the live old primary fences itself', async () => {
    const p1 = await c.startPrimary({ nodeId: 'p1' });
    const r1 = await c.startReplica(p1, { nodeId: 'r1', replListen: '127.0.0.1:0' });
    const ns = await p1.createNamespace('promote');
    await waitStreaming(c, r1, { primary: p1 });
    const bulk = [];
    for (let i = 0; i < 50; i++) bulk.push({ key: `k${i}`, value: `v${i}` });
    expectOk(await p1.api('PUT', `${p1.ns(ns)}/bulk`, { json: bulk }));
    await waitConverged(c, p1, [r1]);
    const old = await status(p1);
    // before the promotion a replica's --repl-listen serves edges only: no replica links
    const pre = await status(r1);
    assert.match(pre.repl_listen, /^127\.0\.0\.1:\d+$/, 'a replica with --repl-listen serves edges on it');
    assert.equal(pre.replicas.length, 0);

    const x = await runCli(['promote', '--url', r1.origin, '--cluster-secret-file', c.secretFile()]);
    assert.equal(x.code, 0, out(x));
    const st = await c.waitFor(async () => {
      const s = await status(r1);
      return s.role === 'primary' && s.repl_listen ? s : null;
    }, 5000, 'r1 to be a primary');
    assert.ok(st.epoch > old.epoch, `epoch ${old.epoch} -> ${st.epoch}`);
    assert.notEqual(st.history_id, old.history_id);
    assert.equal(st.writable, true);
    assert.ok(st.last_seq >= old.last_seq);
    r1.role = 'primary';

    // the new primary takes writes and serves what it had
    expectOk(await r1.api('PUT', `${r1.ns(ns)}/values/new`, { body: 'on r1' }));
    assert.equal(await (await r1.fetch('GET', `${r1.ns(ns)}/values/k7`)).text(), 'v7');
    // promoting again is refused: it is no longer a replica
    const again = await promote(r1);
    assert.equal(again.status, 400, again.text);

    // the old primary is still alive: the probe (every second) fences it
    const fst = await c.waitFor(async () => {
      const s = await status(p1);
      return s.fenced ? s : null;
    }, 10000, 'live old primary to be fenced');
    assert.equal(fst.writable, false);
    await expectFencedWrite(p1, ns, st.epoch);
    assert.ok(logLinesWith(p1.stderr, 'fenced', { epoch: st.epoch }).length >= 1, p1.stderr.slice(-3000));
    // the value refused by the fenced node is nowhere
    assert.equal((await r1.fetch('GET', `${r1.ns(ns)}/values/while-fenced`)).status, 404);

    const s = await runCli(['status', '--url', r1.origin]);
    assert.equal(s.code, 0, out(s));
    assert.match(s.stdout, /^\s*role\s*:\s*primary\s*$/m, out(s));
  });
});

// Regression (issue 9): the fence used to be saved through the bounded reader pool; with the
// reader queue full the save was refused (only logged) and the old primary restarted unfenced,
// although its FENCED answer had already stopped the new primary's probes. Now the fence is
// saved synchronously before any peer is told FENCED. Here the old primary runs with one
// reader thread and a reader queue of 1, saturated by concurrent list requests, while it is
// fenced; restarted where no probe reaches it, it must still be fenced.
describe('failover: a full reader queue cannot make a fence unsaved', { timeout: 120000 }, () => {
  const c = new Cluster('fence-queue');
  after(async () => { await c.cleanup(); });

  it('fenced under reader load with --reader-queue 1, still fenced after a restart', async (t) => {
    const p1 = await c.startPrimary({ nodeId: 'p1', args: ['--readers', '1', '--reader-queue', '1'] });
    const r1 = await c.startReplica(p1, { nodeId: 'r1', replListen: '127.0.0.1:0' });
    const ns = await p1.createNamespace('fenceq');
    // ~16 MB of values: a checksum (one reader job over the whole keyspace) takes a while
    const big = 'x'.repeat(8000);
    for (let b = 0; b < 2; b++) {
      const bulk = [];
      for (let i = 0; i < 1000; i++) bulk.push({ key: `k${b}-${String(i).padStart(5, '0')}`, value: `${i}${big}` });
      expectOk(await p1.api('PUT', `${p1.ns(ns)}/bulk`, { json: bulk }));
    }
    await waitStreaming(c, r1, { primary: p1 });
    await waitConverged(c, p1, [r1]);

    // saturate p1's reader pool: lists and checksums are reader jobs (a checksum a long one),
    // the queue holds one, so the one slot is refilled as soon as the thread takes a job
    let stop = false, busy = 0, ok = 0, other = 0;
    const loop = async (i) => {
      while (!stop) {
        try {
          const r = i % 3 === 0
            ? await fetch(`${p1.origin}/_edgekv/replication/checksum`, { headers: { authorization: `Bearer ${p1.operatorToken}` } })
            : await p1.fetch('GET', `${p1.ns(ns)}/keys?limit=1000`);
          await r.arrayBuffer();
          if (r.status === 503) busy++;
          else if (r.status === 200) ok++;
          else other++;
        } catch { other++; }
      }
    };
    const loops = Array.from({ length: 24 }, (_, i) => loop(i));
    await c.waitFor(async () => busy >= 20, 10000, 'the reader queue to be full (503s)');

    const pr = expectOk(await promote(r1));
    const fst = await c.waitFor(async () => {
      const s = await tryStatus(p1);
      return s && s.fenced === true ? s : null;
    }, 10000, 'the loaded old primary to be fenced by the probe');
    assert.equal(fst.writable, false);
    const busyAtFence = busy;
    await sleep(300); // still under load after the fence
    stop = true;
    await Promise.all(loops);
    t.diagnostic(`reader load: ${ok} lists answered, ${busy} refused 503 (${busyAtFence} before the fence), ${other} other`);
    assert.ok(busyAtFence >= 20, 'the reader queue was never full');
    assert.equal(logLinesWith(p1.stderr, 'cannot queue the node state save').length, 0, p1.stderr.slice(-3000));
    assert.ok(logLinesWith(p1.stderr, 'fence saved', { epoch: pr.epoch }).length >= 1, p1.stderr.slice(-3000));
    await expectFencedWrite(p1, ns, pr.epoch);
    await p1.stop();

    // restarted on another replication port: no probe can reach it, the saved fence holds
    const p1b = await c.restart(p1, { replListen: '127.0.0.1:0' });
    const st = await status(p1b);
    assert.equal(st.fenced, true, `fence not persisted: ${JSON.stringify(st)}`);
    assert.equal(st.writable, false);
    await expectFencedWrite(p1b, ns, pr.epoch);
    await p1b.stop();
  });
});
