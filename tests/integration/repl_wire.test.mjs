// The replication wire seen from outside (proto/repl.proto, docs/REPLICATION.md "Frames"): a
// raw TCP peer on a primary's replication port, with a tiny protobuf codec below. Covers the
// protocol version check of Hello (protocol 2) and the edge's keys-only stream of
// KeyChangeBatch frames (keys, never values). Helpers: lib/cluster.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { expectOk } from './lib/harness.mjs';
import { Cluster, status, logLinesWith } from './lib/cluster.mjs';

// ---- minimal protobuf: varint and length-delimited fields only (all repl.proto needs here) --

function varint(v) {
  let n = BigInt(v);
  const out = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}
const fVarint = (num, v) => Buffer.concat([varint((num << 3) | 0), varint(v)]);
const fBytes = (num, b) => {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
  return Buffer.concat([varint((num << 3) | 2), varint(buf.length), buf]);
};

// { fieldNumber: [values] }: varints as BigInt, length-delimited as Buffer.
function parse(buf) {
  const fields = {};
  let i = 0;
  const readVarint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = readVarint();
    const num = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    let v;
    if (wt === 0) v = readVarint();
    else if (wt === 2) {
      const n = Number(readVarint());
      v = buf.subarray(i, i + n);
      i += n;
    } else throw new Error(`wire type ${wt} not expected here`);
    (fields[num] ||= []).push(v);
  }
  return fields;
}

const FRAME = { epoch: 1, hello: 2, changeBatch: 3, ack: 4, heartbeat: 5, error: 9, keyChangeBatch: 12 };
const frame = (epoch, body, bytes) => {
  const f = Buffer.concat([fVarint(FRAME.epoch, epoch), fBytes(body, bytes)]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(f.length);
  return Buffer.concat([len, f]);
};
// Hello: node_id 1, role 2, last_applied_seq 3, history_id 4, epoch 5, keys_only 9,
// protocol_version 10 (left out when null).
function hello({ nodeId, role, seq = 0, historyId = '', epoch = 0, keysOnly = false, version = 2 }) {
  const parts = [fBytes(1, nodeId), fVarint(2, role), fVarint(3, seq), fBytes(4, historyId), fVarint(5, epoch)];
  if (keysOnly) parts.push(fVarint(9, 1));
  if (version !== null) parts.push(fVarint(10, version));
  return Buffer.concat(parts);
}
const ROLE = { primary: 1, replica: 2, edge: 3 };

// A raw link: connect, send, and read whole frames ({ body: fieldNumber, msg, epoch }).
function rawLink(addr) {
  const [host, port] = addr.split(':');
  const sock = net.createConnection({ host, port: Number(port) });
  let pending = Buffer.alloc(0);
  const frames = [];
  let waiter = null;
  let closed = false;
  const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
  sock.on('data', (d) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const n = pending.readUInt32BE(0);
      const f = parse(pending.subarray(4, 4 + n));
      pending = pending.subarray(4 + n);
      const body = Number(Object.keys(f).find((k) => k !== '1'));
      frames.push({ body, msg: parse(f[body][0]), epoch: f[1] ? f[1][0] : 0n });
    }
    wake();
  });
  sock.on('close', () => { closed = true; wake(); });
  sock.on('error', () => {});
  return {
    ready: new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); }),
    send(buf) { sock.write(buf); },
    // The next frame whose body is one of `bodies` (others are skipped), or null on close.
    async next(bodies, timeoutMs = 10000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        while (frames.length) {
          const f = frames.shift();
          if (bodies.includes(f.body)) return f;
        }
        if (closed) return null;
        if (Date.now() > until) throw new Error(`no frame ${bodies} in ${timeoutMs} ms`);
        await new Promise((resolve) => { waiter = resolve; setTimeout(resolve, 200); });
      }
    },
    get closed() { return closed; },
    end() { sock.destroy(); },
  };
}

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
    l.send(frame(1, FRAME.hello, hello({ nodeId: 'old-r', role: ROLE.replica, version: null })));
    const e = await l.next([FRAME.error, FRAME.hello]);
    assert.ok(e, 'the primary closed without an Error frame');
    assert.equal(e.body, FRAME.error, 'no Hello for a peer of another version');
    assert.equal(e.msg[1][0], 8n, 'code REPL_ERROR_VERSION');
    assert.equal(e.msg[2][0].toString(), 'peer speaks replication protocol 1, this node 2');
    assert.equal(await l.next([FRAME.hello, FRAME.changeBatch]), null, 'then the link closes');
    await c.waitFor(() => logLinesWith(p.stderr, 'replica dropped', { reason: 'protocol' })
      .some((x) => x.includes('peer speaks replication protocol 1, this node 2')), 5000, 'the drop logged');
    // a newer version is refused the same way
    const l3 = rawLink(p.replAddr);
    await l3.ready;
    l3.send(frame(1, FRAME.hello, hello({ nodeId: 'new-r', role: ROLE.replica, version: 3 })));
    const e3 = await l3.next([FRAME.error, FRAME.hello]);
    assert.equal(e3.body, FRAME.error);
    assert.equal(e3.msg[2][0].toString(), 'peer speaks replication protocol 3, this node 2');
    l3.end();
  });

  it('an edge keys-only stream gets KeyChangeBatch frames: keys and seqs, no values', async () => {
    const st = await status(p);
    const l = rawLink(p.replAddr);
    await l.ready;
    l.send(frame(st.epoch, FRAME.hello, hello({
      nodeId: 'raw-edge', role: ROLE.edge, seq: st.last_seq, historyId: st.history_id, epoch: st.epoch, keysOnly: true,
    })));
    const h = await l.next([FRAME.hello, FRAME.error]);
    assert.equal(h.body, FRAME.hello, `answer: ${h.body === FRAME.error ? h.msg[2][0].toString() : h.body}`);
    assert.equal(h.msg[10][0], 2n, "the primary's Hello says protocol 2");
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
