// Replication test helpers: start primaries and replicas of the real binary on loopback (through
// harness.startServer), read their replication status, checksum and metrics, drive a write load
// that remembers every acknowledged write, and wait for convergence.
//
//   const c = new Cluster('conv');
//   const p = await c.startPrimary({ nodeId: 'p1' });
//   const r = await c.startReplica(p, { nodeId: 'r1' });
//   await waitStreaming(c, r);
//   ...
//   await waitConverged(c, p, [r]);   // equal last_seq everywhere, then equal checksums
//   await c.cleanup();                // in after(): SIGCONT + SIGKILL what runs, remove data dirs
//
// Interface (docs: the replication spec): GET /_edgekv/replication/status (no auth),
// GET /_edgekv/replication/checksum and POST /_edgekv/replication/promote (operator token).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { startServer, expectOk, multipart, operatorToken, sleep } from './harness.mjs';

// ---------------------------------------------------------------------------------------------
// Raw calls on a node's origin (the replication endpoints live outside /client/v4).

// { status, body, headers, text, method, path }, the shape expectOk/expectError take.
export async function call(node, method, path, { token, body, headers = {}, timeoutMs = 10000 } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(node.origin + path, { method, headers: h, body, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed, headers: res.headers, text, method, path: `${node.nodeId}:${path}` };
}

// The replication status result of a node (throws if the node does not answer it with 200).
export async function status(node, timeoutMs = 5000) {
  return expectOk(await call(node, 'GET', '/_edgekv/replication/status', { timeoutMs }));
}

// The status, or null when the node is down / stopped / does not answer in time.
export async function tryStatus(node, timeoutMs = 1500) {
  if (!node.running) return null;
  try { return await status(node, timeoutMs); } catch { return null; }
}

// { checksum, keys, last_seq } of the node's full replicated keyspace (operator token).
export async function checksum(node, timeoutMs = 60000) {
  return expectOk(await call(node, 'GET', '/_edgekv/replication/checksum', { token: node.operatorToken, timeoutMs }));
}

// POST /_edgekv/replication/promote with the operator token; the raw reply.
export function promote(node, token = node.operatorToken) {
  return call(node, 'POST', '/_edgekv/replication/promote', { token, timeoutMs: 30000 });
}

export async function metricsText(node) {
  const res = await fetch(`${node.origin}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, `${node.nodeId}: GET /metrics -> ${res.status}`);
  return res.text();
}

// Value of a Prometheus sample: name plus labels that must all match (a subset of the line's
// labels). undefined when no line matches; the sum when several do.
export function metricValue(text, name, labels = {}) {
  let found;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = {};
    for (const lm of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[lm[1]] = lm[2];
    if (!Object.entries(labels).every(([k, v]) => have[k] === String(v))) continue;
    found = (found || 0) + Number(m[4]);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Log lines (logfmt on stderr): msg="<msg>" k=v ...

export function logLines(text, msg) {
  return text.split('\n').filter((l) => l.includes(`msg="${msg}"`));
}

// Field of a logfmt line (value unquoted), or undefined.
export function logField(line, name) {
  const m = new RegExp(`(?:^|\\s)${name}=("(?:[^"\\\\]|\\\\.)*"|\\S*)`).exec(line);
  if (!m) return undefined;
  return m[1].startsWith('"') ? m[1].slice(1, -1) : m[1];
}

// Lines with msg="<msg>" whose fields include all of `fields` (e.g. { replica: 'r1' }).
export function logLinesWith(text, msg, fields = {}) {
  return logLines(text, msg).filter((l) => Object.entries(fields).every(([k, v]) => logField(l, k) === String(v)));
}

function tail(text, lines = 30) {
  return text.split('\n').slice(-lines - 1).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Cluster: every node and data dir of one test group, for start, restart, diagnostics, cleanup.

export class Cluster {
  constructor(label = 'cluster') {
    this.label = label;
    this.nodes = []; // every process ever started (restarts are new entries)
    this.dirs = [];
  }

  // The cluster secret file every node of this cluster gets (--cluster-secret-file), made on
  // first use: 64 hex characters and a newline, mode 600.
  secretFile() {
    if (!this.secretPath) {
      this.secret = randomBytes(32).toString('hex');
      this.secretPath = join(this.newDir(), 'cluster.secret');
      writeFileSync(this.secretPath, this.secret + '\n', { mode: 0o600 });
    }
    return this.secretPath;
  }

  newDir() {
    const d = mkdtempSync(join(tmpdir(), `edgekv-it-${this.label}-`));
    this.dirs.push(d);
    return d;
  }

  // Start any node. o: { nodeId, role, args (after the role flags), dataDir, accountId, token,
  // replListen (primary: default 127.0.0.1:0; replica: none unless given; edge: never),
  // primaryAddrs (replica; edge: the primary's repl address), replicaAddrs (edge: --replicas),
  // env, startTimeoutMs, secretFile (default: the cluster's, secretFile(); null: none) }.
  async start(o) {
    const dataDir = o.dataDir || this.newDir(); // an edge ignores it (it holds no data)
    const args = ['--role', o.role, '--node-id', o.nodeId];
    const secret = o.secretFile !== undefined ? o.secretFile : this.secretFile();
    if (secret) args.push('--cluster-secret-file', secret);
    const replListen = o.replListen !== undefined ? o.replListen : (o.role === 'primary' ? '127.0.0.1:0' : null);
    if (replListen) args.push('--repl-listen', replListen);
    if (o.role === 'replica') args.push('--primary', [].concat(o.primaryAddrs).join(','));
    if (o.role === 'edge') {
      args.push('--primary', [].concat(o.primaryAddrs).join(','));
      const reps = [].concat(o.replicaAddrs || []);
      if (reps.length) args.push('--replicas', reps.join(','));
    }
    args.push(...(o.args || []));
    const srv = await startServer({
      dataDir, accountId: o.accountId, token: o.token, args, env: o.env, startTimeoutMs: o.startTimeoutMs,
      operatorToken: secret ? operatorToken(readFileSync(secret, 'utf8')) : null,
    });
    srv.nodeId = o.nodeId;
    srv.role = o.role;
    srv.startOpts = { ...o, dataDir };
    srv.args = args;
    this.nodes.push(srv);
    const st = await status(srv);
    srv.replAddr = st.repl_listen; // null on a replica that was not promoted
    return srv;
  }

  // A primary with a fresh account + root token (harness presets) unless given.
  startPrimary({ nodeId = 'p1', args = [], ...rest } = {}) {
    return this.start({ role: 'primary', nodeId, args, ...rest });
  }

  // A replica following `primary` (a node: its repl address and credentials are used), or the
  // addresses in rest.primaryAddrs. The replica gets the primary's account id and token only so
  // that the test's requests authenticate; the replica itself ignores those presets.
  startReplica(primary, { nodeId = 'r1', args = [], ...rest } = {}) {
    return this.start({
      role: 'replica',
      nodeId,
      args,
      accountId: primary.accountId,
      token: primary.token,
      primaryAddrs: rest.primaryAddrs || primary.replAddr,
      ...rest,
    });
  }

  // An edge (--role edge) in front of `primary` and `replicas` (nodes: their repl addresses are
  // used; replicas must have been started with replListen), or the addresses in
  // rest.primaryAddrs / rest.replicaAddrs. It gets the primary's account id and token only so that
  // the test's requests authenticate (an edge learns tokens from its change stream). Unless
  // waitSynced is false, waits until its status says edge.synced (syncTimeoutMs, default 15 s).
  async startEdge(primary, replicas = [], { nodeId = 'e1', args = [], waitSynced = true, syncTimeoutMs = 15000, ...rest } = {}) {
    const edge = await this.start({
      role: 'edge',
      nodeId,
      args,
      accountId: primary.accountId,
      token: primary.token,
      primaryAddrs: rest.primaryAddrs || primary.replAddr,
      replicaAddrs: rest.replicaAddrs || replicas.map((r) => {
        if (!r.replAddr) throw new Error(`${r.nodeId} has no repl address (start it with replListen: '127.0.0.1:0')`);
        return r.replAddr;
      }),
      ...rest,
    });
    if (waitSynced) await waitEdgeSynced(this, edge, { timeoutMs: syncTimeoutMs });
    return edge;
  }

  // Start `node`'s data dir again; overrides replace the original options (e.g. role, args).
  restart(node, overrides = {}) {
    return this.start({ ...node.startOpts, accountId: node.accountId, token: node.token, ...overrides });
  }

  running() {
    return this.nodes.filter((n) => n.running);
  }

  // Human-readable state of every running node (status + stderr tail) for failure messages.
  async describe(extra = []) {
    const out = [];
    const seen = new Set();
    for (const n of [...extra, ...this.nodes]) {
      if (seen.has(n)) continue;
      seen.add(n);
      if (!n.running) {
        out.push(`--- ${n.nodeId} (${n.role}) port ${n.port}: not running (exit ${n.proc.exitCode} ${n.proc.signalCode})`);
        continue;
      }
      const st = n.stopped ? null : await tryStatus(n);
      out.push(`--- ${n.nodeId} (${n.role}) port ${n.port}${n.stopped ? ' [SIGSTOPped]' : ''}`);
      out.push(`status: ${st ? JSON.stringify(st) : '(no answer)'}`);
      out.push(`stderr tail:\n${tail(n.stderr)}`);
    }
    return out.join('\n');
  }

  // waitFor, with the cluster's state in the error on timeout. An exception from fn (e.g. a
  // node not answering yet) counts as "not yet" and is reported if the wait times out.
  async waitFor(fn, timeoutMs, what, stepMs = 100) {
    const until = Date.now() + timeoutMs;
    let lastErr = null;
    for (;;) {
      let v;
      try { v = await fn(); } catch (e) { v = null; lastErr = e; }
      if (v) return v;
      if (Date.now() > until) {
        throw new Error(`[${this.label}] timed out after ${timeoutMs} ms waiting for ${what}`
          + `${lastErr ? `\nlast error: ${lastErr.message}` : ''}\n${await this.describe()}`);
      }
      await sleep(stepMs);
    }
  }

  async cleanup() {
    for (const n of this.nodes) {
      if (!n.running) continue;
      try { n.proc.kill('SIGCONT'); } catch { /* gone */ }
      await n.kill('SIGKILL');
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

// SIGSTOP / SIGCONT a node (remembered so diagnostics do not wait on a stopped process).
export function pause(node) { node.stopped = true; node.proc.kill('SIGSTOP'); }
export function resume(node) { node.proc.kill('SIGCONT'); node.stopped = false; }

// ---------------------------------------------------------------------------------------------
// Waits.

// Until the replica says it is streaming (and, when `primary` is given, the primary lists it as
// streaming). Returns the replica's status.
export async function waitStreaming(cluster, replica, { primary, timeoutMs = 15000 } = {}) {
  let rs;
  await cluster.waitFor(async () => {
    rs = await tryStatus(replica);
    if (!rs || rs.replica?.state !== 'streaming') return false;
    if (!primary) return true;
    const ps = await tryStatus(primary);
    return ps && (ps.replicas || []).some((r) => r.node_id === replica.nodeId && r.state === 'streaming');
  }, timeoutMs, `${replica.nodeId} streaming${primary ? ` from ${primary.nodeId}` : ''}`);
  return rs;
}

// Until the edge's status says edge.synced (catalog received) and its change stream is
// streaming. Returns the edge's status.
export async function waitEdgeSynced(cluster, edge, { timeoutMs = 15000 } = {}) {
  let es;
  await cluster.waitFor(async () => {
    es = await tryStatus(edge);
    return es && es.edge?.synced === true && es.stream?.state === 'streaming';
  }, timeoutMs, `edge ${edge.nodeId} synced and streaming`);
  return es;
}

// Convergence: wait until every replica's last_seq equals the primary's (and the primary's did
// not move meanwhile, and it lists each replica as streaming with acked_seq == its last_seq),
// then take every node's checksum; when they were all computed at the same
// last_seq they must be equal (asserted). Call only after writes stopped. Returns the primary's
// checksum result.
export async function waitConverged(cluster, primary, replicas, { timeoutMs = 30000, checksumTimeoutMs = 60000 } = {}) {
  const until = Date.now() + timeoutMs;
  let lastSeen = '';
  for (;;) {
    const ps = await status(primary);
    const rs = await Promise.all(replicas.map((r) => tryStatus(r, 3000)));
    lastSeen = `primary ${primary.nodeId} last_seq ${ps.last_seq}; `
      + replicas.map((r, i) => `${r.nodeId} ${rs[i] ? `last_seq ${rs[i].last_seq} state ${rs[i].replica?.state}` : 'no status'}`).join(', ');
    // every replica applied everything, and the primary has received its ack
    const acked = (st) => replicas.every((r) => (st.replicas || [])
      .some((l) => l.node_id === r.nodeId && l.state === 'streaming' && l.acked_seq === st.last_seq));
    if (rs.every((s) => s && s.last_seq === ps.last_seq)) {
      const ps2 = await status(primary);
      if (ps2.last_seq === ps.last_seq && !acked(ps2)) {
        lastSeen += `; primary has not received every ack: ${JSON.stringify(ps2.replicas)}`;
      } else if (ps2.last_seq === ps.last_seq) {
        const nodes = [primary, ...replicas];
        const sums = await Promise.all(nodes.map((n) => checksum(n, checksumTimeoutMs)));
        if (sums.every((s) => s.last_seq === sums[0].last_seq)) {
          for (let i = 1; i < nodes.length; i++) {
            assert.deepEqual({ checksum: sums[i].checksum, keys: sums[i].keys },
              { checksum: sums[0].checksum, keys: sums[0].keys },
              `[${cluster.label}] ${nodes[i].nodeId} differs from ${primary.nodeId} at last_seq ${sums[0].last_seq}: `
              + `${JSON.stringify(sums.map((s, j) => ({ node: nodes[j].nodeId, ...s })))}\n${await cluster.describe()}`);
          }
          return sums[0];
        }
        lastSeen += `; checksums taken at different last_seq: ${JSON.stringify(sums)}`;
      }
    }
    if (Date.now() > until) {
      throw new Error(`[${cluster.label}] not converged after ${timeoutMs} ms: ${lastSeen}\n${await cluster.describe()}`);
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Write load: unique keys (so each acknowledged write can be checked), an overwriter (hot keys
// with increasing versions), a deleter (deletes acknowledged keys). Nothing is counted as
// acknowledged unless the reply was HTTP 200 with success: true.

export const valueOf = (key, n = 0) => `val:${key}:${n}:${'x'.repeat((key.length * 7 + n) % 61)}`;
export const metaOf = (key, n = 0) => ({ key, n, t: 'repl' });
// Metadata a load key was written with: raw-body PUTs (keys with "/raw/") carry none.
const expectedMeta = (key) => (key.includes('/raw/') ? null : metaOf(key));

// node: where to write. namespaces: ns ids (keys are spread over them).
// opts: { tag, putWriters, bulkWriters, bulkItems, overwriter, deleter, pauseMs, hardStopMs }
export function startLoad(node, namespaces, opts = {}) {
  const {
    tag = `L${randomBytes(3).toString('hex')}`,
    putWriters = 4, bulkWriters = 1, bulkItems = 20, overwriter = true, deleter = true,
    pauseMs = 0, hardStopMs = 60000,
  } = opts;
  const load = {
    tag,
    acked: new Map(), // key -> ns (currently expected present with valueOf(key)/metaOf(key))
    order: [], // acked keys in ack order (deleter candidates)
    deleted: new Map(), // key -> ns (acknowledged deletes)
    maybe: new Set(), // keys whose delete was not acknowledged either way
    hot: new Map(), // key -> { ns, n } last acknowledged version
    ackOps: 0, // acknowledged requests
    failures: new Map(), // "status" or "neterr" -> count (requests not acknowledged)
    lastError: null,
    stopped: false,
  };
  const deadline = Date.now() + hardStopMs;
  const running = () => !load.stopped && Date.now() < deadline;
  const fail = (what, detail) => {
    load.failures.set(what, (load.failures.get(what) || 0) + 1);
    load.lastError = detail;
  };
  const nsFor = (i) => namespaces[i % namespaces.length];
  // One request; true when acknowledged (200 + success true).
  const send = async (method, path, body, headers) => {
    try {
      const res = await node.fetch(method, path, { body, headers });
      const text = await res.text();
      let ok = false;
      if (res.status === 200) {
        try { ok = JSON.parse(text).success === true; } catch { ok = false; }
      }
      if (!ok) fail(String(res.status), `${method} ${path} -> ${res.status} ${text.slice(0, 300)}`);
      return ok;
    } catch (e) {
      fail('neterr', `${method} ${path}: ${e.message}`);
      return false;
    }
  };
  const ack = (key, ns) => { load.acked.set(key, ns); load.order.push(key); };
  const pace = () => (pauseMs ? sleep(pauseMs) : null);

  const putLoop = async (w) => {
    for (let i = 0; running(); i++) {
      const key = `${tag}/w${w}/${i % 2 ? 'mp' : 'raw'}/${i}`;
      const ns = nsFor(i + w);
      const p = `${node.ns(ns)}/values/${encodeURIComponent(key)}`;
      let ok;
      if (i % 2) {
        const mp = multipart([{ name: 'value', data: valueOf(key) }, { name: 'metadata', data: JSON.stringify(metaOf(key)) }]);
        // every 4th key also expires (far in the future): expirations replicate too
        ok = await send('PUT', i % 4 === 1 ? `${p}?expiration_ttl=86400` : p, mp.body, { 'content-type': mp.contentType });
      } else {
        ok = await send('PUT', p, valueOf(key));
      }
      if (ok) { load.ackOps++; ack(key, ns); }
      await pace();
    }
  };
  const bulkLoop = async (w) => {
    for (let i = 0; running(); i++) {
      const ns = nsFor(i + w);
      const items = [];
      for (let j = 0; j < bulkItems; j++) {
        const key = `${tag}/b${w}/${i}/${j}`;
        const v = valueOf(key);
        items.push(j % 2
          ? { key, value: Buffer.from(v).toString('base64'), base64: true, metadata: metaOf(key) }
          : { key, value: v, metadata: metaOf(key) });
      }
      const ok = await send('PUT', `${node.ns(ns)}/bulk`, JSON.stringify(items), { 'content-type': 'application/json' });
      if (ok) { load.ackOps++; for (const it of items) ack(it.key, ns); }
      await pace();
    }
  };
  const overwriteLoop = async () => {
    for (let n = 1; running(); n++) {
      const key = `${tag}/hot/${n % 5}`;
      const ns = namespaces[0];
      const mp = multipart([{ name: 'value', data: valueOf(key, n) }, { name: 'metadata', data: JSON.stringify(metaOf(key, n)) }]);
      const ok = await send('PUT', `${node.ns(ns)}/values/${encodeURIComponent(key)}`, mp.body, { 'content-type': mp.contentType });
      if (ok) { load.ackOps++; load.hot.set(key, { ns, n: Math.max(load.hot.get(key)?.n || 0, n) }); }
      await pace();
    }
  };
  const deleteLoop = async () => {
    let next = 0;
    while (running()) {
      // delete every 3rd acknowledged key, oldest first
      if (next >= load.order.length) { await sleep(20); continue; }
      const key = load.order[next];
      next += 3;
      const ns = load.acked.get(key);
      if (ns === undefined) continue;
      load.acked.delete(key); // from now on its state is decided by the delete's outcome
      const ok = await send('DELETE', `${node.ns(ns)}/values/${encodeURIComponent(key)}`);
      if (ok) { load.ackOps++; load.deleted.set(key, ns); } else load.maybe.add(key);
      await pace();
    }
  };

  const loops = [];
  for (let w = 0; w < putWriters; w++) loops.push(putLoop(w));
  for (let w = 0; w < bulkWriters; w++) loops.push(bulkLoop(w));
  if (overwriter) loops.push(overwriteLoop());
  if (deleter) loops.push(deleteLoop());
  const all = Promise.all(loops);
  load.stop = async () => {
    load.stopped = true;
    await all;
  };
  load.failureCount = () => [...load.failures.values()].reduce((a, b) => a + b, 0);
  load.summary = () => `acked ops ${load.ackOps}, live keys ${load.acked.size}, deletes ${load.deleted.size}, `
    + `hot ${load.hot.size}, not acknowledged ${JSON.stringify(Object.fromEntries(load.failures))}`
    + `${load.lastError ? `, last: ${load.lastError}` : ''}`;
  return load;
}

// Read every acknowledged write of `load` back through `node`'s API (bulk get with metadata,
// 100 keys a request): live keys hold exactly their value + metadata, acknowledged deletes are
// absent, hot keys hold at least their last acknowledged version (value and metadata of the
// same write). Returns the number of keys checked.
export async function verifyAcked(node, load, label = node.nodeId) {
  const byNs = new Map();
  const want = (ns) => { if (!byNs.has(ns)) byNs.set(ns, { live: [], gone: [] }); return byNs.get(ns); };
  for (const [k, ns] of load.acked) want(ns).live.push(k);
  for (const [k, ns] of load.deleted) want(ns).gone.push(k);
  const missing = [];
  const wrong = [];
  const back = [];
  const jobs = [];
  for (const [ns, { live, gone }] of byNs) {
    for (let i = 0; i < live.length; i += 100) jobs.push({ ns, keys: live.slice(i, i + 100), live: true });
    for (let i = 0; i < gone.length; i += 100) jobs.push({ ns, keys: gone.slice(i, i + 100), live: false });
  }
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      const r = await node.api('POST', `${node.ns(job.ns)}/bulk/get`, { json: { keys: job.keys, withMetadata: true } });
      const res = expectOk(r);
      for (const k of job.keys) {
        const got = res.values[k];
        if (job.live) {
          if (got === null || got === undefined) missing.push(k);
          else if (got.value !== valueOf(k) || JSON.stringify(got.metadata) !== JSON.stringify(expectedMeta(k))) wrong.push({ k, got });
        } else if (got !== null) back.push(k);
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  assert.deepEqual(missing.slice(0, 20), [], `${label}: ${missing.length} of ${load.acked.size} acknowledged keys missing`);
  assert.deepEqual(wrong.slice(0, 5), [], `${label}: ${wrong.length} acknowledged keys have the wrong value/metadata`);
  assert.deepEqual(back.slice(0, 20), [], `${label}: ${back.length} acknowledged deletes are present`);
  for (const [k, { ns, n }] of load.hot) {
    const meta = expectOk(await node.api('GET', `${node.ns(ns)}/metadata/${encodeURIComponent(k)}`));
    assert.ok(meta && meta.n >= n, `${label}: ${k} holds version ${meta?.n}, last acknowledged ${n}`);
    const res = await node.fetch('GET', `${node.ns(ns)}/values/${encodeURIComponent(k)}`);
    assert.equal(res.status, 200, `${label}: GET ${k}`);
    assert.equal(await res.text(), valueOf(k, meta.n), `${label}: ${k}: value and metadata from different writes`);
  }
  return load.acked.size + load.deleted.size + load.hot.size;
}
