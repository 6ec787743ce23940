// A raw replication peer for tests (proto/repl.proto, docs/REPLICATION.md "Frames"): a tiny
// protobuf codec (varints and length-delimited fields only), frame builders, a raw TCP link
// that reads whole frames, and the connector's side of the link authentication (Challenge /
// AuthProof, HMAC-SHA256 over the cluster secret).
import net from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';

// ---- minimal protobuf: varint and length-delimited fields only (all repl.proto needs here) --

export function varint(v) {
  let n = BigInt(v);
  const out = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}
export const fVarint = (num, v) => Buffer.concat([varint((num << 3) | 0), varint(v)]);
export const fBytes = (num, b) => {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
  return Buffer.concat([varint((num << 3) | 2), varint(buf.length), buf]);
};

// { fieldNumber: [values] }: varints as BigInt, length-delimited as Buffer.
export function parse(buf) {
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

export const FRAME = {
  epoch: 1, hello: 2, changeBatch: 3, ack: 4, heartbeat: 5, error: 9, keyChangeBatch: 12, challenge: 13, authProof: 14,
};
export const frame = (epoch, body, bytes) => {
  const f = Buffer.concat([fVarint(FRAME.epoch, epoch), fBytes(body, bytes)]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(f.length);
  return Buffer.concat([len, f]);
};
// Hello: node_id 1, role 2, last_applied_seq 3, history_id 4, epoch 5, keys_only 9,
// protocol_version 10 (left out when null).
export function hello({ nodeId, role, seq = 0, historyId = '', epoch = 0, keysOnly = false, version = PROTOCOL_VERSION }) {
  const parts = [fBytes(1, nodeId), fVarint(2, role), fVarint(3, seq), fBytes(4, historyId), fVarint(5, epoch)];
  if (keysOnly) parts.push(fVarint(9, 1));
  if (version !== null) parts.push(fVarint(10, version));
  return Buffer.concat(parts);
}
export const PROTOCOL_VERSION = 5;
export const ROLE = { primary: 1, replica: 2, edge: 3 };

// A raw link: connect, send, and read whole frames ({ body: fieldNumber, msg, epoch }).
export function rawLink(addr) {
  const [host, port] = addr.split(':');
  const sock = net.createConnection({ host, port: Number(port) });
  let pending = Buffer.alloc(0);
  const frames = [];
  let waiter = null;
  let closed = false;
  let received = 0;
  const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
  sock.on('data', (d) => {
    received += d.length;
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const n = pending.readUInt32BE(0);
      const f = parse(pending.subarray(4, 4 + n));
      pending = pending.subarray(4 + n);
      const body = Number(Object.keys(f).find((k) => k !== '1'));
      if (!f[body]) { frames.push({ body: 0, msg: {}, epoch: f[1] ? f[1][0] : 0n }); continue; }
      frames.push({ body, msg: parse(f[body][0]), epoch: f[1] ? f[1][0] : 0n });
    }
    wake();
  });
  sock.on('close', () => { closed = true; wake(); });
  sock.on('error', () => {});
  return {
    challenge: null, // the Challenge frame once read
    ready: new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); }),
    send(buf) { sock.write(buf); },
    // The next frame whose body is one of `bodies` (others are skipped), or null on close.
    async next(bodies, timeoutMs = 10000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        while (frames.length) {
          const f = frames.shift();
          if (f.body === FRAME.challenge) this.challenge = f;
          if (bodies.includes(f.body)) return f;
        }
        if (closed) return null;
        if (Date.now() > until) throw new Error(`no frame ${bodies} in ${timeoutMs} ms`);
        await new Promise((resolve) => { waiter = resolve; setTimeout(resolve, 200); });
      }
    },
    get closed() { return closed; },
    // every byte received so far (frames parsed or not)
    get received() { return received; },
    // Run the connector's side of the handshake with `secret` (a string or Buffer; a wrong one
    // gets the link closed by the listener). Returns the Challenge frame.
    async auth(secret, { corruptMac = false } = {}) {
      const ch = this.challenge || await this.next([FRAME.challenge]);
      if (!ch) throw new Error('link closed before a challenge');
      const ln = ch.msg[1][0];
      const cn = randomBytes(32);
      const mac = authMac(secret, 1, ln, cn);
      if (corruptMac) mac[0] ^= 1;
      this.send(frame(0, FRAME.authProof, Buffer.concat([fBytes(1, cn), fBytes(2, mac)])));
      if (corruptMac) return ch;
      const pr = await this.next([FRAME.authProof]);
      if (!pr) throw new Error('link closed before the listener proved the secret');
      const want = authMac(secret, 2, cn, ln);
      if (!pr.msg[2] || !pr.msg[2][0].equals(want)) throw new Error("the listener's proof is wrong");
      return ch;
    },
    // stop reading (the kernel's buffers then fill up and the peer's sends queue), and go on
    pause() { sock.pause(); },
    resume() { sock.resume(); },
    end() { sock.destroy(); },
  };
}


// HMAC-SHA256(secret, "edgekv-link v1" || dir || first || second) (replication/auth.h).
export function authMac(secret, dir, first, second) {
  return createHmac('sha256', secret)
    .update(Buffer.concat([Buffer.from('edgekv-link v1'), Buffer.from([dir]), first, second]))
    .digest();
}
