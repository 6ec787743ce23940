// edgekv-bench (server/loadgen/, docs/LOADTEST.md) against the real server:
//   - coordinated omission: open loop at 2,000 ops/s for 6 s while the server is SIGSTOPped
//     for 1 s: the response-time p99 shows the stall (>= 500 ms), the service time does not,
//     and the achieved rate is the target's (the schedule catches up, late sends counted);
//   - the files of --out: summary.json fields, timeline.csv rows, latency.hgrm, and
//     report.html opened in headless Chromium, which must lay out every plot;
//   - exit codes (0, 1 on a setup error, 2 when the SLO is not met), --find-max, --load,
//     every workload, several --url with --visibility.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startServer, BIN, sleep } from './lib/harness.mjs';

const BENCH = join(dirname(BIN), 'edgekv-bench');

function runBench(args, { onSpawn } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`edgekv-bench timed out\n${err}`)); }, 180000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
    if (onSpawn) onSpawn(p);
  });
}

function chromium() {
  for (const c of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(c)) return c;
  return null;
}

describe('edgekv-bench', { timeout: 600000 }, () => {
  let srv;
  let work;
  const common = () => ['--url', srv.origin, '--token', srv.token, '--account', srv.accountId, '--quiet'];

  before(async () => {
    assert.ok(existsSync(BENCH), `${BENCH} is built`);
    srv = await startServer();
    work = mkdtempSync(join(tmpdir(), 'edgekv-bench-it-'));
  });
  after(async () => {
    if (srv) { try { srv.proc.kill('SIGCONT'); } catch { /* gone */ } await srv.stop(); }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('sees a 1 s stall in the response time, not in the service time (coordinated omission)', async (t) => {
    const out = join(work, 'co');
    let stopAt = 0;
    const r = await runBench([...common(), '--workload', 'get', '--keys', '1000', '--load', '--rate', '2000',
      '--connections', '64', '--duration', '6s', '--warmup', '1s', '--out', out], {
      onSpawn: async () => {
        await sleep(3500); // the load phase, the warm-up, then 2.5 s into the measured 6 s
        stopAt = Date.now();
        srv.proc.kill('SIGSTOP');
        await sleep(1000);
        srv.proc.kill('SIGCONT');
      },
    });
    assert.equal(r.code, 0, r.err);
    assert.ok(stopAt > 0);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    t.diagnostic(`response ${JSON.stringify(s.latency_us.response)} service ${JSON.stringify(s.latency_us.service)} late ${s.late_sends} achieved ${s.achieved_rps}`);
    assert.equal(s.target_rps, 2000);
    assert.ok(s.latency_us.response.p99 >= 500000, `response p99 ${s.latency_us.response.p99} us: the stall is hidden`);
    assert.ok(s.latency_us.response.max >= 900000, `response max ${s.latency_us.response.max} us`);
    assert.ok(s.latency_us.service.p99 < s.latency_us.response.p99 / 5, `service p99 ${s.latency_us.service.p99} us is not low`);
    assert.ok(s.late_sends > 0, 'the sends the stall delayed are counted');
    assert.ok(Math.abs(s.achieved_rps - 2000) <= 20, `achieved ${s.achieved_rps} ops/s, target 2000 (±1 %)`);
    assert.equal(s.requests, 12000, 'every scheduled operation of the 6 s was sent and measured');
    assert.equal(s.errors, 0);
  });

  it('writes summary.json, timeline.csv, latency.hgrm and a report.html whose plots render', async () => {
    const out = join(work, 'files');
    const r = await runBench([...common(), '--workload', 'a', '--keys', '500', '--load', '--rate', '400',
      '--connections', '8', '--duration', '3s', '--warmup', '1s', '--dist', 'uniform', '--value-size', '64-512',
      '--out', out, '--slo', 'p99<=2s,errors<=1%']);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    for (const k of ['requests', 'errors', 'target_rps', 'achieved_rps', 'late_sends']) assert.equal(typeof s[k], 'number', k);
    for (const kind of ['response', 'service']) {
      for (const p of ['p50', 'p90', 'p99', 'p999', 'max']) {
        assert.equal(typeof s.latency_us[kind][p], 'number', `${kind}.${p}`);
        assert.ok(s.latency_us[kind][p] > 0, `${kind}.${p} > 0`);
      }
      assert.ok(s.latency_us[kind].p50 <= s.latency_us[kind].p99 && s.latency_us[kind].p99 <= s.latency_us[kind].max);
    }
    assert.deepEqual(Object.keys(s.operations).sort(), ['read', 'update']);
    const read = s.operations.read;
    const update = s.operations.update;
    assert.equal(read.requests + update.requests, s.requests);
    assert.ok(read.requests > 400 && update.requests > 400, `mix ${read.requests}/${update.requests}`);
    for (const op of [read, update]) assert.equal(typeof op.latency_us.response.p999, 'number');
    assert.equal(s.requests, 1200);
    assert.equal(s.slo.met, true);
    assert.equal(s.targets.length, 1);
    assert.equal(s.targets[0].requests, 1200);
    assert.equal(s.status['2xx'], 1200);
    const csv = readFileSync(join(out, 'timeline.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'second,ops,errors,late_sends,p50_us,p99_us,p999_us,max_us');
    assert.equal(csv.length, 4, 'a row per measured second');
    // seconds count operations by completion: the few answered after the end are only in the totals
    const total = csv.slice(1).reduce((a, l) => a + Number(l.split(',')[1]), 0);
    assert.ok(total <= 1200 && total >= 1200 - 8, `timeline total ${total}`);
    const hgrm = readFileSync(join(out, 'latency.hgrm'), 'utf8');
    assert.match(hgrm, /Value\s+Percentile\s+TotalCount/);
    assert.match(hgrm, /#\[Max\s+=\s+[\d.]+, Total count\s+=\s+1200\]/);

    const chrome = chromium();
    assert.ok(chrome, 'Debian chromium is installed (scripts/install-deps.sh --test)');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.doesNotMatch(html, /(src|href)=["']?https?:/, 'nothing is loaded from elsewhere');
    const dom = execFileSync(chrome, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${mkdtempSync(join(work, 'chrome-'))}`, '--virtual-time-budget=5000', '--dump-dom',
      `file://${join(out, 'report.html')}`], { encoding: 'utf8', timeout: 60000, stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /data-rendered="([^"]*)"/.exec(dom);
    assert.ok(m, 'the page loaded and measured its plots');
    const rendered = JSON.parse(m[1].replace(/&quot;/g, '"'));
    assert.deepEqual(Object.keys(rendered).sort(), ['errors', 'latency', 'percentiles', 'throughput']);
    for (const [chart, series] of Object.entries(rendered)) {
      assert.ok(series.length >= 1, `${chart} has series`);
      for (const s1 of series) {
        assert.ok(s1.points >= 2, `${chart}/${s1.name}: ${s1.points} points`);
        assert.ok(s1.length > 50 && s1.width > 50, `${chart}/${s1.name} is drawn: ${JSON.stringify(s1)}`);
      }
    }
  });

  it('exit codes: 2 when the SLO is not met, 1 on a bad flag or an unreachable server', async () => {
    const miss = await runBench([...common(), '--workload', 'get', '--keys', '100', '--rate', '100',
      '--connections', '4', '--duration', '1s', '--warmup', '0', '--slo', 'p50<=1us']);
    assert.equal(miss.code, 2, miss.err);
    assert.match(miss.err, /SLO not met: p50/);
    const badFlag = await runBench([...common(), '--workload', 'nope', '--rate', '1']);
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.err, /unknown workload/);
    const badSlo = await runBench([...common(), '--rate', '1', '--slo', 'p99<5ms']);
    assert.equal(badSlo.code, 1);
    const down = await runBench(['--url', 'http://127.0.0.1:1', '--token', 'x', '--account', 'y', '--rate', '10', '--quiet']);
    assert.equal(down.code, 1);
  });

  it('--find-max finds the highest rate that meets the SLO', async () => {
    const out = join(work, 'max');
    const r = await runBench([...common(), '--workload', 'get', '--keys', '100', '--find-max', '--rate', '200',
      '--slo', 'p99<=1s', '--connections', '16', '--duration', '1s', '--warmup', '0', '--out', out]);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    assert.equal(r.code, 0, r.err);
    assert.ok(s.max_rps_meeting_slo >= 400, `found ${s.max_rps_meeting_slo}`);
    assert.match(r.err, /is the highest rate that met p99<=1s/);
  });

  it('runs every workload without errors, and --visibility over two URLs', async () => {
    for (const w of ['a', 'b', 'c', 'd', 'e', 'f', 'get', 'put', 'bulk', 'do']) {
      const out = join(work, `w-${w}`);
      const r = await runBench([...common(), '--workload', w, '--keys', '300', '--load', '--rate', w === 'bulk' ? '20' : '150',
        '--connections', '8', '--duration', '1s', '--warmup', '0', '--objects', '5', '--out', out]);
      assert.equal(r.code, 0, `${w}: ${r.err}`);
      const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
      assert.equal(s.errors, 0, `${w}: ${JSON.stringify(s.status)}`);
      assert.ok(s.requests > 0, w);
    }
    const out = join(work, 'vis');
    const r = await runBench(['--url', `${srv.origin},${srv.origin}`, '--token', srv.token, '--account', srv.accountId,
      '--quiet', '--workload', 'b', '--keys', '100', '--rate', '200', '--connections', '8', '--duration', '2s',
      '--warmup', '0', '--visibility', '--out', out]);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    assert.equal(s.targets.length, 2);
    assert.ok(Math.abs(s.targets[0].requests - s.targets[1].requests) <= 1, 'spread over both URLs');
    assert.ok(s.visibility.samples >= 10, `visibility samples ${s.visibility.samples}`);
    assert.equal(s.visibility.timeouts, 0);
  });
});
