// Write load across a failover, for tests/deploy/compose.test.sh. Talks to the cluster's
// client endpoint with CLOUDFLARE_API_BASE_URL, CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID.
//
//   node failover.mjs write DIR    create a namespace (DIR/ns), then PUT new keys (WRITE_RATE
//                                  per second, WRITE_CONCURRENCY at once) until DIR/stop
//                                  exists; DIR/kill_ms (epoch ms, written by the caller just
//                                  before it kills the primary) marks the failover. Writes
//                                  DIR/acked.json (every key answered 200 + success, with its
//                                  value) and DIR/summary.json, and prints the summary.
//   node failover.mjs verify DIR   every acknowledged key is listed and has its value, read
//                                  back through the endpoint (retried for VERIFY_MS: edges
//                                  read replicas); exit 1 naming the lost keys otherwise.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const [mode, dir] = process.argv.slice(2);
const base = process.env.CLOUDFLARE_API_BASE_URL;
const token = process.env.CLOUDFLARE_API_TOKEN;
const account = process.env.CLOUDFLARE_ACCOUNT_ID;
if (!['write', 'verify'].includes(mode) || !dir || !base || !token || !account) {
  console.error('usage: node failover.mjs write|verify DIR (with CLOUDFLARE_API_BASE_URL, _TOKEN, _ACCOUNT_ID)');
  process.exit(2);
}
const RATE = Number(process.env.WRITE_RATE || 400);
const CONCURRENCY = Number(process.env.WRITE_CONCURRENCY || 8);
const REQUEST_TIMEOUT_MS = Number(process.env.WRITE_TIMEOUT_MS || 15000);
const VERIFY_MS = Number(process.env.VERIFY_MS || 30000);
const nsUrl = `${base}/accounts/${account}/storage/kv/namespaces`;
const auth = { authorization: `Bearer ${token}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(method, url, body, headers = {}) {
  const res = await fetch(url, {
    method,
    headers: { ...auth, ...headers },
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // a value read, or an nginx error page
  }
  return { status: res.status, text, json };
}

async function write() {
  let ns = null;
  for (const deadline = Date.now() + 30000; !ns; await sleep(200)) {
    try {
      const r = await call('POST', nsUrl, JSON.stringify({ title: `failover-${randomBytes(5).toString('hex')}` }), { 'content-type': 'application/json' });
      if (r.status === 200 && r.json?.success) ns = r.json.result.id;
      else if (Date.now() > deadline) throw new Error(`create namespace: ${r.status} ${r.text}`);
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
  writeFileSync(join(dir, 'ns'), ns);

  const acked = [];
  const events = []; // [start, end, ok, status]
  const statuses = {};
  let seq = 0;
  let nextAt = Date.now();
  const stopFile = join(dir, 'stop');
  let stop = false;
  const stopper = setInterval(() => { if (existsSync(stopFile)) stop = true; }, 50);

  async function worker() {
    while (!stop) {
      const now = Date.now();
      nextAt = Math.max(nextAt + 1000 / RATE, now - 1000); // no burst after a stall
      if (nextAt > now) await sleep(nextAt - now);
      const key = `k${String(seq++).padStart(7, '0')}`;
      const value = `${key}-${randomBytes(6).toString('hex')}`;
      const start = Date.now();
      let st;
      try {
        const r = await call('PUT', `${nsUrl}/${ns}/values/${key}`, value);
        st = r.status === 200 && r.json?.success ? 200 : `${r.status}${r.json?.errors?.[0] ? `/${r.json.errors[0].code}` : ''}`;
      } catch (e) {
        st = e.name === 'TimeoutError' ? 'timeout' : `error:${e.cause?.code || e.name}`;
      }
      const end = Date.now();
      events.push([start, end, st === 200]);
      statuses[st] = (statuses[st] || 0) + 1;
      if (st === 200) acked.push([key, value]);
    }
  }
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  clearInterval(stopper);
  const t1 = Date.now();

  const killMs = existsSync(join(dir, 'kill_ms')) ? Number(readFileSync(join(dir, 'kill_ms'), 'utf8')) : null;
  const summary = { ns, seconds: (t1 - t0) / 1000, writes: events.length, acked: acked.length, statuses };
  summary.writes_per_s = Math.round(events.length / summary.seconds);
  // the longest time without any acknowledgement, anywhere in the run
  const okEnds = events.filter(([, , ok]) => ok).map(([, e]) => e).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < okEnds.length; i++) gap = Math.max(gap, okEnds[i] - okEnds[i - 1]);
  summary.longest_gap_s = gap / 1000;
  if (killMs) {
    // The outage is the longest stretch without an acknowledgement that ends after the kill
    // (writes already in flight may still be answered in the moment the kill takes);
    // recovery_s runs from the kill command to the first acknowledgement after that stretch.
    let best = null;
    for (let i = 1; i < okEnds.length; i++) {
      if (okEnds[i] < killMs) continue;
      const g = okEnds[i] - okEnds[i - 1];
      if (!best || g > best.gap) best = { gap: g, end: okEnds[i] };
    }
    summary.recovery_s = best ? Math.max(0, best.end - killMs) / 1000 : null;
    summary.outage_s = best ? best.gap / 1000 : null;
    summary.failed_after_kill = events.filter(([, e, ok]) => !ok && e >= killMs).length;
    summary.acked_after_kill = okEnds.filter((e) => e >= killMs).length;
  }
  writeFileSync(join(dir, 'acked.json'), JSON.stringify(acked));
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary));
  console.log(JSON.stringify(summary));
}

async function listAll(ns) {
  const names = new Set();
  let cursor = '';
  for (;;) {
    const q = new URLSearchParams({ limit: '1000', ...(cursor ? { cursor } : {}) });
    const r = await call('GET', `${nsUrl}/${ns}/keys?${q}`);
    if (r.status !== 200 || !r.json?.success) throw new Error(`list keys: ${r.status} ${r.text.slice(0, 300)}`);
    for (const k of r.json.result) names.add(k.name);
    cursor = r.json.result_info?.cursor || '';
    if (!cursor) return names;
  }
}

async function verify() {
  const ns = readFileSync(join(dir, 'ns'), 'utf8').trim();
  const acked = JSON.parse(readFileSync(join(dir, 'acked.json'), 'utf8'));
  if (acked.length === 0) throw new Error('no acknowledged write to check');
  const deadline = Date.now() + VERIFY_MS;
  let missing = acked;
  let wrong = [];
  let lastErr = null;
  while (Date.now() < deadline) {
    try {
      const listed = await listAll(ns);
      const notListed = acked.filter(([k]) => !listed.has(k));
      wrong = [];
      for (let i = 0; i < acked.length; i += 100) {
        const batch = acked.slice(i, i + 100);
        const r = await call('POST', `${nsUrl}/${ns}/bulk/get`, JSON.stringify({ keys: batch.map(([k]) => k) }), { 'content-type': 'application/json' });
        if (r.status !== 200 || !r.json?.success) throw new Error(`bulk get: ${r.status} ${r.text.slice(0, 300)}`);
        for (const [k, v] of batch) if (r.json.result.values[k] !== v) wrong.push([k, v, r.json.result.values[k]]);
      }
      missing = notListed;
      lastErr = null;
      if (missing.length === 0 && wrong.length === 0) break;
    } catch (e) {
      lastErr = e;
    }
    await sleep(500);
  }
  const out = { acked: acked.length, not_listed: missing.length, wrong_or_missing_value: wrong.length };
  console.log(JSON.stringify(out));
  if (lastErr) throw lastErr;
  if (missing.length || wrong.length) {
    console.error('lost keys (first 10):', JSON.stringify(missing.slice(0, 10).map(([k]) => k)));
    console.error('bad values (first 10: key, acked value, read value):', JSON.stringify(wrong.slice(0, 10)));
    process.exit(1);
  }
}

try {
  await (mode === 'write' ? write() : verify());
} catch (e) {
  console.error(`failover.mjs ${mode}: ${e.stack || e}`);
  process.exit(1);
}
