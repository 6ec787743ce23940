// Bounded output (docs/API.md "Bounded replies"): 1,000 connections each GET 1 MiB values and
// read nothing. Each sends PIPELINE requests at once: on loopback the kernel's autotuned send
// buffer (up to net.ipv4.tcp_wmem's max, 4 MiB) swallows a few whole replies, so the later
// ones are what waits in the server's memory. The server's memory stays bounded (--reply-memory-mb; large replies over it
// get 503 + Retry-After), /healthz and other clients' GETs keep answering within 50 ms, and
// the slow sockets are closed by the send deadline (--send-timeout-ms, --send-min-rate).
// A second server with the value cache on shows that replies of one cached value share its
// bytes: all 1,000 are queued and the reply memory counts each distinct value once.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { startServer, expectOk, procMemKiB, sleep, waitFor, sha256 } from './lib/harness.mjs';
import { metricsText, metricValue } from './lib/cluster.mjs';

const SANITIZED = process.env.EDGEKV_SANITIZED === '1';
const SLOW = 1000;
const VALUE_BYTES = 1 << 20;
const KEYS = 16;
const PIPELINE = 8;
// the send deadline's window: long enough that the saturated state can be checked before it
// closes the slow readers (the sanitized build is several times slower: it opens the
// connections and reads the 1 MiB values that are then shed at 100-200 per second; its runs
// took 40-60 s to settle, and one of five missed 60 s on the shared CI machine)
const SEND_MS = SANITIZED ? 90000 : 12000;
// the cached case's: every reply shares one value, so the 1,000 are queued within seconds; the
// window only has to outlast that and the settling check below
const CACHED_SEND_MS = SANITIZED ? 20000 : 8000;

function procStatus(pid) {
  const m = procMemKiB(pid);
  return { rssMiB: m.rss / 1024, hwmMiB: m.hwm / 1024 };
}

async function metrics(srv) {
  const text = await metricsText(srv);
  const get = (name) => metricValue(text, name) ?? NaN;
  return {
    replyMemory: get('edgekv_http_reply_memory_bytes'),
    queued: get('edgekv_http_replies_queued'),
    shed: get('edgekv_http_replies_shed_total'),
    sendTimeouts: get('edgekv_http_send_timeouts_total'),
    connections: get('edgekv_http_connections'),
  };
}

// The metrics once the server has settled: ok(m) holds and queued and shed did not move
// between two reads 1 s apart (nothing is being answered or shed any more).
async function settled(srv, ok, timeoutMs, what) {
  let last = null;
  return waitFor(async () => {
    const m = await metrics(srv);
    const steady = last && ok(m) && m.shed === last.shed && m.queued === last.queued;
    last = m;
    return steady ? m : null;
  }, timeoutMs, what, 1000);
}

// A client that sends PIPELINE GETs and never reads: the socket is paused before any byte arrives.
function slowReader(port, path, token) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      s.pause();
      s.write(`GET ${path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${token}\r\n\r\n`.repeat(PIPELINE));
      resolve(s);
    });
    s.on('error', reject);
  });
}

// Open n slow readers, a few at a time (the listen backlog is finite).
async function openSlowReaders(srv, paths) {
  const socks = [];
  for (let i = 0; i < paths.length; i += 50) {
    const batch = paths.slice(i, i + 50).map((p) => slowReader(srv.port, `/client/v4${p}`, srv.token));
    socks.push(...(await Promise.all(batch)));
  }
  for (const s of socks) s.on('error', () => {});
  return socks;
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return { r, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

// p50/max of n sequential probes.
async function probe(n, fn) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const { r, ms: t } = await timed(fn);
    assert.equal(r.status, 200, `probe answered ${r.status}`);
    ms.push(t);
    await sleep(20);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(n / 2)], max: ms[n - 1] };
}

async function setup(srv) {
  const ns = await srv.createNamespace();
  const keys = [];
  for (let i = 0; i < KEYS; i++) {
    const k = `big-${i}`;
    expectOk(await srv.api('PUT', `${srv.ns(ns)}/values/${k}`, { body: randomBytes(VALUE_BYTES) }));
    keys.push(k);
  }
  expectOk(await srv.api('PUT', `${srv.ns(ns)}/values/small`, { body: 'small value' }));
  return { ns, keys };
}

