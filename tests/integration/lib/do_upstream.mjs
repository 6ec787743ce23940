// A scriptable HTTP upstream standing in for a Durable Object namespace's `script` URL
// (docs/API.md "Durable Objects": calls go to <script>/<path>, alarms to
// <script>/__edgekv/alarm).
//
//   const up = await startUpstream();
//   // ns script: up.url
//   up.on({ path: '/slow' }, { status: 200, body: 'late', delayMs: 500 });
//   up.on({ alarm: true, objectId: id, times: 3 }, { status: 500 });   // fail 3 deliveries
//   const [d] = await up.waitRequests((r) => r.isAlarm && r.objectId === id, 1, 10000);
//   up.maxConcurrency(id)    // most requests of that object ever in flight at once
//   await up.close();
//
// Every request is recorded as { seq, method, url, path, query, headers (lower-case names),
// body (Buffer), text, json, time (Date.now() at arrival), endTime, objectId, namespaceId,
// objectName, isAlarm }. Without a matching rule the upstream answers 200 with a JSON echo
// { method, path, query, headers, body (text), objectId } and content-type application/json.
import http from 'node:http';

export async function startUpstream({ host = '127.0.0.1' } = {}) {
  const requests = [];
  const rules = [];
  const inflight = new Map(); // objectId -> in flight now
  const maxInflight = new Map(); // objectId -> max in flight
  let inflightAll = 0;
  let maxInflightAll = 0;
  let waiters = [];
  let seq = 0;
  const sockets = new Set();

  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };

  const match = (rule, rec) => {
    const m = rule.match;
    if (m.path !== undefined && (m.path instanceof RegExp ? !m.path.test(rec.path) : m.path !== rec.path)) return false;
    if (m.method !== undefined && m.method !== rec.method) return false;
    if (m.objectId !== undefined && m.objectId !== rec.objectId) return false;
    if (m.alarm !== undefined && m.alarm !== rec.isAlarm) return false;
    if (m.fn && !m.fn(rec)) return false;
    return true;
  };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const u = new URL(req.url, 'http://upstream.invalid');
      const text = body.toString('utf8');
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      const headers = {};
      for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
      const rec = {
        seq: seq++,
        method: req.method,
        url: req.url,
        path: u.pathname,
        query: u.search.startsWith('?') ? u.search.slice(1) : u.search,
        rawHeaders: req.rawHeaders,
        headers,
        body,
        text,
        json,
        time: Date.now(),
        endTime: null,
        objectId: headers['edgekv-object-id'],
        namespaceId: headers['edgekv-namespace-id'],
        objectName: headers['edgekv-object-name'],
        isAlarm: u.pathname.endsWith('/__edgekv/alarm'),
        status: null,
      };
      const key = rec.objectId || '';
      const now = (inflight.get(key) || 0) + 1;
      inflight.set(key, now);
      maxInflight.set(key, Math.max(maxInflight.get(key) || 0, now));
      inflightAll++;
      maxInflightAll = Math.max(maxInflightAll, inflightAll);
      requests.push(rec);
      wake();

      let spec = null;
      for (const rule of rules) {
        if (rule.times !== undefined && rule.times <= 0) continue;
        if (!match(rule, rec)) continue;
        if (rule.times !== undefined) rule.times--;
        spec = typeof rule.respond === 'function' ? await rule.respond(rec) : rule.respond;
        break;
      }
      if (!spec) {
        spec = rec.isAlarm
          ? { status: 200, body: 'alarm ok' }
          : {
            status: 200,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ method: rec.method, path: rec.path, query: rec.query, headers: rec.headers, body: text, objectId: rec.objectId }),
          };
      }
      const finish = () => {
        inflight.set(key, inflight.get(key) - 1);
        inflightAll--;
        rec.endTime = Date.now();
        wake();
      };
      const send = () => {
        if (spec.destroy) { // drop the connection without an answer
          finish();
          req.socket.destroy();
          return;
        }
        rec.status = spec.status || 200;
        // finish before the bytes leave: the server may start the next call as soon as it has
        // this answer, and that must not count as overlapping.
        finish();
        res.writeHead(rec.status, spec.headers || {});
        res.end(spec.body === undefined ? '' : spec.body);
      };
      if (spec.delayMs) setTimeout(send, spec.delayMs);
      else send();
    });
  });
  server.keepAliveTimeout = 30000;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address();

  const up = {
    port,
    url: `http://${host}:${port}`,
    requests,
    // Add a rule: match { path (string|RegExp), method, objectId, alarm (bool), fn(rec) },
    // respond { status, headers, body, delayMs, destroy } or (rec) => that; times: how many
    // requests it answers (undefined: all). Earlier rules win. Returns the rule (rule.times
    // shows what is left).
    on(matchSpec, respond, times) {
      const rule = { match: matchSpec || {}, respond, times: times ?? matchSpec?.times };
      rules.push(rule);
      return rule;
    },
    clearRules() { rules.length = 0; },
    reset() {
      rules.length = 0;
      requests.length = 0;
      maxInflight.clear();
      maxInflightAll = inflightAll;
    },
    filter(pred) { return requests.filter(pred); },
    alarms(objectId) { return requests.filter((r) => r.isAlarm && (objectId === undefined || r.objectId === objectId)); },
    maxConcurrency(objectId) { return maxInflight.get(objectId) || 0; },
    get maxConcurrencyAll() { return maxInflightAll; },
    inflight(objectId) { return inflight.get(objectId) || 0; },
    // Until at least n recorded requests satisfy pred; returns them (all that match).
    async waitRequests(pred, n = 1, timeoutMs = 10000, what = 'upstream requests') {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const got = requests.filter(pred);
        if (got.length >= n) return got;
        const left = until - Date.now();
        if (left <= 0) {
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${n} ${what} (have ${got.length}; `
            + `all requests: ${JSON.stringify(requests.map((r) => ({ m: r.method, p: r.path, o: r.objectId?.slice(0, 8), t: r.time })))})`);
        }
        await new Promise((res) => {
          const t = setTimeout(res, Math.min(left, 200));
          waiters.push(() => { clearTimeout(t); res(); });
        });
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(() => res()));
    },
  };
  return up;
}

// A loopback port nothing listens on (bound, then closed).
export async function deadPort() {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
