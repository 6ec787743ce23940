// Automatic failover through etcd (--coordinator, docs/FAILOVER.md), against Debian's etcd and
// the real binary: a fresh cluster elects its --role primary and uses the election revision as
// its epoch; under a ~1,000 writes/s load through an edge, a SIGKILLed or SIGSTOPped primary is
// replaced by the most caught-up replica, writes succeed again within 10 s, no acknowledged
// write is lost (--sync-replicas 1), at most one node takes writes at any time, a woken old
// primary refuses every write and comes back as a replica, and so does a restarted one.
//
// A SIGTERMed primary (a planned restart) revokes its lease after draining: the election
// follows at once instead of after the lease's TTL.
//
// EKV_FAILOVER_ROUNDS (default 3: SIGKILL, SIGSTOP, SIGTERM, in turn) and
// EKV_FAILOVER_REPORT (a file: one JSON line per round) are for bench/failover.sh.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, hex32, newToken, operatorToken, expectOk, sleep } from './lib/harness.mjs';
import { startEtcd, freePort, etcdInstalled } from './lib/etcd.mjs';

const ROUNDS = Number(process.env.EKV_FAILOVER_ROUNDS || 3);
const KINDS = ['SIGKILL', 'SIGSTOP', 'SIGTERM'];
const REPORT = process.env.EKV_FAILOVER_REPORT || '';
const RATE = 1000; // writes/s offered through the edge
const WORKERS = 64;

async function statusOf(node, timeoutMs = 700) {
  try {
    const r = await fetch(`${node.origin}/_edgekv/replication/status`, { signal: AbortSignal.timeout(timeoutMs) });
    return r.status === 200 ? (await r.json()).result : null;
  } catch { return null; }
}

