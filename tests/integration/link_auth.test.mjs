// Link authentication (docs/REPLICATION.md "Link authentication", issue 9): a raw TCP peer on
// a primary's replication port gets the Challenge and nothing else until it proves the
// cluster secret. Forged frames, a Hello without the handshake, a wrong HMAC and a 60 MiB
// length prefix each close the link, leave the primary writable (no fencing on an
// unauthenticated epoch) and its memory unchanged, and count in
// edgekv_repl_auth_failures_total. A replica with the right secret replicates; one with a
// wrong secret never gets data.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { expectOk, procMemKiB, sleep } from './lib/harness.mjs';
import { Cluster, status, metricsText, metricValue, logLinesWith } from './lib/cluster.mjs';
import { FRAME, ROLE, frame, hello, rawLink } from './lib/wire.mjs';

const rssKiB = (pid) => procMemKiB(pid).rss;
const failures = async (node) => metricValue(await metricsText(node), 'edgekv_repl_auth_failures_total');

describe('replication link authentication', { timeout: 120000 }, () => {
  const c = new Cluster('linkauth');
  let p;
  let ns;
  let challengeBytes;
  before(async () => {
    p = await c.startPrimary({ nodeId: 'p1' });
    ns = await p.createNamespace('auth-main');
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/before`, { body: 'v0' }));
  });
  after(() => c.cleanup());

  // Connect, read the Challenge, send `bytes`, and check the link is closed with nothing sent
  // after the Challenge; the primary stays writable and unfenced, its counter rises.
  async function attack(what, send) {
    const before = await failures(p);
    const l = rawLink(p.replAddr);
    await l.ready;
    const ch = await l.next([FRAME.challenge]);
    assert.ok(ch, `${what}: a Challenge first`);
    assert.equal(ch.msg[1][0].length, 32, 'a 32-byte nonce');
    assert.equal(ch.msg[2][0], 5n, 'protocol 5');
    assert.equal(ch.epoch, 0n, 'the challenge tells no epoch');
    challengeBytes ??= l.received;
    await send(l);
    const more = await l.next([FRAME.hello, FRAME.error, FRAME.authProof, FRAME.changeBatch, FRAME.heartbeat,
      FRAME.keyChangeBatch, FRAME.challenge, 0]);
    assert.equal(more, null, `${what}: nothing but the Challenge is sent, then the link closes`);
    assert.equal(l.received, challengeBytes, `${what}: not one byte after the Challenge`);
    l.end();
    await c.waitFor(async () => (await failures(p)) > before, 5000, `${what}: auth failure counted`);
    const st = await status(p);
    assert.equal(st.fenced, false, `${what}: not fenced`);
    assert.equal(st.writable, true, `${what}: still writable`);
    expectOk(await p.api('PUT', `${p.ns(ns)}/values/after`, { body: what }));
  }

  it('a forged high-epoch frame (the 9 bytes of issue 9) does not fence the primary', async () => {
    const rss0 = rssKiB(p.proc.pid);
    await attack('forged epoch', (l) => l.send(Buffer.from('00000005' + '08e8072a00', 'hex')));
    const st = await status(p);
    assert.equal(st.epoch, 1);
    assert.ok(rssKiB(p.proc.pid) - rss0 < 4096, 'memory unchanged');
  });

  it('a Hello without the handshake (a "replica at seq 0") gets no snapshot', async () => {
    await attack('hello', (l) => l.send(frame(1, FRAME.hello, hello({ nodeId: 'thief', role: ROLE.replica }))));
    // a Hello as the very first bytes, before even reading the Challenge, is no better
    const l = rawLink(p.replAddr);
    await l.ready;
    l.send(frame(1000, FRAME.hello, hello({ nodeId: 'thief2', role: ROLE.primary, epoch: 1000 })));
    assert.equal(await l.next([FRAME.hello, FRAME.error, 6, FRAME.authProof]), null);
    assert.equal(l.received, challengeBytes);
    assert.equal((await status(p)).writable, true, 'a PRIMARY hello with epoch 1000 fences nothing');
  });

  it('a handshake with a wrong HMAC, or with another secret, is refused', async () => {
    await attack('wrong hmac', (l) => l.auth(c.secret, { corruptMac: true }));
    await attack('other secret', (l) => assert.rejects(l.auth(randomBytes(32).toString('hex')),
      /closed before the listener proved/));
  });

  it('a 60 MiB pre-handshake frame header is refused without buffering it', async () => {
    const rss0 = rssKiB(p.proc.pid);
    await attack('60 MiB header', (l) => {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(60 * 1024 * 1024);
      l.send(Buffer.concat([h, randomBytes(256 * 1024)]));
    });
    assert.ok(rssKiB(p.proc.pid) - rss0 < 4096, 'memory unchanged within a few MiB');
  });

  it('failures are logged with the peer and reason, at most one line per peer per 10 s', async () => {
    const q = await c.startPrimary({ nodeId: 'p-log' });
    const lines = () => logLinesWith(q.stderr, 'replication link authentication failed');
    const forged = async (bytes) => {
      const l = rawLink(q.replAddr);
      await l.ready;
      await l.next([FRAME.challenge]);
      if (bytes) l.send(bytes);
      else await l.auth(c.secret, { corruptMac: true });
      assert.equal(await l.next([0, FRAME.authProof, FRAME.hello, FRAME.error]), null);
    };
    await forged(null);
    await c.waitFor(() => lines().length === 1, 5000, 'one line');
    assert.match(lines()[0], /peer=127\.0\.0\.1:\d+ reason="wrong HMAC/);
    assert.match(lines()[0], /suppressed=0/);
    for (let i = 0; i < 5; i++) await forged(Buffer.from('00000005' + '08e8072a00', 'hex'));
    await c.waitFor(async () => (await failures(q)) === 6, 5000, 'every failure counted');
    assert.equal(lines().length, 1, 'the next 5 within 10 s are not logged');
    await sleep(10200);
    const h = Buffer.alloc(4);
    h.writeUInt32BE(60 * 1024 * 1024);
    await forged(Buffer.concat([h, Buffer.alloc(1000)]));
    await c.waitFor(() => lines().length === 2, 5000, 'a line again after 10 s');
    assert.match(lines()[1], /exceeds cap 65536/);
    assert.match(lines()[1], /suppressed=5/);
  });

  it('a replica with the right secret replicates', async () => {
    const r = await c.startReplica(p, { nodeId: 'r1' });
    await c.waitFor(async () => {
      const res = await r.fetch('GET', `${r.ns(ns)}/values/before`);
      return res.status === 200 && (await res.text()) === 'v0';
    }, 20000, 'the value on the replica');
  });

  it('a replica with a wrong secret never gets data', async () => {
    const before = await failures(p);
    const wrong = join(c.newDir(), 'wrong.secret');
    writeFileSync(wrong, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const r = await c.startReplica(p, { nodeId: 'r-wrong', secretFile: wrong });
    await c.waitFor(async () => (await failures(p)) >= before + 2, 10000, 'the primary counts its attempts');
    await c.waitFor(async () => (await failures(r)) >= 1, 10000, 'the replica counts its failures');
    const st = await status(r);
    assert.notEqual(st.replica.state, 'streaming');
    assert.equal(st.replica.applied_seq, 0, 'no data');
    assert.equal(st.last_seq, 0);
    const res = await r.fetch('GET', `${r.ns(ns)}/values/before`);
    assert.notEqual(res.status, 200, 'the value is not there');
    assert.ok(logLinesWith(r.stderr, 'replication link authentication failed').length >= 1);
  });

  it('a node with --repl-listen and no secret refuses to start, saying how to make one', async () => {
    await assert.rejects(c.start({ role: 'primary', nodeId: 'p-nosecret', secretFile: null }),
      /edgekv secret generate/);
    const short = join(c.newDir(), 'short.secret');
    writeFileSync(short, 'tooshort\n', { mode: 0o600 });
    await assert.rejects(c.start({ role: 'primary', nodeId: 'p-short', secretFile: short }), /needs 32/);
    const open = join(c.newDir(), 'open.secret');
    writeFileSync(open, randomBytes(32).toString('hex'), { mode: 0o644 });
    await assert.rejects(c.start({ role: 'primary', nodeId: 'p-open', secretFile: open }), /chmod 600/);
  });
});
