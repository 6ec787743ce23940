// Bulk write / delete / get (docs/API.md "Bulk").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectOk, expectError } from './lib/harness.mjs';

const nowS = () => Math.floor(Date.now() / 1000);

describe('bulk', { timeout: 120000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.stop(); });

  const newNs = async () => srv.ns(await srv.createNamespace());

  // Regression: 100 keys of 25 MiB each would have been read into memory at once.
  it('bulk get refuses values adding up to more than 25 MB (413/10024), each alone is fine', async () => {
    const p = await newNs();
    const big = Buffer.alloc(13 * 1000 * 1000, 0x61); /* text, 13 MB */
    for (const k of ['big1', 'big2']) expectOk(await srv.api('PUT', `${p}/values/${k}`, { body: big }));
    const both = await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['big1', 'big2'] } });
    assert.equal(both.status, 413, JSON.stringify(both.body).slice(0, 300));
    assert.equal(both.body.errors[0].code, 10024);
    assert.match(both.body.errors[0].message, /^bulk get keys: /);
    const one = expectOk(await srv.api('POST', `${p}/bulk/get`, { json: { keys: ['big1', 'missing'] } }));
    assert.equal(one.values.big1.length, big.length);
    assert.equal(one.values.missing, null);
  });
  const getRaw = async (p, key) => {
    const res = await srv.fetch('GET', `${p}/values/${encodeURIComponent(key)}`);
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), headers: res.headers };
  };
  const meta = async (p, key) => srv.api('GET', `${p}/metadata/${encodeURIComponent(key)}`);
  const bulkGet = (p, body) => srv.api('POST', `${p}/bulk/get`, { json: body });

  describe('bulk write', () => {
    it('writes text, base64, metadata, expiration and expiration_ttl items', async () => {
      const p = await newNs();
      const bin = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
      const exp = nowS() + 3600;
      const t0 = nowS();
      const r = await srv.api('PUT', `${p}/bulk`, {
        json: [
          { key: 'text', value: 'plain text ü' },
          { key: 'b64', value: bin.toString('base64'), base64: true },
          { key: 'b64-false', value: 'aGVsbG8=', base64: false },
          { key: 'with-meta', value: 'm', metadata: { a: 1, b: ['x'], c: { d: null } } },
          { key: 'with-exp', value: 'e', expiration: exp },
          { key: 'with-ttl', value: 't', expiration_ttl: 600 },
          { key: 'ttl-wins', value: 'w', expiration: exp + 50000, expiration_ttl: 900 },
          { key: 'empty', value: '' },
          { key: 'empty-b64', value: '', base64: true },
          { key: 'ключ 🔑/x', value: 'unicode key' },
        ],
      });
      assert.deepEqual(expectOk(r), { successful_key_count: 10, unsuccessful_keys: [] });
      const t1 = nowS();

      let g = await getRaw(p, 'text');
      assert.equal(g.status, 200);
      assert.equal(g.bytes.toString('utf8'), 'plain text ü');
      assert.equal(g.headers.get('expiration'), null);

      g = await getRaw(p, 'b64');
      assert.equal(g.status, 200);
      assert.ok(g.bytes.equals(bin), 'base64 item must be stored decoded, byte-exact');

      g = await getRaw(p, 'b64-false');
      assert.equal(g.bytes.toString('utf8'), 'aGVsbG8=');

      assert.deepEqual(expectOk(await meta(p, 'with-meta')), { a: 1, b: ['x'], c: { d: null } });
      assert.equal(expectOk(await meta(p, 'text')), null);

      g = await getRaw(p, 'with-exp');
      assert.equal(g.headers.get('expiration'), String(exp));
      g = await getRaw(p, 'with-ttl');
      const e = Number(g.headers.get('expiration'));
      assert.ok(e >= t0 + 600 && e <= t1 + 600, `ttl expiration ${e}`);
      g = await getRaw(p, 'ttl-wins');
      const e2 = Number(g.headers.get('expiration'));
      assert.ok(e2 >= t0 + 900 && e2 <= t1 + 900, `expiration_ttl must win, got ${e2}`);

      g = await getRaw(p, 'empty');
      assert.equal(g.status, 200);
      assert.equal(g.bytes.length, 0);
      g = await getRaw(p, 'empty-b64');
      assert.equal(g.status, 200);
      assert.equal(g.bytes.length, 0);
      g = await getRaw(p, 'ключ 🔑/x');
      assert.equal(g.bytes.toString('utf8'), 'unicode key');

      const listed = expectOk(await srv.api('GET', `${p}/keys`));
      assert.equal(listed.length, 10);
    });

    it('JSON strings with \\u0000 (values, keys, metadata) are valid and round-trip', async () => {
      const p = await newNs();
      const r = await srv.api('PUT', `${p}/bulk`, {
        json: [
          { key: 'nul-value', value: 'a\u0000b' },
          { key: 'nul\u0000key', value: 'nk', metadata: { m: '\u0000' } },
        ],
      });
      assert.deepEqual(expectOk(r), { successful_key_count: 2, unsuccessful_keys: [] });
      const g = await getRaw(p, 'nul-value');
      assert.equal(g.status, 200);
      assert.ok(g.bytes.equals(Buffer.from([0x61, 0, 0x62])), `value bytes ${g.bytes.toString('hex')}`);
      const g2 = await getRaw(p, 'nul\u0000key');
      assert.equal(g2.bytes.toString(), 'nk');
      assert.deepEqual(expectOk(await meta(p, 'nul\u0000key')), { m: '\u0000' });
      const bg = await bulkGet(p, { keys: ['nul-value', 'nul\u0000key'], withMetadata: true });
      assert.deepEqual(expectOk(bg), {
        values: { 'nul-value': { value: 'a\u0000b', metadata: null }, 'nul\u0000key': { value: 'nk', metadata: { m: '\u0000' } } },
      });
      const del = await srv.api('POST', `${p}/bulk/delete`, { json: ['nul\u0000key', 'nul-value'] });
      assert.deepEqual(expectOk(del), { successful_key_count: 2, unsuccessful_keys: [] });
      assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)), []);
    });

    it('overwrites existing values, metadata and expiration', async () => {
      const p = await newNs();
      expectOk(await srv.api('PUT', `${p}/bulk`, { json: [{ key: 'k', value: 'old', metadata: { v: 1 }, expiration_ttl: 3600 }] }));
      expectOk(await srv.api('PUT', `${p}/bulk`, { json: [{ key: 'k', value: 'new' }] }));
      const g = await getRaw(p, 'k');
      assert.equal(g.bytes.toString(), 'new');
      assert.equal(g.headers.get('expiration'), null);
      assert.equal(expectOk(await meta(p, 'k')), null);
    });

    it('an empty array writes nothing and succeeds', async () => {
      const p = await newNs();
      assert.deepEqual(expectOk(await srv.api('PUT', `${p}/bulk`, { json: [] })),
        { successful_key_count: 0, unsuccessful_keys: [] });
    });

    it('10,000 items accepted; 10,001 is 400/10029 and writes nothing', { timeout: 60000 }, async () => {
      const p = await newNs();
      const items = Array.from({ length: 10000 }, (_, i) => ({ key: `k${i}`, value: `${i}` }));
      assert.deepEqual(expectOk(await srv.api('PUT', `${p}/bulk`, { json: items })),
        { successful_key_count: 10000, unsuccessful_keys: [] });
      const p2 = await newNs();
      const over = Array.from({ length: 10001 }, (_, i) => ({ key: `k${i}`, value: `${i}` }));
      expectError(await srv.api('PUT', `${p2}/bulk`, { json: over }), 400, 10029,
        "bulk write: 'You can write a maximum of 10000 pairs'");
      assert.deepEqual(expectOk(await srv.api('GET', `${p2}/keys?limit=10`)), []);
    });

    it('one invalid item fails the whole request with its error and writes nothing', async () => {
      const p = await newNs();
      const good = [{ key: 'g1', value: '1' }, { key: 'g2', value: '2' }];
      const cases = [
        [{ key: 'bad', value: 'v', expiration_ttl: 30 }, 400, 10034,
          /^bulk write: item [23]: .*Invalid expiration_ttl of 30\. Expiration TTL must be at least 60\./],
        [{ key: 'k'.repeat(513), value: 'v' }, 414, 10030,
          /^bulk write: item [23]: .*UTF-8 encoded length of 513 exceeds key length limit of 512\./],
        [{ key: 'bad', value: 'v', metadata: { m: 'x'.repeat(1100) } }, 413, 10047,
          /^bulk write: item [23]: .*Metadata length of 1108 exceeds limit of 1024\./],
        [{ key: 'bad', value: 'v', expiration: nowS() + 10 }, 400, 10033, /^bulk write: item [23]: .*Invalid expiration of/],
        [{ key: 'bad', value: '!!!not base64!!!', base64: true }, 400, 10012,
          /^bulk write: item [23]: 'value is not valid base64'$/],
        [{ key: '', value: 'v' }, 400, 10023, /^bulk write: item [23]: .*Key names must not be empty/],
        [{ key: '..', value: 'v' }, 400, 10023, /^bulk write: item [23]: .*Illegal key name "\.\."\. Please use a different name\./],
      ];
      for (const [badItem, status, code, msg] of cases) {
        const r = await srv.api('PUT', `${p}/bulk`, { json: [...good, badItem] });
        expectError(r, status, code, msg);
        for (const k of ['g1', 'g2']) {
          expectError(await srv.api('GET', `${p}/values/${k}`), 404, 10009, "get: 'key not found'");
        }
      }
      assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)), []);
    });

    it('a value over 25 MiB in an item is 413/10024', { timeout: 60000 }, async () => {
      const p = await newNs();
      const big = 'a'.repeat(26214401);
      const r = await srv.api('PUT', `${p}/bulk`, { json: [{ key: 'ok', value: 'v' }, { key: 'big', value: big }] });
      expectError(r, 413, 10024, /^bulk write: item [12]: .*Value length of 26214401 exceeds limit of 26214400\./);
      expectError(await srv.api('GET', `${p}/values/ok`), 404, 10009);
    });

    it('a body that is not a JSON array of items is 400/10029', async () => {
      const p = await newNs();
      expectError(await srv.api('PUT', `${p}/bulk`, { body: '[{"key":', headers: { 'content-type': 'application/json' } }),
        400, 10029, /^bulk write: 'malformed JSON body/);
      expectError(await srv.api('PUT', `${p}/bulk`, { json: { key: 'a', value: 'b' } }), 400, 10029, /^bulk write: /);
      expectError(await srv.api('PUT', `${p}/bulk`, { json: ['just-a-string'] }), 400, 10029, /^bulk write: /);
      // an item without a value: API.md allows either reading (whole body malformed, 10029, or
      // the item's own error, 10012 malformed value); both must be 400 and write nothing
      const nv = await srv.api('PUT', `${p}/bulk`, { json: [{ key: 'novalue' }] });
      assert.equal(nv.status, 400, JSON.stringify(nv.body));
      assert.ok([10029, 10012].includes(nv.body.errors[0].code), JSON.stringify(nv.body));
      assert.match(nv.body.errors[0].message, /^bulk write: /);
      assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)), []);
    });
  });

  describe('bulk delete', () => {
    const seed = async (p, keys) => {
      expectOk(await srv.api('PUT', `${p}/bulk`, { json: keys.map((key) => ({ key, value: `v-${key}` })) }));
    };

    it('POST /bulk/delete deletes the keys; missing keys count as deleted', async () => {
      const p = await newNs();
      await seed(p, ['a', 'b', 'c', 'd/e', 'ключ']);
      const r = await srv.api('POST', `${p}/bulk/delete`, { json: ['a', 'c', 'missing', 'd/e', 'ключ'] });
      assert.deepEqual(expectOk(r), { successful_key_count: 5, unsuccessful_keys: [] });
      assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)).map((i) => i.name), ['b']);
      expectError(await srv.api('GET', `${p}/values/a`), 404, 10009);
      const g = await getRaw(p, 'b');
      assert.equal(g.bytes.toString(), 'v-b');
    });

    it('deprecated DELETE /bulk with a JSON body does the same', async () => {
      const p = await newNs();
      await seed(p, ['x', 'y', 'z']);
      const r = await srv.api('DELETE', `${p}/bulk`, { json: ['x', 'z', 'nope'] });
      assert.deepEqual(expectOk(r), { successful_key_count: 3, unsuccessful_keys: [] });
      assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)).map((i) => i.name), ['y']);
    });

    it('an empty array succeeds with count 0', async () => {
      const p = await newNs();
      assert.deepEqual(expectOk(await srv.api('POST', `${p}/bulk/delete`, { json: [] })),
        { successful_key_count: 0, unsuccessful_keys: [] });
    });

    it('10,000 keys accepted, 10,001 is 400/10029 and deletes nothing', { timeout: 60000 }, async () => {
      const p = await newNs();
      await seed(p, ['keep-1', 'keep-2']);
      const ok = Array.from({ length: 10000 }, (_, i) => `gone-${i}`);
      assert.deepEqual(expectOk(await srv.api('POST', `${p}/bulk/delete`, { json: ok })),
        { successful_key_count: 10000, unsuccessful_keys: [] });
      const over = ['keep-1', ...Array.from({ length: 10000 }, (_, i) => `x-${i}`)];
      expectError(await srv.api('POST', `${p}/bulk/delete`, { json: over }), 400, 10029,
        /^bulk delete: '.*10000 keys'$/);
      expectError(await srv.api('DELETE', `${p}/bulk`, { json: over }), 400, 10029, /^bulk delete: '.*10000 keys'$/);
      assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)).map((i) => i.name), ['keep-1', 'keep-2']);
    });

    it('a body that is not a JSON array of strings is 400/10029', async () => {
      const p = await newNs();
      expectError(await srv.api('POST', `${p}/bulk/delete`, { body: 'nope', headers: { 'content-type': 'application/json' } }),
        400, 10029, /^bulk delete: 'malformed JSON body/);
      expectError(await srv.api('POST', `${p}/bulk/delete`, { json: { keys: ['a'] } }), 400, 10029, /^bulk delete: /);
      expectError(await srv.api('POST', `${p}/bulk/delete`, { json: [1, 2] }), 400, 10029, /^bulk delete: /);
    });
  });

  describe('bulk get', () => {
    let p;
    const exp = nowS() + 7200;
    before(async () => {
      p = await newNs();
      expectOk(await srv.api('PUT', `${p}/bulk`, {
        json: [
          { key: 'text', value: 'hello' },
          { key: 'json-obj', value: '{"a":[1,2],"b":"c"}', metadata: { m: 1 } },
          { key: 'json-num', value: '42' },
          { key: 'json-str', value: '"quoted"' },
          { key: 'exp', value: 'expiring', expiration: exp, metadata: ['x'] },
          { key: 'ключ', value: 'юникод' },
        ],
      }));
    });

    it('default type text: values as strings, missing keys null', async () => {
      const r = await bulkGet(p, { keys: ['text', 'json-obj', 'missing', 'ключ'] });
      assert.deepEqual(expectOk(r), {
        values: { text: 'hello', 'json-obj': '{"a":[1,2],"b":"c"}', missing: null, ключ: 'юникод' },
      });
      const r2 = await bulkGet(p, { keys: ['text'], type: 'text' });
      assert.deepEqual(expectOk(r2), { values: { text: 'hello' } });
    });

    it('type json parses the values', async () => {
      const r = await bulkGet(p, { keys: ['json-obj', 'json-num', 'json-str', 'missing'], type: 'json' });
      assert.deepEqual(expectOk(r), {
        values: { 'json-obj': { a: [1, 2], b: 'c' }, 'json-num': 42, 'json-str': 'quoted', missing: null },
      });
    });

    it('withMetadata returns {value, metadata, expiration?} or null', async () => {
      const r = await bulkGet(p, { keys: ['text', 'json-obj', 'exp', 'missing'], withMetadata: true });
      assert.deepEqual(expectOk(r), {
        values: {
          text: { value: 'hello', metadata: null },
          'json-obj': { value: '{"a":[1,2],"b":"c"}', metadata: { m: 1 } },
          exp: { value: 'expiring', metadata: ['x'], expiration: exp },
          missing: null,
        },
      });
      const rj = await bulkGet(p, { keys: ['json-obj'], type: 'json', withMetadata: true });
      assert.deepEqual(expectOk(rj), { values: { 'json-obj': { value: { a: [1, 2], b: 'c' }, metadata: { m: 1 } } } });
    });

    // issue 9: withMetadata "yes" was read as false
    it('withMetadata that is not a boolean is 400/10029; null is absent', async () => {
      for (const wm of ['yes', 'true', 1, 0, {}, []]) {
        expectError(await bulkGet(p, { keys: ['text'], withMetadata: wm }), 400, 10029,
          "bulk get keys: 'withMetadata must be true or false'");
      }
      assert.deepEqual(expectOk(await bulkGet(p, { keys: ['text'], withMetadata: null })), { values: { text: 'hello' } });
      assert.deepEqual(expectOk(await bulkGet(p, { keys: ['text'], withMetadata: false })), { values: { text: 'hello' } });
    });

    it('type json on a non-JSON value is 400/10029', async () => {
      expectError(await bulkGet(p, { keys: ['json-num', 'text'], type: 'json' }), 400, 10029,
        "bulk get keys: 'At least one of the requested keys corresponds to a non-json value'");
    });

    it('100 keys accepted, 101 is 400/10029, 0 is 400/10029', async () => {
      const keys = Array.from({ length: 100 }, (_, i) => (i === 0 ? 'text' : `none-${i}`));
      const r = await bulkGet(p, { keys });
      const res = expectOk(r);
      assert.equal(Object.keys(res.values).length, 100);
      assert.equal(res.values.text, 'hello');
      assert.equal(res.values['none-50'], null);
      expectError(await bulkGet(p, { keys: [...keys, 'one-more'] }), 400, 10029,
        "bulk get keys: 'You can request a maximum of 100 keys'");
      expectError(await bulkGet(p, { keys: [] }), 400, 10029, /^bulk get keys: '.*minimum of 1 key'$/);
    });

    it('bad type is 400/10029', async () => {
      expectError(await bulkGet(p, { keys: ['text'], type: 'x' }), 400, 10029,
        'bulk get keys: \'"x" is not a valid type. Use "json" or "text"\'');
    });

    it('malformed bodies are 400/10029', async () => {
      expectError(await srv.api('POST', `${p}/bulk/get`, { body: '{', headers: { 'content-type': 'application/json' } }),
        400, 10029, /^bulk get keys: 'malformed JSON body/);
      expectError(await bulkGet(p, ['text']), 400, 10029, /^bulk get keys: /);
      expectError(await bulkGet(p, {}), 400, 10029, /^bulk get keys: /);
    });

    it('a key over 512 bytes is rejected', async () => {
      const r = await bulkGet(p, { keys: ['text', 'k'.repeat(513)] });
      assert.ok(r.status === 414 || r.status === 400, `status ${r.status}`);
      assert.equal(r.body.success, false);
    });
  });
});