describe('bounded output: slow readers', { timeout: 400000 }, () => {
  const servers = [];
  after(async () => { for (const s of servers) await s.stop(); });

  it('1,000 non-reading clients of 1 MiB values: memory capped, others served, sockets closed', async (t) => {
    // cache off: every reply is its own 1 MiB read from the store (the worst case)
    const srv = await startServer({
      args: ['--cache-bytes', '0', '--reply-memory-mb', '64', '--send-timeout-ms', String(SEND_MS),
        '--send-min-rate', '65536', '--idle-timeout-ms', String(SEND_MS + 2000)],
    });
    servers.push(srv);
    const { ns, keys } = await setup(srv);
    const before = procStatus(srv.proc.pid);

    const paths = Array.from({ length: SLOW }, (_, i) => `${srv.ns(ns)}/values/${keys[i % KEYS]}`);
    const t0 = Date.now();
    const socks = await openSlowReaders(srv, paths);
    // the server is saturated and settled: replies queued up to the cap (64 x 1 MiB), every
    // other pipelined request answered (absorbed by the kernel or shed), nothing moving for 1 s
    const m1 = await settled(srv, (m) => m.queued >= 56 && m.shed > 0, SEND_MS,
      'the slow requests to be answered (queued up to the cap, then shed)');
    t.diagnostic(`${SLOW} slow readers open in ${Date.now() - t0} ms: ${JSON.stringify(m1)}`);
    assert.ok(m1.replyMemory <= 64 * 1024 * 1024, `reply memory ${m1.replyMemory} over the cap`);
    assert.ok(m1.shed > 0, 'no reply was shed although 1,000 MiB were asked for under a 64 MiB cap');

    // others are served meanwhile: a large GET gets a clear 503, /healthz and a small GET 200
    const big = await srv.fetch('GET', `${srv.ns(ns)}/values/${keys[0]}`);
    assert.equal(big.status, 503);
    assert.equal(big.headers.get('retry-after'), '1');
    const env = await big.json();
    assert.equal(env.success, false);
    assert.equal(env.errors[0].code, 10001);
    assert.match(env.errors[0].message, /reply-memory-mb/);
    const health = await probe(10, () => fetch(`${srv.origin}/healthz`));
    const small = await probe(10, () => srv.fetch('GET', `${srv.ns(ns)}/values/small`));
    t.diagnostic(`while saturated: /healthz p50 ${health.p50.toFixed(1)} ms max ${health.max.toFixed(1)} ms; `
      + `small GET p50 ${small.p50.toFixed(1)} ms max ${small.max.toFixed(1)} ms`);
    assert.ok(health.max < 50, `/healthz took ${health.max} ms`);
    assert.ok(small.max < 50, `a small GET took ${small.max} ms`);

    const during = procStatus(srv.proc.pid);
    // the send deadline closes the slow sockets (a window without progress)
    const m2 = await waitFor(async () => {
      const m = await metrics(srv);
      return m.queued === 0 && m.connections <= 1 ? m : null;
    }, SEND_MS + 30000, 'the send deadline to close the slow readers', 250);
    t.diagnostic(`after the send deadline: ${JSON.stringify(m2)}`);
    assert.ok(m2.sendTimeouts >= m1.queued, `only ${m2.sendTimeouts} send timeouts for ${m1.queued} queued replies`);
    assert.equal(m2.replyMemory, 0);
    for (const s of socks) s.destroy();

    // and the large GET works again
    const again = await srv.fetch('GET', `${srv.ns(ns)}/values/${keys[0]}`);
    assert.equal(again.status, 200);
    assert.equal((await again.arrayBuffer()).byteLength, VALUE_BYTES);

    const peak = procStatus(srv.proc.pid);
    t.diagnostic(`RSS MiB: before ${before.rssMiB.toFixed(0)}, while saturated ${during.rssMiB.toFixed(0)}, `
      + `peak ${peak.hwmMiB.toFixed(0)}`);
    // documented bound (docs/API.md "Bounded replies"): base + --reply-memory-mb + --cache-bytes + per
    // connection buffers; ASan's allocator keeps a quarantine of freed memory, so the bound is
    // the release build's
    if (!SANITIZED) assert.ok(peak.hwmMiB < 300, `peak RSS ${peak.hwmMiB} MiB`);
  });

  it('a trickle reader is closed by the minimum drain rate; a normal reader is not', async (t) => {
    const srv = await startServer({ args: ['--send-timeout-ms', '1000', '--send-min-rate', '262144'] });
    servers.push(srv);
    const { ns, keys } = await setup(srv);
    const path = `/client/v4${srv.ns(ns)}/values/${keys[0]}`;
    // reads 4 KiB every 100 ms (~40 KiB/s): progress in every window, but under the rate
    const trickle = await slowReader(srv.port, path, srv.token);
    let got = 0;
    const iv = setInterval(() => { const b = trickle.read(4096); if (b) got += b.length; }, 100);
    trickle.on('error', () => {});
    // (the client itself sees the close only once it has read what the kernel buffered)
    const t0 = Date.now();
    const m = await waitFor(async () => {
      const x = await metrics(srv);
      return x.sendTimeouts >= 1 ? x : null;
    }, 15000, 'the send deadline to close the trickle reader', 100);
    const closedMs = Date.now() - t0;
    clearInterval(iv);
    trickle.destroy();
    t.diagnostic(`trickle reader closed by the server after ${closedMs} ms, having read ${got} bytes`);
    assert.ok(got > 0, 'the trickle reader read nothing: it was not a trickle');
    // a reader that keeps up gets all its pipelined replies
    const fast = await new Promise((resolve, reject) => {
      let n = 0;
      const s = net.connect({ port: srv.port, host: '127.0.0.1' }, () => {
        s.write(`GET ${path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${srv.token}\r\n\r\n`.repeat(PIPELINE - 1)
          + `GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer ${srv.token}\r\n\r\n`);
      });
      s.on('data', (d) => { n += d.length; });
      s.on('end', () => resolve(n));
      s.on('error', reject);
    });
    assert.ok(fast > PIPELINE * VALUE_BYTES, `the normal reader got ${fast} bytes`);
    assert.equal((await metrics(srv)).sendTimeouts, m.sendTimeouts);
  });

  // Liveness under a full reader queue (review): a waiter handed a read slot that cannot be
  // submitted answers 503 and passes the slot on, so no value GET is left unanswered. (The
  // lost hand-off needed a timing this test does not force; it checks that every request is
  // answered with the queues overflowing.)
  it('value GETs waiting for a read slot are all answered, none left hanging', async (t) => {
    const srv = await startServer({ args: ['--cache-bytes', '0', '--readers', '1', '--reader-queue', '2'] });
    servers.push(srv);
    const { ns, keys } = await setup(srv);
    // value GETs mixed with metadata GETs, which take reader-queue places without a slot
    const statuses = await Promise.all(Array.from({ length: 80 }, async (_, i) => {
      const kind = i % 2 ? 'values' : 'metadata';
      const r = await fetch(`${srv.base}${srv.ns(ns)}/${kind}/${keys[i % KEYS]}`,
        { headers: { authorization: `Bearer ${srv.token}` }, signal: AbortSignal.timeout(20000) });
      await r.arrayBuffer();
      return r.status;
    }));
    const count = (st) => statuses.filter((x) => x === st).length;
    t.diagnostic(`80 concurrent GETs with --readers 1 --reader-queue 2: ${count(200)} x 200, ${count(503)} x 503`);
    assert.equal(count(200) + count(503), 80, `statuses: ${statuses}`);
    assert.ok(count(200) >= 1, 'no read was served at all');
  });

  it('replies of a cached value share it: all 1,000 queued, each value charged once', async (t) => {
    const srv = await startServer({
      args: ['--reply-memory-mb', '64', '--send-timeout-ms', String(CACHED_SEND_MS),
        '--idle-timeout-ms', String(CACHED_SEND_MS + 2000)],
    });
    servers.push(srv);
    const { ns, keys } = await setup(srv);
    for (const k of keys) { // warm the cache
      const r = await srv.fetch('GET', `${srv.ns(ns)}/values/${k}`);
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
    const paths = Array.from({ length: SLOW }, (_, i) => `${srv.ns(ns)}/values/${keys[i % KEYS]}`);
    const socks = await openSlowReaders(srv, paths);
    // settled, as in the first case: the probe below measures a server holding queued replies,
    // not one still writing the last connections' megabytes into their sockets
    const m1 = await settled(srv, (m) => m.queued >= SLOW - 50, CACHED_SEND_MS,
      'the slow requests to be queued (and nothing moving for 1 s)');
    t.diagnostic(`cached: ${JSON.stringify(m1)}`);
    assert.equal(m1.shed, 0);
    assert.ok(m1.replyMemory <= KEYS * (VALUE_BYTES + 4096) + SLOW * 512,
      `reply memory ${m1.replyMemory}: a shared value was charged more than once`);
    const health = await probe(5, () => fetch(`${srv.origin}/healthz`));
    assert.ok(health.max < 50, `/healthz took ${health.max} ms`);
    const m2 = await waitFor(async () => {
      const m = await metrics(srv);
      return m.queued === 0 ? m : null;
    }, CACHED_SEND_MS + 30000, 'the send deadline to close the slow readers', 250);
    assert.equal(m2.replyMemory, 0);
    assert.ok(m2.sendTimeouts >= SLOW - 50, `${m2.sendTimeouts} send timeouts`);
    for (const s of socks) s.destroy();
    const r = await srv.fetch('GET', `${srv.ns(ns)}/values/${keys[1]}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(Buffer.from(await r.arrayBuffer())).length, 64);
  });
});
