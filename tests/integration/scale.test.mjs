// What stays cheap as data and clients grow (docs/STORAGE.md "Memory and restart", docs/API.md
// "Connections"): idle connections hold no read buffer, a connection storm's memory goes back
// to the system, the listen backlog follows somaxconn, value-cache misses whose blocks are in
// memory are answered on the loop, a clean stop leaves no write-ahead log to replay, and the
// block cache is sized from the machine's memory. The figures themselves: bench/scale.sh.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startServer, expectOk, procMemKiB, waitFor, sleep, BIN } from './lib/harness.mjs';

async function metrics(srv) {
  const text = await (await fetch(`${srv.origin}/metrics`)).text();
  const m = new Map();
  for (const l of text.split('\n')) {
    const r = /^([a-z_]+) ([0-9.e+-]+)$/.exec(l);
    if (r) m.set(r[1], Number(r[2]));
  }
  return m;
}

// n keep-alive connections, each answered one GET /healthz, then left open and silent.
async function openIdle(port, n) {
  const socks = [];
  const batch = 100;
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => new Promise((res, rej) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      let got = '';
      s.setEncoding('latin1');
      s.on('error', rej);
      s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('data', (d) => {
        got += d;
        if (got.includes('{"status":"ok"}')) { s.removeAllListeners('data'); socks.push(s); res(); }
      });
    })));
  }
  return socks;
}

function walBytes(dataDir) {
  const db = join(dataDir, 'db');
  return readdirSync(db).filter((f) => f.endsWith('.log')).reduce((a, f) => a + statSync(join(db, f)).size, 0);
}

function memoryLimitBytes() {
  const total = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) * 1024;
  let lim = total;
  for (const f of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    if (!existsSync(f)) continue;
    const v = Number(readFileSync(f, 'utf8').trim());
    if (Number.isFinite(v) && v > 0 && v < lim) lim = v;
  }
  return lim;
}

