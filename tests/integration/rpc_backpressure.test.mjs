// RPC link backpressure (docs/API.md "Bounded replies", issue 9): an authenticated edge that sends
// requests for large values and stops reading their answers gets its link paused once more
// than --repl-send-queue-mb of answers wait; the requests it already sent are held, not run,
// so the primary's memory stays bounded. When it reads again every request is answered, in
// order, and the primary served other clients throughout.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { expectOk, procMemKiB, sleep } from './lib/harness.mjs';
import { Cluster, metricsText, metricValue } from './lib/cluster.mjs';
import { FRAME, ROLE, fBytes, fVarint, frame, hello, rawLink } from './lib/wire.mjs';

const rssMiB = (pid) => procMemKiB(pid).rss / 1024;
const VALUE_BYTES = 1 << 20;
const REQUESTS = 64; // 64 MiB of answers asked for
const CAP_MB = 8;
const FRAME_REQUEST = 10;
const FRAME_RESPONSE = 11;

// Request: id 1, method 2, path 3, query 4, authorization 5
const request = (id, path, token) => frame(0, FRAME_REQUEST, Buffer.concat([
  fVarint(1, id), fBytes(2, 'GET'), fBytes(3, path), fBytes(4, ''), fBytes(5, `Bearer ${token}`),
]));

describe('RPC link backpressure', { timeout: 120000 }, () => {
  const c = new Cluster('rpcbp');
  after(() => c.cleanup());

  it('an edge that stops reading its answers is paused; its held requests run once it reads', async (t) => {
    const p = await c.startPrimary({ nodeId: 'p1', args: ['--repl-send-queue-mb', String(CAP_MB)] });
    const ns = await p.createNamespace('rpcbp');
    const keys = [];
    for (let i = 0; i < 4; i++) {
      expectOk(await p.api('PUT', `${p.ns(ns)}/values/big-${i}`, { body: randomBytes(VALUE_BYTES) }));
      keys.push(`big-${i}`);
    }
    const rss0 = rssMiB(p.proc.pid);

    const l = rawLink(p.replAddr);
    await l.ready;
    await l.auth(c.secret);
    l.send(frame(0, FRAME.hello, hello({ nodeId: 'edge-x', role: ROLE.edge })));
    assert.ok(await l.next([FRAME.hello]), 'the primary answers the edge hello');
    l.pause();
    const base = `/client/v4${p.ns(ns)}/values/`;
    const reqs = [];
    for (let i = 1; i <= REQUESTS; i++) reqs.push(request(i, base + keys[i % keys.length], p.token));
    l.send(Buffer.concat(reqs)); // all at once: one read on the primary holds them all

    await c.waitFor(async () => metricValue(await metricsText(p), 'edgekv_repl_rpc_pauses_total') >= 1,
      10000, 'the RPC link to be paused', 100);
    await sleep(500);
    const grown = rssMiB(p.proc.pid) - rss0;
    t.diagnostic(`paused; primary RSS grew ${grown.toFixed(1)} MiB for ${REQUESTS} MiB of answers asked`);
    assert.ok(grown < 48, `RSS grew ${grown} MiB: the held requests were run anyway`);
    // other clients are served meanwhile
    const r = await p.fetch('GET', `${p.ns(ns)}/values/${keys[0]}`);
    assert.equal(r.status, 200);
    assert.equal((await r.arrayBuffer()).byteLength, VALUE_BYTES);

    // reading again: every request is answered, in order, with the whole value
    l.resume();
    for (let i = 1; i <= REQUESTS; i++) {
      const f = await l.next([FRAME_RESPONSE], 20000);
      assert.ok(f, `the link closed before answer ${i}`);
      assert.equal(f.msg[1][0], BigInt(i), 'answers in request order');
      assert.equal(f.msg[2][0], 200n, `answer ${i} status`);
      assert.equal(f.msg[5][0].length, VALUE_BYTES, `answer ${i} body`);
    }
    l.end();
  });
});