describe('automatic failover through etcd', { timeout: 600000 }, () => {
  if (!etcdInstalled()) throw new Error('etcd is not installed (scripts/install-deps.sh --test installs etcd-server)');
  let etcd;
  let dir;
  const secret = randomBytes(32).toString('hex');
  const accountId = hex32();
  const token = newToken();
  const data = []; // data nodes: { id, args, dataDir, srv, stopped }
  let edge;
  let ns;

  const startData = async (d) => {
    d.srv = await startServer({ dataDir: d.dataDir, accountId, token, args: d.args, keepData: true,
      operatorToken: operatorToken(secret), startTimeoutMs: 30000 });
    d.stopped = false;
  };

  before(async () => {
    etcd = await startEtcd();
    dir = mkdtempSync(join(tmpdir(), 'edgekv-coord-'));
    const secretFile = join(dir, 'cluster.secret');
    writeFileSync(secretFile, secret + '\n', { mode: 0o600 });
    const cluster = `it-${hex32().slice(0, 8)}`;
    const common = ['--coordinator', `etcd://${etcd.addr}`, '--cluster-secret-file', secretFile,
      '--sync-replicas', '1', '--cluster-name', cluster];
    for (const [id, role] of [['p1', 'primary'], ['r1', 'replica'], ['r2', 'replica']]) {
      const api = await freePort();
      const repl = await freePort();
      data.push({ id, replAddr: `127.0.0.1:${repl}`, dataDir: join(dir, id),
        args: ['--role', role, '--node-id', id, '--listen', `127.0.0.1:${api}`, '--repl-listen', `127.0.0.1:${repl}`, ...common] });
    }
    await startData(data[0]);
    await Promise.all(data.slice(1).map(startData));
    edge = await startServer({ accountId, token, args: ['--role', 'edge', '--node-id', 'e1',
      '--coordinator', `etcd://${etcd.addr}`, '--cluster-secret-file', secretFile, '--cluster-name', cluster,
      '--replicas', data.slice(1).map((d) => d.replAddr).join(',')], startTimeoutMs: 30000 });
  });

  after(async () => {
    for (const d of data) { try { d.srv.proc.kill('SIGCONT'); } catch { /* gone */ } await d.srv?.kill('SIGKILL'); }
    await edge?.kill('SIGKILL');
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const describeAll = async () => {
    const out = [];
    for (const d of data) {
      const st = d.stopped ? '[SIGSTOPped]' : JSON.stringify(await statusOf(d.srv));
      out.push(`--- ${d.id}: ${st}\n${d.srv.stderr.split('\n').slice(-15).join('\n')}`);
    }
    out.push(`--- e1: ${JSON.stringify(await statusOf(edge))}\n${edge.stderr.split('\n').slice(-10).join('\n')}`);
    return out.join('\n');
  };
  const waitFor = async (fn, ms, what) => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${await describeAll()}`);
      await sleep(100);
    }
  };
  // The data node that says it is a writable primary (null while none, or more than one).
  const writablePrimaries = async () => {
    const out = [];
    for (const d of data) {
      if (d.stopped || !d.srv.running) continue;
      const st = await statusOf(d.srv);
      if (st && st.role === 'primary' && st.writable) out.push(d);
    }
    return out;
  };

  it('a new cluster elects its --role primary; the election revision is the epoch; everyone follows it', async () => {
    const st = await waitFor(async () => {
      const s = await statusOf(data[0].srv);
      return s && s.role === 'primary' && s.writable && s.coordinator?.leading ? s : null;
    }, 20000, 'p1 to lead');
    const key = await etcd.get(`/edgekv/${data[0].args[data[0].args.indexOf('--cluster-name') + 1]}/leader`);
    assert.ok(key, 'the leader key exists in etcd');
    assert.equal(JSON.parse(key.value).node_id, 'p1');
    assert.equal(st.epoch, key.createRevision, 'epoch = the election revision');
    assert.equal(st.coordinator.election_revision, key.createRevision);
    for (const d of data.slice(1)) {
      await waitFor(async () => {
        const s = await statusOf(d.srv);
        return s && s.role === 'replica' && s.replica?.state === 'streaming' && s.epoch === st.epoch ? s : null;
      }, 20000, `${d.id} to stream from p1`);
    }
    const es = await waitFor(async () => {
      const s = await statusOf(edge);
      return s && s.coordinator?.primary === 'p1' && s.edge?.synced ? s : null;
    }, 20000, 'the edge to follow p1');
    assert.equal(es.coordinator.election_revision, key.createRevision);
    ns = await edge.createNamespace('failover');
  });

  for (let round = 0; round < ROUNDS; round++) {
    const kind = KINDS[round % KINDS.length];
    it(`round ${round + 1}: ${kind} the primary under ~${RATE} writes/s through the edge`, async (t) => {
      assert.ok(ns, 'the namespace exists (first test passed)');
      const [old] = await waitFor(async () => { const p = await writablePrimaries(); return p.length === 1 ? p : null; }, 30000, 'one writable primary');
      const oldSt = await statusOf(old.srv);

      // --- load: WORKERS paced writers through the edge; every answer recorded
      const writes = [];
      let stop = false;
      const worker = async (w) => {
        const period = (1000 * WORKERS) / RATE;
        for (let i = 0; !stop; i++) {
          const key = `r${round}/w${w}/${i}`;
          const t0 = Date.now();
          let ok = false;
          let code = 0;
          try {
            const res = await edge.fetch('PUT', `${edge.ns(ns)}/values/${encodeURIComponent(key)}`, { body: `v:${key}` });
            code = res.status;
            const j = await res.json().catch(() => null);
            ok = res.status === 200 && j?.success === true;
          } catch { code = -1; }
          writes.push({ key, t0, t1: Date.now(), ok, code });
          const wait = t0 + period - Date.now();
          if (wait > 0) await sleep(wait);
        }
      };
      // --- watchdog: never two nodes taking writes at once
      let maxWritable = 0;
      let watching = true;
      const watchdog = (async () => {
        while (watching) {
          const p = await writablePrimaries();
          if (p.length > maxWritable) maxWritable = p.length;
          if (p.length > 1) t.diagnostic(`two writable primaries: ${p.map((d) => d.id)}`);
          await sleep(100);
        }
      })();
      const loops = [];
      for (let w = 0; w < WORKERS; w++) loops.push(worker(w));
      await sleep(2000);

      const tk = Date.now();
      if (kind === 'SIGKILL' || kind === 'SIGTERM') {
        await old.srv.kill(kind); // (SIGTERM: drained, lease revoked, exit 0)
      } else {
        old.stopped = true;
        old.srv.proc.kill('SIGSTOP');
      }
      // --- writes succeed again, through another primary
      const okAfter = () => writes.find((x) => x.ok && x.t0 > tk);
      await waitFor(async () => okAfter(), 30000, 'a write to succeed after the failure');
      const recoveredMs = okAfter().t1 - tk;
      await sleep(1000);
      stop = true;
      await Promise.all(loops);
      const [nu] = await waitFor(async () => { const p = await writablePrimaries(); return p.length === 1 ? p : null; }, 15000, 'the new primary');
      assert.notEqual(nu, old, 'another node is the primary');
      const nuSt = await statusOf(nu.srv);
      assert.ok(nuSt.epoch > oldSt.epoch, `epoch moved on (${oldSt.epoch} -> ${nuSt.epoch})`);
      assert.equal(nuSt.coordinator.election_revision, nuSt.epoch, 'the new epoch is the election revision');

      // --- the old primary: woken, it refuses every write, then rejoins as a replica
      let refused = [];
      if (kind === 'SIGSTOP') {
        old.srv.proc.kill('SIGCONT');
        old.stopped = false;
        for (let i = 0; i < 5; i++) {
          try {
            const r = await old.srv.fetch('PUT', `${old.srv.ns(ns)}/values/woken-${round}-${i}`, { body: 'x', headers: {} });
            refused.push(r.status);
          } catch { refused.push(-1); } // the restart closed the connection: not acknowledged either
          await sleep(50);
        }
        assert.ok(refused.every((s) => s !== 200), `the woken old primary acknowledged a write: ${refused}`);
        assert.ok(refused.includes(503), `the woken old primary answers 503: ${refused}`);
      } else {
        await startData(old); // same data dir and command line
      }
      await waitFor(async () => {
        const s = await statusOf(old.srv);
        return s && s.role === 'replica' && s.replica?.state === 'streaming' && s.epoch === nuSt.epoch ? s : null;
      }, 60000, `${old.id} to rejoin as a replica of ${nu.id}`);
      // the most caught-up replica won: the others follow it without discarding anything (a
      // replica ahead of the winner would have to drop the records the winner never had)
      for (const d of data) {
        if (d === old || d === nu) continue;
        const s = await waitFor(async () => {
          const x = await statusOf(d.srv);
          return x && x.replica?.state === 'streaming' && x.epoch === nuSt.epoch ? x : null;
        }, 20000, `${d.id} to follow ${nu.id}`);
        assert.equal(s.replica.discarded_records, 0, `${d.id} was ahead of the elected ${nu.id}`);
      }
      watching = false;
      await watchdog;
      assert.ok(maxWritable <= 1, `at most one writable primary at any time (saw ${maxWritable})`);

      // --- every acknowledged write is on the new primary
      const acked = writes.filter((x) => x.ok).map((x) => x.key);
      const nuNode = nu.srv;
      for (let i = 0; i < acked.length; i += 100) {
        const keys = acked.slice(i, i + 100);
        const r = expectOk(await nuNode.api('POST', `${nuNode.ns(ns)}/bulk/get`, { json: { keys } }));
        const missing = keys.filter((k) => r.values[k] !== `v:${k}`);
        assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged writes missing on ${nu.id}`);
      }
      const failed = writes.filter((x) => !x.ok).length;
      const secs = (writes[writes.length - 1].t1 - writes[0].t0) / 1000;
      const ackedBefore = writes.filter((x) => x.ok && x.t1 <= tk).length;
      const line = { round: round + 1, kind, old: old.id, new: nu.id, recovered_ms: recoveredMs,
        acked_per_s_before: Math.round(ackedBefore / ((tk - writes[0].t0) / 1000)),
        writes: writes.length, acked: acked.length, not_acked: failed, offered_per_s: Math.round(writes.length / secs),
        old_epoch: oldSt.epoch, new_epoch: nuSt.epoch, woken_answers: refused };
      if (recoveredMs > 7000) { // what took long: the coordinator lines of every node since the failure
        const since = new Date(tk - 500).toISOString();
        const lines = (node, id) => node.stderr.split('\n')
          .filter((l) => /coordinator|upstream|promot|replica state/.test(l) && (/ts=(\S+)/.exec(l)?.[1] || '') >= since)
          .map((l) => `${id}: ${l}`);
        line.slow_log = [...data.flatMap((d) => lines(d.srv, d.id)), ...lines(edge, 'e1')].slice(0, 80);
      }
      t.diagnostic(JSON.stringify(line));
      if (REPORT) appendFileSync(REPORT, JSON.stringify(line) + '\n');
      assert.ok(recoveredMs <= 10000, `writes succeeded again after ${recoveredMs} ms (> 10 s)`);
      if (kind === 'SIGTERM') assert.ok(recoveredMs <= 4000, `a planned stop failed over in ${recoveredMs} ms: was the lease revoked?`);
    });
  }
});
