// Expiry with the test clock (POST /_edgekv/test/clock?advance_s=N): expired keys behave as
// absent on every read path (docs/API.md "Values", "List keys", "Bulk", "Operations").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectOk, expectError, multipart, sleep } from './lib/harness.mjs';

const nowS = () => Math.floor(Date.now() / 1000);

describe('expiry (test clock)', { timeout: 60000 }, () => {
  let srv;
  let clockOffset = 0; // seconds we moved the server clock
  before(async () => { srv = await startServer({ testClock: true }); });
  after(async () => { await srv?.stop(); });

  const advance = async (s) => { await srv.advanceClock(s); clockOffset += s; };
  const serverNow = () => nowS() + clockOffset;
  const getRaw = async (p, key) => {
    const res = await srv.fetch('GET', `${p}/values/${encodeURIComponent(key)}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, bytes, headers: res.headers };
  };
  const names = async (p) => expectOk(await srv.api('GET', `${p}/keys`)).map((i) => i.name);

  it('a TTL-60 key is visible with the right expiration header, then gone after 61 s everywhere', async () => {
    const p = srv.ns(await srv.createNamespace());
    const t0 = serverNow();
    const mp = multipart([{ name: 'value', data: 'short-lived' }, { name: 'metadata', data: '{"m":1}' }]);
    expectOk(await srv.api('PUT', `${p}/values/ttl-key?expiration_ttl=60`,
      { body: mp.body, headers: { 'content-type': mp.contentType } }));
    expectOk(await srv.api('PUT', `${p}/values/forever`, { body: 'stays' }));
    const t1 = serverNow();

    const g = await getRaw(p, 'ttl-key');
    assert.equal(g.status, 200);
    assert.equal(g.bytes.toString(), 'short-lived');
    const exp = Number(g.headers.get('expiration'));
    assert.ok(exp >= t0 + 60 && exp <= t1 + 60, `expiration header ${exp} not in [${t0 + 60}, ${t1 + 60}]`);
    assert.deepEqual(expectOk(await srv.api('GET', `${p}/metadata/ttl-key`)), { m: 1 });
    const listed = expectOk(await srv.api('GET', `${p}/keys`));
    assert.deepEqual(listed, [{ name: 'forever' }, { name: 'ttl-key', expiration: exp, metadata: { m: 1 } }]);
    const bg = expectOk(await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['ttl-key'], withMetadata: true } }));
    assert.deepEqual(bg, { values: { 'ttl-key': { value: 'short-lived', metadata: { m: 1 }, expiration: exp } } });

    await advance(30);
    assert.equal((await getRaw(p, 'ttl-key')).status, 200, 'still visible 30 s later');

    await advance(31);
    expectError(await srv.api('GET', `${p}/values/ttl-key`), 404, 10009, "get: 'key not found'");
    expectError(await srv.api('GET', `${p}/metadata/ttl-key`), 404, 10009, "metadata: 'key not found'");
    assert.deepEqual(await names(p), ['forever']);
    assert.deepEqual(expectOk(await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['ttl-key', 'forever'] } })),
      { values: { 'ttl-key': null, forever: 'stays' } });
    assert.deepEqual(expectOk(await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['ttl-key'], withMetadata: true } })),
      { values: { 'ttl-key': null } });
    const bj = await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['ttl-key'], type: 'json' } });
    assert.deepEqual(expectOk(bj), { values: { 'ttl-key': null } });

    // still gone after the background purge had time to run
    await sleep(1500);
    expectError(await srv.api('GET', `${p}/values/ttl-key`), 404, 10009);
    assert.deepEqual(await names(p), ['forever']);
    assert.equal((await getRaw(p, 'forever')).bytes.toString(), 'stays');
  });

  it('a key is absent exactly at its expiration second', async () => {
    const p = srv.ns(await srv.createNamespace());
    expectOk(await srv.api('PUT', `${p}/values/edge?expiration_ttl=60`, { body: 'e' }));
    // server time now >= put time, so after +60 s now >= expiration
    await advance(60);
    expectError(await srv.api('GET', `${p}/values/edge`), 404, 10009);
    assert.deepEqual(await names(p), []);
  });

  it('absolute expiration follows the server clock', async () => {
    const p = srv.ns(await srv.createNamespace());
    const exp = serverNow() + 120;
    expectOk(await srv.api('PUT', `${p}/values/abs?expiration=${exp}`, { body: 'a' }));
    assert.equal((await getRaw(p, 'abs')).headers.get('expiration'), String(exp));
    await advance(61);
    assert.equal((await getRaw(p, 'abs')).status, 200);
    await advance(60);
    expectError(await srv.api('GET', `${p}/values/abs`), 404, 10009);
  });

  it('bulk-written TTL keys expire too', async () => {
    const p = srv.ns(await srv.createNamespace());
    expectOk(await srv.api('PUT', `${p}/bulk`, {
      json: [
        { key: 'b1', value: 'x', expiration_ttl: 60 },
        { key: 'b2', value: 'y', expiration_ttl: 3600 },
        { key: 'b3', value: 'z' },
      ],
    }));
    await advance(61);
    assert.deepEqual(await names(p), ['b2', 'b3']);
    assert.deepEqual(expectOk(await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['b1', 'b2', 'b3'] } })),
      { values: { b1: null, b2: 'y', b3: 'z' } });
  });

  it('rewriting a key without TTL makes it permanent; an expired key can be written again', async () => {
    const p = srv.ns(await srv.createNamespace());
    expectOk(await srv.api('PUT', `${p}/values/k?expiration_ttl=60`, { body: 'v1' }));
    expectOk(await srv.api('PUT', `${p}/values/k`, { body: 'v2' }));
    await advance(61);
    const g = await getRaw(p, 'k');
    assert.equal(g.status, 200);
    assert.equal(g.bytes.toString(), 'v2');
    assert.equal(g.headers.get('expiration'), null);

    expectOk(await srv.api('PUT', `${p}/values/j?expiration_ttl=60`, { body: 'old' }));
    await advance(61);
    expectError(await srv.api('GET', `${p}/values/j`), 404, 10009);
    expectOk(await srv.api('PUT', `${p}/values/j`, { body: 'new' }));
    const g2 = await getRaw(p, 'j');
    assert.equal(g2.status, 200);
    assert.equal(g2.bytes.toString(), 'new');
    assert.equal(expectOk(await srv.api('GET', `${p}/metadata/j`)), null);
  });

  it('expiration validation uses the server clock', async () => {
    const p = srv.ns(await srv.createNamespace());
    await advance(10000);
    // 120 s ahead of the real clock is in the server's past now
    const exp = nowS() + 120;
    const r = await srv.api('PUT', `${p}/values/v?expiration=${exp}`, { body: 'x' });
    expectError(r, 400, 10033,
      `Invalid expiration of ${exp}. Please specify integer greater than the current number of seconds since the UNIX epoch.`);
    const ok = serverNow() + 120;
    expectOk(await srv.api('PUT', `${p}/values/v?expiration=${ok}`, { body: 'x' }));
  });
});

describe('test clock route', { timeout: 30000 }, () => {
  it('is not available without --test-clock', async () => {
    const srv = await startServer();
    try {
      const r = await fetch(`${srv.origin}/_edgekv/test/clock?advance_s=100`, { method: 'POST' });
      assert.equal(r.status, 404);
      await r.text();
    } finally {
      await srv.stop();
    }
  });
});