describe('scale: connections', { timeout: 120000 }, () => {
  let srv;
  after(async () => { await srv?.stop(); });

  it('idle keep-alive connections hold no read buffer and cost a few KiB each', async () => {
    srv = await startServer({ args: ['--max-connections', '5000'] });
    const somax = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const m0 = await metrics(srv);
    assert.equal(m0.get('edgekv_http_listen_backlog'), Math.min(Math.max(somax, 1024), 65535));
    await openIdle(srv.port, 200); // warm the allocator and the route tables
    const rss0 = procMemKiB(srv.proc.pid).rss;
    const n = 1500;
    const socks = await openIdle(srv.port, n);
    await sleep(200);
    const rss1 = procMemKiB(srv.proc.pid).rss;
    const m1 = await metrics(srv);
    assert.ok(m1.get('edgekv_http_connections') >= n + 200, `connections ${m1.get('edgekv_http_connections')}`);
    assert.equal(m1.get('edgekv_http_read_buffers'), 0, 'no idle connection owns a read buffer');
    const perConn = ((rss1 - rss0) * 1024) / n;
    // a 64 KiB buffer per connection (the old design) would be >= 65536 here
    assert.ok(perConn < 16384, `${perConn.toFixed(0)} bytes of RSS per idle connection`);

    // they still work: a request on every 100th is answered
    for (let i = 0; i < socks.length; i += 100) {
      const s = socks[i];
      const reply = await new Promise((res) => {
        let got = '';
        s.on('data', (d) => { got += d; if (got.includes('{"status":"ok"}')) res(got); });
        s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      assert.match(reply, /^HTTP\/1\.1 200 OK/);
    }

    const trims0 = m1.get('edgekv_http_heap_trims_total');
    for (const s of socks) s.destroy();
    await waitFor(async () => (await metrics(srv)).get('edgekv_http_heap_trims_total') > trims0, 10000,
      'a heap trim after 1500 connections closed', 200);
    const m2 = await metrics(srv);
    assert.ok(m2.get('edgekv_http_connections') <= 210, `connections ${m2.get('edgekv_http_connections')}`);
  });
});

describe('scale: open-file limit', { timeout: 60000 }, () => {
  // soft 1500 / hard 3000: raised to the hard limit, --max-connections lowered to fit (the
  // hard limit may be lowered by anyone, so this runs without privileges)
  it('raises the soft RLIMIT_NOFILE for --max-connections, else lowers the cap with a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgekv-fd-'));
    try {
      const sh = `ulimit -Sn 1500 && ulimit -Hn 3000 && exec "${BIN}" serve --listen 127.0.0.1:0 --data-dir "${dir}"`;
      const p = spawn('sh', ['-c', sh], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d) => { err += d; });
      await waitFor(() => err.includes('msg="listening"'), 15000, 'edgekv listening', 20);
      const limits = readFileSync(`/proc/${p.pid}/limits`, 'utf8');
      const m = /^Max open files\s+(\d+)\s+(\d+)/m.exec(limits);
      assert.deepEqual([Number(m[1]), Number(m[2])], [3000, 3000]);
      assert.match(err, /msg="open-file limit too low for --max-connections" max_connections=16384 nofile=3000 now_max_connections=1976/);
      p.kill('SIGTERM');
      await new Promise((r) => p.on('exit', r));
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

describe('scale: storage', { timeout: 120000 }, () => {
  it('a value-cache miss whose blocks are in memory is answered on the loop (and not with --inline-reads 0)', async () => {
    for (const inline of [1, 0]) {
      const srv = await startServer({ args: ['--cache-bytes', '0', `--inline-reads=${inline}`] });
      try {
        const ns = await srv.createNamespace();
        for (let i = 0; i < 20; i++) expectOk(await srv.api('PUT', `${srv.ns(ns)}/values/k${i}`, { body: `value-${i}` }));
        for (let round = 0; round < 2; round++) {
          for (let i = 0; i < 20; i++) {
            const r = await srv.fetch('GET', `${srv.ns(ns)}/values/k${i}`);
            assert.equal(r.status, 200);
            assert.equal(await r.text(), `value-${i}`);
          }
          const miss = await srv.fetch('GET', `${srv.ns(ns)}/values/absent`);
          assert.equal(miss.status, 404);
          assert.equal((await miss.json()).errors[0].code, 10009);
        }
        const m = await metrics(srv);
        assert.equal(m.get('edgekv_cache_misses_total'), 42);
        if (inline) assert.equal(m.get('edgekv_store_inline_reads_total'), 42, 'memtable reads need no reader');
        else assert.equal(m.get('edgekv_store_inline_reads_total'), 0);
      } finally { await srv.stop(); }
    }
  });

  it('a clean stop leaves no write-ahead log to replay; the data is all there after restart', async () => {
    const srv = await startServer({ keepData: true, args: ['--block-cache-mb', '128'] });
    const m = /msg="store opened".* block_cache_mb=(\d+) max_wal_mb=(\d+) memtable_mb=(\d+)/.exec(srv.stderr);
    assert.ok(m, srv.stderr);
    assert.deepEqual([Number(m[1]), Number(m[2]), Number(m[3])], [128, 32, 32]);
    const ns = await srv.createNamespace();
    const value = 'v'.repeat(1000);
    for (let b = 0; b < 4; b++) {
      const pairs = Array.from({ length: 1000 }, (_, i) => ({ key: `k${b}-${i}`, value }));
      expectOk(await srv.api('PUT', `${srv.ns(ns)}/bulk`, { json: pairs }));
    }
    assert.ok(walBytes(srv.dataDir) > 4e6, `the writes are in the WAL (${walBytes(srv.dataDir)} bytes)`);
    await srv.stop();
    assert.match(srv.stderr, /msg="store closed".* flush_ms=\d+/);
    assert.ok(walBytes(srv.dataDir) < 64 * 1024, `WAL left after a clean stop: ${walBytes(srv.dataDir)} bytes`);

    const again = await startServer({ dataDir: srv.dataDir, accountId: srv.accountId, token: srv.token });
    try {
      const d = /msg="store opened".* rocksdb_open_ms=(\d+) block_cache_mb=(\d+)/.exec(again.stderr);
      assert.ok(d, again.stderr);
      // the default: a quarter of the memory this process may use, at least 64 MiB
      const want = Math.max(64, Math.floor(memoryLimitBytes() / 4 / 1048576));
      assert.ok(Math.abs(Number(d[2]) - want) <= 1, `block_cache_mb ${d[2]}, expected ${want}`);
      // the warmer reads the keys and values into the block cache after the open
      await waitFor(async () => (await metrics(again)).get('edgekv_store_block_cache_warm_scans_total') >= 1,
        10000, 'a block cache warming scan', 100);
      const mw = await metrics(again);
      assert.ok(mw.get('edgekv_store_block_cache_bytes') > 4e6, `block cache ${mw.get('edgekv_store_block_cache_bytes')} bytes`);
      assert.equal(mw.get('edgekv_store_block_cache_capacity_bytes'), Math.max(64 * 1048576, Math.floor(memoryLimitBytes() / 4)));
      assert.match(again.stderr, /msg="block cache warmed" keys=8000 /);
      for (const k of ['k0-0', 'k1-500', 'k3-999']) {
        const r = await again.fetch('GET', `${again.ns(ns)}/values/${k}`);
        assert.equal(r.status, 200);
        assert.equal(await r.text(), value);
      }
    } finally {
      await again.stop();
      rmSync(srv.dataDir, { recursive: true, force: true });
    }
  });

  it('refuses storage settings out of range', async () => {
    for (const args of [['--max-wal-mb', '2'], ['--memtable-mb', '0'], ['--block-cache-mb', '99999999999']]) {
      await assert.rejects(startServer({ args }), /exited early/);
    }
  });
});
