// Values and metadata: raw and multipart writes, reads, deletes, key encoding and every
// limit boundary (docs/API.md "Values", "Metadata", "Limits").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, expectOk, expectError, multipart, sha256, RawConn } from './lib/harness.mjs';

const MAX_VALUE = 26214400;
const nowS = () => Math.floor(Date.now() / 1000);
const enc = (k) => encodeURIComponent(k);

describe('values', { timeout: 120000 }, () => {
  let srv;
  let ns;
  let p; // namespace path

  before(async () => {
    srv = await startServer();
    ns = await srv.createNamespace();
    p = srv.ns(ns);
  });
  after(async () => { await srv?.stop(); });

  // PUT raw body; returns the api() reply.
  const putRaw = (key, body, { query = '', headers = {}, encoded } = {}) =>
    srv.api('PUT', `${p}/values/${encoded ?? enc(key)}${query}`, { body, headers });
  const putForm = (key, parts, { query = '', encoded } = {}) => {
    const mp = multipart(parts);
    return srv.api('PUT', `${p}/values/${encoded ?? enc(key)}${query}`,
      { body: mp.body, headers: { 'content-type': mp.contentType } });
  };
  // GET the raw value: { status, bytes, headers, json }
  const getRaw = async (key, encoded) => {
    const res = await srv.fetch('GET', `${p}/values/${encoded ?? enc(key)}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    let json;
    try { json = JSON.parse(bytes.toString('utf8')); } catch { json = undefined; }
    return { status: res.status, bytes, headers: res.headers, json };
  };
  const getMeta = (key, encoded) => srv.api('GET', `${p}/metadata/${encoded ?? enc(key)}`);
  const expectValue = async (key, expected, encoded) => {
    const g = await getRaw(key, encoded);
    assert.equal(g.status, 200, `GET ${key}: ${g.bytes.toString('utf8', 0, 300)}`);
    assert.equal(g.headers.get('content-type'), 'application/octet-stream');
    const exp = Buffer.from(expected);
    assert.equal(g.bytes.length, exp.length, `length of ${key}`);
    assert.ok(g.bytes.equals(exp), `bytes of ${key} differ`);
    return g;
  };
  const listNames = async (prefix) => {
    const r = await srv.api('GET', `${p}/keys?${new URLSearchParams({ prefix })}`);
    return expectOk(r);
  };

  describe('raw values', () => {
    it('PUT answers result null; GET returns the bytes as octet-stream without expiration', async () => {
      const r = await putRaw('plain', 'hello world');
      assert.deepEqual(r.body, { success: true, errors: [], messages: [], result: null });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const g = await expectValue('plain', 'hello world');
      assert.equal(g.headers.get('expiration'), null);
      assert.equal(g.headers.get('content-length'), '11');
    });

    it('all 256 byte values (and NUL bytes) round-trip exactly', async () => {
      const all = Buffer.alloc(256 * 4 + 3);
      for (let i = 0; i < 256 * 4; i++) all[i] = i % 256;
      // trailing NULs must not be trimmed
      const r = await putRaw('bytes', all, { headers: { 'content-type': 'application/octet-stream' } });
      expectOk(r);
      await expectValue('bytes', all);
      const nul = Buffer.from([0]);
      expectOk(await putRaw('nul', nul));
      await expectValue('nul', nul);
    });

    it('a 0-byte value is stored and read back as 0 bytes', async () => {
      expectOk(await putRaw('empty', Buffer.alloc(0)));
      const g = await expectValue('empty', Buffer.alloc(0));
      assert.equal(g.headers.get('content-length'), '0');
      // it exists: listed, metadata null
      assert.equal(expectOk(await getMeta('empty')), null);
    });

    it('any request content type is stored raw (JSON and text bodies are not interpreted)', async () => {
      const body = '{"success":false,"a":[1,2]}';
      expectOk(await putRaw('json-body', body, { headers: { 'content-type': 'application/json' } }));
      await expectValue('json-body', body);
      expectOk(await putRaw('text-body', 'metadata=x&value=y',
        { headers: { 'content-type': 'application/x-www-form-urlencoded' } }));
      await expectValue('text-body', 'metadata=x&value=y');
      expectOk(await putRaw('plain-text', 'ünïcødé', { headers: { 'content-type': 'text/plain;charset=UTF-8' } }));
      await expectValue('plain-text', 'ünïcødé');
    });

    it('overwrite replaces value, metadata and expiration', async () => {
      expectOk(await putForm('ow', [{ name: 'value', data: 'first' }, { name: 'metadata', data: '{"v":1}' }],
        { query: '?expiration_ttl=3600' }));
      assert.deepEqual(expectOk(await getMeta('ow')), { v: 1 });
      assert.ok((await getRaw('ow')).headers.get('expiration'));
      expectOk(await putRaw('ow', 'second'));
      const g = await expectValue('ow', 'second');
      assert.equal(g.headers.get('expiration'), null, 'expiration must be cleared by a write without one');
      assert.equal(expectOk(await getMeta('ow')), null, 'metadata must be cleared by a write without it');
    });

    it('missing key: GET and metadata are 404/10009', async () => {
      const g = await srv.api('GET', `${p}/values/never-written`);
      expectError(g, 404, 10009, "get: 'key not found'");
      expectError(await getMeta('never-written'), 404, 10009, "metadata: 'key not found'");
    });

    it('DELETE answers result null, removes the key; deleting a missing key succeeds', async () => {
      expectOk(await putRaw('to-delete', 'x'));
      const d = await srv.api('DELETE', `${p}/values/to-delete`);
      assert.deepEqual(d.body, { success: true, errors: [], messages: [], result: null });
      expectError(await srv.api('GET', `${p}/values/to-delete`), 404, 10009, "get: 'key not found'");
      expectError(await getMeta('to-delete'), 404, 10009);
      assert.deepEqual(await listNames('to-delete'), []);
      const d2 = await srv.api('DELETE', `${p}/values/to-delete`);
      assert.deepEqual(d2.body, { success: true, errors: [], messages: [], result: null });
      const d3 = await srv.api('DELETE', `${p}/values/never-existed-${Date.now()}`);
      expectOk(d3);
    });

    it('metadata of a key without metadata is null', async () => {
      expectOk(await putRaw('no-meta', 'v'));
      const r = await getMeta('no-meta');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { success: true, errors: [], messages: [], result: null });
    });
  });

  describe('read-after-write coherence (cache)', () => {
    it('a cached value is replaced by an overwrite, removed by a delete, and a cached miss is filled by a put',
      async () => {
        // miss first (a negative cache entry must not hide the later write)
        expectError(await srv.api('GET', `${p}/values/coh`), 404, 10009);
        expectError(await getMeta('coh'), 404, 10009);
        expectOk(await putRaw('coh', 'one'));
        await expectValue('coh', 'one');
        await expectValue('coh', 'one');
        expectOk(await putForm('coh', [{ name: 'value', data: 'two' }, { name: 'metadata', data: '{"v":2}' }]));
        await expectValue('coh', 'two');
        assert.deepEqual(expectOk(await getMeta('coh')), { v: 2 });
        expectOk(await srv.api('PUT', `${p}/bulk`, { json: [{ key: 'coh', value: 'three' }] }));
        await expectValue('coh', 'three');
        assert.equal(expectOk(await getMeta('coh')), null);
        expectOk(await srv.api('DELETE', `${p}/values/coh`));
        expectError(await srv.api('GET', `${p}/values/coh`), 404, 10009);
        expectOk(await putRaw('coh', 'four'));
        await expectValue('coh', 'four');
        expectOk(await srv.api('POST', `${p}/bulk/delete`, { json: ['coh'] }));
        expectError(await srv.api('GET', `${p}/values/coh`), 404, 10009);
        expectError(await getMeta('coh'), 404, 10009);
        expectOk(await putRaw('coh', 'five'));
        await expectValue('coh', 'five');
        expectOk(await srv.api('DELETE', `${p}/bulk`, { json: ['coh'] }));
        expectError(await srv.api('GET', `${p}/values/coh`), 404, 10009);
      });

    it('a large (uncached) value replaced by a small one and back', async () => {
      const big = randomBytes(3 * 1024 * 1024);
      expectOk(await putRaw('size-flip', big));
      await expectValue('size-flip', big);
      expectOk(await putRaw('size-flip', 'small'));
      await expectValue('size-flip', 'small');
      const big2 = randomBytes(2 * 1024 * 1024 + 7);
      expectOk(await putRaw('size-flip', big2));
      await expectValue('size-flip', big2);
    });

    it('concurrent writes to one key: the survivor\'s value and metadata come from the same write', async () => {
      for (let round = 0; round < 3; round++) {
        const writes = Array.from({ length: 30 }, (_, i) => putForm('contended', [
          { name: 'value', data: `value-${i}` },
          { name: 'metadata', data: JSON.stringify({ i }) },
        ]));
        for (const r of await Promise.all(writes)) expectOk(r);
        const g = await getRaw('contended');
        const m = expectOk(await getMeta('contended'));
        assert.equal(g.bytes.toString(), `value-${m.i}`, 'value and metadata from different writes');
        const listed = expectOk(await srv.api('GET', `${p}/keys?prefix=contended`));
        assert.deepEqual(listed, [{ name: 'contended', metadata: { i: m.i } }]);
      }
    });
  });

  describe('expiration on writes', () => {
    it('expiration_ttl sets the expiration header to now + ttl', async () => {
      const before = nowS();
      expectOk(await putRaw('ttl-3600', 'v', { query: '?expiration_ttl=3600' }));
      const after = nowS();
      const g = await expectValue('ttl-3600', 'v');
      const e = Number(g.headers.get('expiration'));
      assert.ok(e >= before + 3600 && e <= after + 3600, `expiration ${e} not in [${before + 3600}, ${after + 3600}]`);
      assert.match(g.headers.get('expiration'), /^\d+$/);
    });

    it('absolute expiration is returned exactly', async () => {
      const exp = nowS() + 7200;
      expectOk(await putRaw('exp-abs', 'v', { query: `?expiration=${exp}` }));
      const g = await expectValue('exp-abs', 'v');
      assert.equal(g.headers.get('expiration'), String(exp));
    });

    it('expiration_ttl wins over expiration', async () => {
      const before = nowS();
      const far = before + 100000;
      expectOk(await putRaw('both', 'v', { query: `?expiration=${far}&expiration_ttl=600` }));
      const e = Number((await getRaw('both')).headers.get('expiration'));
      assert.ok(e >= before + 600 && e <= nowS() + 600, `expiration ${e} should be about now+600, not ${far}`);
      // order of parameters does not matter
      expectOk(await putRaw('both2', 'v', { query: `?expiration_ttl=600&expiration=${far}` }));
      const e2 = Number((await getRaw('both2')).headers.get('expiration'));
      assert.ok(e2 >= before + 600 && e2 <= nowS() + 600, `expiration ${e2} should be about now+600`);
    });

    it('TTL 60 accepted, 59 rejected with 10034', async () => {
      expectOk(await putRaw('ttl-60', 'v', { query: '?expiration_ttl=60' }));
      await expectValue('ttl-60', 'v');
      expectError(await putRaw('ttl-59', 'v', { query: '?expiration_ttl=59' }), 400, 10034,
        'Invalid expiration_ttl of 59. Expiration TTL must be at least 60.');
      expectError(await putRaw('ttl-1', 'v', { query: '?expiration_ttl=1' }), 400, 10034,
        'Invalid expiration_ttl of 1. Expiration TTL must be at least 60.');
      expectError(await putRaw('ttl-0', 'v', { query: '?expiration_ttl=0' }), 400, 10034,
        'Invalid expiration_ttl of 0. Please specify integer greater than 0.');
      expectError(await putRaw('ttl-neg', 'v', { query: '?expiration_ttl=-100' }), 400, 10034,
        'Invalid expiration_ttl of -100. Please specify integer greater than 0.');
      expectError(await putRaw('ttl-float', 'v', { query: '?expiration_ttl=120.5' }), 400, 10034,
        'Invalid expiration_ttl of 120.5. Please specify integer greater than 0.');
      expectError(await putRaw('ttl-nan', 'v', { query: '?expiration_ttl=abc' }), 400, 10034,
        /^Invalid expiration_ttl of .*\. Please specify integer greater than 0\.$/);
      for (const k of ['ttl-59', 'ttl-1', 'ttl-0', 'ttl-neg', 'ttl-float', 'ttl-nan']) {
        expectError(await srv.api('GET', `${p}/values/${k}`), 404, 10009, "get: 'key not found'");
      }
    });

    it('expiration now+61 accepted, now+30 and the past rejected with 10033', async () => {
      const ok = nowS() + 61;
      expectOk(await putRaw('exp-61', 'v', { query: `?expiration=${ok}` }));
      assert.equal((await getRaw('exp-61')).headers.get('expiration'), String(ok));
      const soon = nowS() + 30;
      expectError(await putRaw('exp-30', 'v', { query: `?expiration=${soon}` }), 400, 10033,
        `Invalid expiration of ${soon}. Expiration times must be at least 60 seconds in the future.`);
      const past = nowS() - 10;
      expectError(await putRaw('exp-past', 'v', { query: `?expiration=${past}` }), 400, 10033,
        `Invalid expiration of ${past}. Please specify integer greater than the current number of seconds since the UNIX epoch.`);
      expectError(await putRaw('exp-nan', 'v', { query: '?expiration=soon' }), 400, 10033,
        /^Invalid expiration of .*\. Please specify integer greater than the current number of seconds since the UNIX epoch\.$/);
      for (const k of ['exp-30', 'exp-past', 'exp-nan']) {
        expectError(await srv.api('GET', `${p}/values/${k}`), 404, 10009);
      }
    });

    // issue 9: ?expiration=2^63-1 was stored on PUT but refused in bulk, expiration_ttl=10^18
    // was accepted. One validator answers both paths alike; bounds are JavaScript's safe integers.
    it('expiration and expiration_ttl beyond 2^53-1 are refused alike by PUT and bulk write', async () => {
      const atMostExp = (x) => `Invalid expiration of ${x}. Expiration times must be at most 9007199254740991 (2^53 - 1).`;
      const atMostTtl = (x) => `Invalid expiration_ttl of ${x}. The resulting expiration must be at most 9007199254740991 (2^53 - 1).`;
      // number text exactly as sent; the bulk body is written by hand so big integers stay exact
      const cases = [
        ['expiration', '9007199254740992', 10033, atMostExp('9007199254740992')],
        ['expiration_ttl', '1000000000000000000', 10034, atMostTtl('1000000000000000000')],
        ['expiration_ttl', '9007199254740991', 10034, atMostTtl('9007199254740991')],
        ['expiration_ttl', '1e3', 10034, 'Invalid expiration_ttl of 1e3. Please specify integer greater than 0.'],
      ];
      for (const [field, text, code, message] of cases) {
        const key = `big-${field}-${text}`;
        expectError(await putRaw(key, 'v', { query: `?${field}=${text}` }), 400, code, message);
        if (text !== '1e3') { // JSON 1e3 is the number 1000 (JSON.parse agrees), a fine TTL
          const body = `[{"key":"${key}","value":"v","${field}":${text}}]`;
          expectError(await srv.api('PUT', `${p}/bulk`, { body, headers: { 'content-type': 'application/json' } }),
            400, code, `bulk write: item 0: ${message}`);
        }
        expectError(await srv.api('GET', `${p}/values/${enc(key)}`), 404, 10009);
      }
      // 2^63-1: PUT reads the exact text; JSON holds the nearest double, 2^63, so only the echo differs
      const r1 = await putRaw('i64max', 'v', { query: '?expiration=9223372036854775807' });
      expectError(r1, 400, 10033, atMostExp('9223372036854775807'));
      const r2 = await srv.api('PUT', `${p}/bulk`, {
        body: '[{"key":"i64max","value":"v","expiration":9223372036854775807}]',
        headers: { 'content-type': 'application/json' },
      });
      expectError(r2, 400, 10033, `bulk write: item 0: ${atMostExp('9223372036854775808')}`);
      expectError(await srv.api('GET', `${p}/values/i64max`), 404, 10009);
      // the largest expiration is stored by both, and reads back exactly
      const max = '9007199254740991';
      expectOk(await putRaw('max-put', 'v', { query: `?expiration=${max}` }));
      expectOk(await srv.api('PUT', `${p}/bulk`, {
        body: `[{"key":"max-bulk","value":"v","expiration":${max}}]`, headers: { 'content-type': 'application/json' },
      }));
      for (const k of ['max-put', 'max-bulk']) assert.equal((await getRaw(k)).headers.get('expiration'), max);
    });

    it('a repeated expiration or expiration_ttl is 400/10029 and stores nothing', async () => {
      const far = nowS() + 3600;
      for (const [q, name] of [['expiration_ttl=60&expiration_ttl=120', 'expiration_ttl'],
        [`expiration=${far}&expiration=${far}`, 'expiration'], ['expiration_ttl=60&expiration%5Fttl=abc', 'expiration_ttl']]) {
        expectError(await putRaw('rep', 'v', { query: `?${q}` }), 400, 10029, `put: 'query parameter ${name} given more than once'`);
      }
      expectError(await srv.api('GET', `${p}/values/rep`), 404, 10009);
    });

    it('multipart writes honour expiration_ttl too', async () => {
      const before = nowS();
      expectOk(await putForm('mp-ttl', [{ name: 'value', data: 'x' }], { query: '?expiration_ttl=120' }));
      const e = Number((await getRaw('mp-ttl')).headers.get('expiration'));
      assert.ok(e >= before + 120 && e <= nowS() + 120, `expiration ${e}`);
      expectError(await putForm('mp-ttl-bad', [{ name: 'value', data: 'x' }], { query: '?expiration_ttl=59' }),
        400, 10034, 'Invalid expiration_ttl of 59. Expiration TTL must be at least 60.');
    });
  });

  describe('multipart/form-data writes', () => {
    it('value text field + metadata text field holding JSON', async () => {
      const meta = { x: 1, y: [true, null, 's'], z: { n: -2.5 } };
      const r = await putForm('mp1', [
        { name: 'value', data: 'the value' },
        { name: 'metadata', data: JSON.stringify(meta) },
      ]);
      assert.deepEqual(r.body, { success: true, errors: [], messages: [], result: null });
      await expectValue('mp1', 'the value');
      assert.deepEqual(expectOk(await getMeta('mp1')), meta);
    });

    it('metadata part first, then value (order of parts does not matter)', async () => {
      expectOk(await putForm('mp-order', [
        { name: 'metadata', data: '{"first":true}' },
        { name: 'value', data: 'v' },
      ]));
      await expectValue('mp-order', 'v');
      assert.deepEqual(expectOk(await getMeta('mp-order')), { first: true });
    });

    it('metadata as a file part with Content-Type application/json (SDK 5)', async () => {
      expectOk(await putForm('mp-file-meta', [
        { name: 'value', data: 'v' },
        { name: 'metadata', data: '{"from":"file","n":[1,2,3]}', filename: 'blob', contentType: 'application/json' },
      ]));
      assert.deepEqual(expectOk(await getMeta('mp-file-meta')), { from: 'file', n: [1, 2, 3] });
    });

    it('metadata may be any JSON value (string, number, array)', async () => {
      expectOk(await putForm('mp-meta-str', [{ name: 'value', data: 'v' }, { name: 'metadata', data: '"just a string"' }]));
      assert.equal(expectOk(await getMeta('mp-meta-str')), 'just a string');
      expectOk(await putForm('mp-meta-num', [{ name: 'value', data: 'v' }, { name: 'metadata', data: '42' }]));
      assert.equal(expectOk(await getMeta('mp-meta-num')), 42);
      expectOk(await putForm('mp-meta-arr', [{ name: 'value', data: 'v' }, { name: 'metadata', data: '[1,"a",{}]' }]));
      assert.deepEqual(expectOk(await getMeta('mp-meta-arr')), [1, 'a', {}]);
    });

    it('SDK-7 bracket fields are rebuilt into nested objects and arrays of strings', async () => {
      expectOk(await putForm('mp-brackets', [
        { name: 'value', data: 'bracketed' },
        { name: 'metadata[a]', data: '1' },
        { name: 'metadata[b][c]', data: 'x' },
        { name: 'metadata[l][]', data: '1' },
      ]));
      await expectValue('mp-brackets', 'bracketed');
      assert.deepEqual(expectOk(await getMeta('mp-brackets')), { a: '1', b: { c: 'x' }, l: ['1'] });
    });

    it('bracket arrays with several elements keep their order', async () => {
      expectOk(await putForm('mp-brackets2', [
        { name: 'metadata[tags][]', data: 'one' },
        { name: 'metadata[tags][]', data: 'two' },
        { name: 'value', data: 'v' },
        { name: 'metadata[tags][]', data: 'three' },
        { name: 'metadata[deep][er][est]', data: 'ok' },
      ]));
      assert.deepEqual(expectOk(await getMeta('mp-brackets2')),
        { tags: ['one', 'two', 'three'], deep: { er: { est: 'ok' } } });
    });

    it('value as a binary file part is byte-exact (CRLF and boundary-like bytes included)', async () => {
      const bin = Buffer.concat([
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
        Buffer.from('\r\n--not-the-boundary\r\n\r\n--'),
        Buffer.from([0, 13, 10, 0]),
      ]);
      expectOk(await putForm('mp-bin', [
        { name: 'value', data: bin, filename: 'value.bin', contentType: 'application/octet-stream' },
        { name: 'metadata', data: '{"bin":true}' },
      ]));
      await expectValue('mp-bin', bin);
      assert.deepEqual(expectOk(await getMeta('mp-bin')), { bin: true });
    });

    it('an empty value part stores a 0-byte value; no metadata part means null metadata', async () => {
      expectOk(await putForm('mp-empty', [{ name: 'value', data: '' }]));
      await expectValue('mp-empty', '');
      assert.equal(expectOk(await getMeta('mp-empty')), null);
    });

    // issue 9: more than ~256 parts was "malformed"; now a documented limit with its own text
    it('a form of more than 512 parts is refused with its own message; 512 parts and 300 bracket leaves are fine', async () => {
      const filler = (n) => Array.from({ length: n }, (_, i) => ({ name: `other${i}`, data: 'x' }));
      const over = await putForm('mp-513', [{ name: 'value', data: 'v' }, ...filler(512)]);
      expectError(over, 400, 10012, "put: 'multipart/form-data body has more than 512 parts'");
      expectError(await srv.api('GET', `${p}/values/mp-513`), 404, 10009);
      expectOk(await putForm('mp-512', [{ name: 'value', data: 'v' }, ...filler(511)]));
      await expectValue('mp-512', 'v');
      // SDK-7 bracket fields: metadata of 300 array leaves (907 bytes) is 301 parts
      const leaves = Array.from({ length: 300 }, () => ({ name: 'metadata[l][]', data: '' }));
      expectOk(await putForm('mp-leaves', [{ name: 'value', data: 'v' }, ...leaves]));
      assert.deepEqual(expectOk(await getMeta('mp-leaves')), { l: Array(300).fill('') });
    });

    it('malformed multipart bodies are rejected with a 400 envelope and write nothing', async () => {
      const put = (body, ct) => srv.api('PUT', `${p}/values/mp-broken`, { body, headers: { 'content-type': ct } });
      const good = multipart([{ name: 'value', data: 'v' }], 'BOUNDARY');
      const cases = [
        ['truncated (no closing boundary)', good.body.subarray(0, good.body.length - 12), good.contentType],
        ['boundary parameter missing', good.body, 'multipart/form-data'],
        ['body uses another boundary', good.body, 'multipart/form-data; boundary=OTHER'],
        ['no value part', multipart([{ name: 'metadata', data: '{}' }], 'BOUNDARY').body, good.contentType],
        ['not multipart at all', Buffer.from('this is not multipart'), good.contentType],
        ['part without a name',
          Buffer.from('--BOUNDARY\r\nContent-Disposition: form-data\r\n\r\nv\r\n--BOUNDARY--\r\n'), good.contentType],
      ];
      const bad = [];
      for (const [what, body, ct] of cases) {
        const r = await put(body, ct);
        if (r.status !== 400 || r.body?.success !== false || r.body?.result !== null
          || typeof r.body?.errors?.[0]?.code !== 'number') {
          bad.push(`${what} (Content-Type: ${ct}) -> ${r.status} ${JSON.stringify(r.body)}`);
        }
        const g = await srv.api('GET', `${p}/values/mp-broken`);
        if (g.status !== 404) {
          bad.push(`${what}: something was stored: ${g.text.slice(0, 80)}`);
          expectOk(await srv.api('DELETE', `${p}/values/mp-broken`));
        }
      }
      assert.deepEqual(bad, [], 'malformed multipart accepted');
      // the server is fine afterwards
      expectOk(await putForm('mp-after-broken', [{ name: 'value', data: 'ok' }]));
      await expectValue('mp-after-broken', 'ok');
    });

    it('metadata strings containing \\u0000 are stored, not dropped', async () => {
      const meta = { a: 'x\u0000y', b: ['\u0000'] };
      const text = JSON.stringify(meta);
      assert.ok(text.includes('\\u0000'));
      expectOk(await putForm('meta-nul', [{ name: 'value', data: 'v' }, { name: 'metadata', data: text }]));
      assert.deepEqual(expectOk(await getMeta('meta-nul')), meta, 'valid JSON metadata was lost');
      const listed = expectOk(await srv.api('GET', `${p}/keys?prefix=meta-nul`));
      assert.deepEqual(listed, [{ name: 'meta-nul', metadata: meta }]);
    });

    it('metadata with integers beyond 64 bits is valid JSON and accepted', async () => {
      const text = '{"id":12345678901234567890,"neg":-98765432109876543210}';
      expectOk(await putForm('meta-bigint', [{ name: 'value', data: 'v' }, { name: 'metadata', data: text }]));
      // compare as JavaScript reads it (doubles): precision beyond 2^53 is not promised
      assert.deepEqual(expectOk(await getMeta('meta-bigint')), JSON.parse(text));
    });

    it('invalid metadata JSON is 400/10047 and writes nothing', async () => {
      for (const bad of ['{bad', '{"a":1', "{'a':1}", 'undefined']) {
        const r = await putForm('mp-badmeta', [{ name: 'value', data: 'v' }, { name: 'metadata', data: bad }]);
        expectError(r, 400, 10047, /^Invalid metadata/);
      }
      expectError(await srv.api('GET', `${p}/values/mp-badmeta`), 404, 10009);
    });
  });

  describe('key names in URLs', () => {
    const specials = [
      'with space',
      'a/b/c',
      '/leading-slash',
      '100%',
      '%41-not-decoded-twice',
      'what?x=1',
      'a+b',
      'hash#tag',
      'ключ🔑',
      'quote"and\\back',
      "sub-delims:@!$&'()*,;=",
      '..x',
      'tab\there',
      'nul\u0000inside',
    ];

    for (const key of specials) {
      it(`key ${JSON.stringify(key)} round-trips through put/get/metadata/list/delete`, async () => {
        const value = `value of ${key}`;
        const meta = { key };
        expectOk(await putForm(key, [{ name: 'value', data: value }, { name: 'metadata', data: JSON.stringify(meta) }]));
        await expectValue(key, value);
        assert.deepEqual(expectOk(await getMeta(key)), meta);
        const listed = await listNames(key);
        assert.deepEqual(listed.find((i) => i.name === key), { name: key, metadata: meta });
        expectOk(await srv.api('DELETE', `${p}/values/${enc(key)}`));
        expectError(await srv.api('GET', `${p}/values/${enc(key)}`), 404, 10009);
      });
    }

    it("'+' in a path stays '+' (it is not a space), %2B is '+' too", async () => {
      expectOk(await putRaw('x', 'plus', { encoded: 'p+q' }));
      await expectValue('p+q', 'plus', 'p%2Bq');
      await expectValue('p+q', 'plus', 'p+q');
      expectError(await srv.api('GET', `${p}/values/p%20q`), 404, 10009, "get: 'key not found'");
      const names = (await listNames('p')).map((i) => i.name);
      assert.ok(names.includes('p+q'), JSON.stringify(names));
      assert.ok(!names.includes('p q'));
    });

    it('%2F is a slash inside one key, and un-encoded sub-delims are taken literally', async () => {
      expectOk(await putRaw('x', 'slash', { encoded: 'dir%2Ffile' }));
      await expectValue('dir/file', 'slash');
      expectOk(await putRaw('x', 'lit', { encoded: "a:b@c!$&'()*,;=" }));
      await expectValue("a:b@c!$&'()*,;=", 'lit');
      // lowercase hex escapes decode too
      await expectValue('dir/file', 'slash', 'dir%2ffile');
    });

    it('unicode keys: raw UTF-8 percent-encoded and listed by name', async () => {
      const key = '日本語/キー 🔑';
      expectOk(await putRaw(key, 'jp'));
      await expectValue(key, 'jp');
      assert.deepEqual((await listNames('日本語')).map((i) => i.name), [key]);
    });

    it("keys '.' and '..' are 400/10023", async () => {
      // fetch() would resolve dot segments, so send these raw.
      for (const [seg, key] of [['%2E', '.'], ['%2E%2E', '..'], ['%2e', '.']]) {
        const c = await RawConn.open(srv.port);
        try {
          await c.write(`PUT /client/v4${p}/values/${seg} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.token}\r\n`
            + 'Content-Length: 1\r\n\r\nv');
          const r = await c.readResponse(5000);
          assert.equal(r.status, 400, `PUT key ${key}: ${r.body}`);
          assert.equal(r.json.errors[0].code, 10023);
          assert.equal(r.json.errors[0].message, `Illegal key name "${key}". Please use a different name.`);
        } finally { c.destroy(); }
      }
    });
  });

  describe('limits', () => {
    it('key of 512 bytes accepted, 513 bytes is 414/10030', async () => {
      const k512 = 'k'.repeat(512);
      expectOk(await putRaw(k512, 'v'));
      await expectValue(k512, 'v');
      assert.deepEqual(expectOk(await getMeta(k512)), null);
      const k513 = 'k'.repeat(513);
      expectError(await putRaw(k513, 'v'), 414, 10030, 'UTF-8 encoded length of 513 exceeds key length limit of 512.');
      expectError(await srv.api('GET', `${p}/values/${k513}`), 414, 10030,
        'UTF-8 encoded length of 513 exceeds key length limit of 512.');
      expectError(await getMeta(k513), 414, 10030);
      expectError(await srv.api('DELETE', `${p}/values/${k513}`), 414, 10030);
      // multi-byte: 256 x 'é' = 512 bytes ok, 257 = 514 bytes
      const u512 = 'é'.repeat(256);
      expectOk(await putRaw(u512, 'u'));
      await expectValue(u512, 'u');
      expectError(await putRaw('é'.repeat(257), 'u'), 414, 10030,
        'UTF-8 encoded length of 514 exceeds key length limit of 512.');
      // multipart writes are checked too
      expectError(await putForm(k513, [{ name: 'value', data: 'v' }]), 414, 10030);
    });

    it('value of exactly 26,214,400 bytes is accepted and read back intact', { timeout: 60000 }, async () => {
      const big = randomBytes(MAX_VALUE);
      const r = await putRaw('big-max', big);
      expectOk(r);
      const res = await srv.fetch('GET', `${p}/values/big-max`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), String(MAX_VALUE));
      const got = Buffer.from(await res.arrayBuffer());
      assert.equal(got.length, MAX_VALUE);
      assert.equal(sha256(got), sha256(big));
    });

    it('value of 26,214,401 bytes is 413/10024 and writes nothing', { timeout: 60000 }, async () => {
      const big = Buffer.alloc(MAX_VALUE + 1, 0x61);
      expectError(await putRaw('big-over', big), 413, 10024, 'Value length of 26214401 exceeds limit of 26214400.');
      expectError(await srv.api('GET', `${p}/values/big-over`), 404, 10009);
    });

    it('multipart value of 26,214,401 bytes is 413/10024', { timeout: 60000 }, async () => {
      const big = Buffer.alloc(MAX_VALUE + 1, 0x62);
      const r = await putForm('big-mp-over', [
        { name: 'value', data: big, filename: 'v', contentType: 'application/octet-stream' },
      ]);
      expectError(r, 413, 10024, 'Value length of 26214401 exceeds limit of 26214400.');
      expectError(await srv.api('GET', `${p}/values/big-mp-over`), 404, 10009);
    });

    it('metadata of 1024 bytes accepted, 1025 bytes is 413/10047', async () => {
      const m1024 = JSON.stringify({ m: 'x'.repeat(1024 - 8) });
      assert.equal(m1024.length, 1024);
      expectOk(await putForm('meta-1024', [{ name: 'value', data: 'v' }, { name: 'metadata', data: m1024 }]));
      assert.deepEqual(expectOk(await getMeta('meta-1024')), JSON.parse(m1024));
      const m1025 = JSON.stringify({ m: 'x'.repeat(1025 - 8) });
      expectError(await putForm('meta-1025', [{ name: 'value', data: 'v' }, { name: 'metadata', data: m1025 }]),
        413, 10047, 'Metadata length of 1025 exceeds limit of 1024.');
      expectError(await srv.api('GET', `${p}/values/meta-1025`), 404, 10009);
    });

    it('the metadata limit applies to the compact form (whitespace does not count)', async () => {
      const compact = JSON.stringify({ m: 'y'.repeat(1024 - 8) });
      const spaced = `{ \n  "m" :   ${JSON.stringify('y'.repeat(1024 - 8))}   \n}`;
      assert.ok(spaced.length > 1024);
      expectOk(await putForm('meta-spaced', [{ name: 'value', data: 'v' }, { name: 'metadata', data: spaced }]));
      assert.deepEqual(expectOk(await getMeta('meta-spaced')), JSON.parse(compact));
    });

    it('the metadata limit counts UTF-8 bytes', async () => {
      // {"m":"<508 x é>"} = 8 + 1016 = 1024 bytes (but only 516 characters)
      const ok = JSON.stringify({ m: 'é'.repeat(508) });
      assert.equal(Buffer.byteLength(ok), 1024);
      expectOk(await putForm('meta-utf8', [{ name: 'value', data: 'v' }, { name: 'metadata', data: ok }]));
      assert.deepEqual(expectOk(await getMeta('meta-utf8')), JSON.parse(ok));
      const over = JSON.stringify({ m: 'é'.repeat(509) });
      expectError(await putForm('meta-utf8-over', [{ name: 'value', data: 'v' }, { name: 'metadata', data: over }]),
        413, 10047, 'Metadata length of 1026 exceeds limit of 1024.');
    });

    it('bracket-field metadata over 1024 bytes is 413/10047', async () => {
      // {"a":"<n x>"} is n + 8 bytes
      const r = await putForm('meta-br-big', [
        { name: 'value', data: 'v' },
        { name: 'metadata[a]', data: 'z'.repeat(1025 - 8) },
      ]);
      expectError(r, 413, 10047, 'Metadata length of 1025 exceeds limit of 1024.');
    });
  });
});
