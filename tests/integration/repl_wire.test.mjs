// The replication wire seen from outside (proto/repl.proto, docs/REPLICATION.md "Frames"): a
// raw TCP peer on a primary's replication port, with a tiny protobuf codec below. Covers the
// protocol version check of Hello (protocol 5) and the edge's keys-only stream of
// KeyChangeBatch frames (keys, never values). Helpers: lib/cluster.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { expectOk } from './lib/harness.mjs';
import { Cluster, status, logLinesWith } from './lib/cluster.mjs';
import { FRAME, ROLE, frame, hello, fVarint, parse, rawLink } from './lib/wire.mjs';

describe('replication wire: protocol version, keys-only stream', { timeout: 60000 }, () => {
  const c = new Cluster('wire');
  let p;
  let ns;
  before(async () => {
    p = await c.startPrimary({ nodeId: 'p1' });
    ns = await p.createNamespace('wire-main');
  });
  after(() => c.cleanup());

  it('a Hello without protocol_version (protocol 1) is refused with Error REPL_ERROR_VERSION', async () => {
    const l = rawLink(p.replAddr);
    await l.ready;
    await l.auth(c.secret);
    l.send(frame(1, FRAME.hello, hello({ nodeId: 'old-r', role: ROLE.replica, version: null })));
    const e = await l.next([FRAME.error, FRAME.hello]);
    assert.ok(e, 'the primary closed without an Error frame');
    assert.equal(e.body, FRAME.error, 'no Hello for a peer of another version');
    assert.equal(e.msg[1][0], 8n, 'code REPL_ERROR_VERSION');
    assert.equal(e.msg[2][0].toString(), 'peer speaks replication protocol 1, this node 5');
    assert.equal(await l.next([FRAME.hello, FRAME.changeBatch]), null, 'then the link closes');
    await c.waitFor(() => logLinesWith(p.stderr, 'replica dropped', { reason: 'protocol' })
      .some((x) => x.includes('peer speaks replication protocol 1, this node 5')), 5000, 'the drop logged');
    // a newer version is refused the same way
    const l3 = rawLink(p.replAddr);
    await l3.ready;
    await l3.auth(c.secret);
    l3.send(frame(1, FRAME.hello, hello({ nodeId: 'new-r', role: ROLE.replica, version: 6 })));
    const e3 = await l3.next([FRAME.error, FRAME.hello]);
    assert.equal(e3.body, FRAME.error);
    assert.equal(e3.msg[2][0].toString(), 'peer speaks replication protocol 6, this node 5');
    l3.end();
  });

  it('an edge keys-only stream gets KeyChangeBatch frames: keys and seqs, no values', async () => {
    const st = await status(p);
    const l = rawLink(p.replAddr);
    await l.ready;
    await l.auth(c.secret);
    l.send(frame(st.epoch, FRAME.hello, hello({
      nodeId: 'raw-edge', role: ROLE.edge, seq: st.last_seq, historyId: st.history_id, epoch: st.epoch, keysOnly: true,
    })));
    const h = await l.next([FRAME.hello, FRAME.error]);
    assert.equal(h.body, FRAME.hello, `answer: ${h.body === FRAME.error ? h.msg[2][0].toString() : h.body}`);
    assert.equal(h.msg[10][0], 5n, "the primary's Hello says protocol 5");
    assert.equal(h.msg[2][0], BigInt(ROLE.primary));

    const secret = 'value-bytes-an-edge-never-sees';
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/wire%2Fkey`, { body: secret }));
    const b = await l.next([FRAME.keyChangeBatch, FRAME.changeBatch]);
    assert.ok(b, 'link closed before a batch');
    assert.equal(b.body, FRAME.keyChangeBatch, 'edges get KeyChangeBatch, not ChangeBatch');
    const changes = b.msg[1].map(parse);
    assert.equal(changes.length, 1);
    const k = changes[0];
    assert.equal(k[1][0], BigInt(st.last_seq + 1), 'seq');
    assert.ok(k[2][0] > 0n, 'commit_time_ms');
    assert.equal(k[3][0], 1n, 'op KV_PUT');
    assert.equal(k[4][0].toString('hex'), ns, 'namespace id');
    assert.equal(k[5][0].toString(), 'wire/key', 'key');
    for (const n of [6, 7, 8]) assert.equal(k[n], undefined, `field ${n} (value/metadata/expiration) not sent`);
    assert.equal(b.msg[1][0].indexOf(secret), -1);
    l.send(frame(st.epoch, FRAME.ack, fVarint(1, st.last_seq + 1)));
    l.end();
  });
});
