// List keys: byte order, prefix, limit, cursor pagination, expiration/metadata in items,
// expired keys (docs/API.md "List keys").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectOk, expectError, byteCompare } from './lib/harness.mjs';

const nowS = () => Math.floor(Date.now() / 1000);

// Follow the cursor until it is "" (bounded). Returns { names, pages }.
async function listAll(srv, p, { prefix, limit, maxPages = 2000 } = {}) {
  const names = [];
  const items = [];
  const pages = [];
  let cursor;
  for (let i = 0; ; i++) {
    assert.ok(i < maxPages, `more than ${maxPages} pages`);
    const q = new URLSearchParams();
    if (prefix !== undefined) q.set('prefix', prefix);
    if (limit !== undefined) q.set('limit', String(limit));
    if (cursor) q.set('cursor', cursor);
    const r = await srv.api('GET', `${p}/keys?${q}`);
    const res = expectOk(r);
    const info = r.body.result_info;
    assert.equal(typeof info, 'object', 'result_info missing');
    assert.equal(info.count, res.length, 'result_info.count');
    assert.equal(typeof info.cursor, 'string', 'result_info.cursor must be a string');
    assert.deepEqual(info.cursors, { after: info.cursor }, 'cursors.after must equal cursor');
    if (limit !== undefined) assert.ok(res.length <= limit, `page of ${res.length} > limit ${limit}`);
    pages.push({ count: res.length, cursor: info.cursor });
    for (const it of res) { names.push(it.name); items.push(it); }
    if (info.cursor === '') break;
    cursor = info.cursor;
  }
  return { names, items, pages };
}

function assertByteOrdered(names) {
  for (let i = 1; i < names.length; i++) {
    assert.ok(byteCompare(names[i - 1], names[i]) < 0,
      `not strictly increasing at ${i}: ${JSON.stringify(names[i - 1])} !< ${JSON.stringify(names[i])}`);
  }
}

async function bulkPut(srv, p, items) {
  for (let i = 0; i < items.length; i += 5000) {
    const r = await srv.api('PUT', `${p}/bulk`, { json: items.slice(i, i + 5000) });
    const res = expectOk(r);
    assert.equal(res.successful_key_count, Math.min(5000, items.length - i));
  }
}

describe('list keys', { timeout: 120000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.stop(); });

  it('empty namespace: [] with count 0 and cursor ""', async () => {
    const p = srv.ns(await srv.createNamespace());
    const r = await srv.api('GET', `${p}/keys`);
    assert.deepEqual(expectOk(r), []);
    assert.deepEqual(r.body.result_info, { count: 0, cursor: '', cursors: { after: '' } });
  });

  it('keys are listed in UTF-8 byte order, not JS string order', async () => {
    const p = srv.ns(await srv.createNamespace());
    const keys = ['b', 'B', 'a', 'a\uFFFF', 'a😀', 'ab', 'a\u00e9', 'a ', 'a~', 'A', '😀', '\uFFFF', 'z', '~',
      'a\u0080', 'a\u007f', '0', 'ä', 'ab/c', 'ab.c', 'ab-c'];
    // '\uFFFF' sorts after '😀' in JS (UTF-16) but before it in UTF-8
    assert.ok('\uFFFF' > '😀');
    assert.ok(byteCompare('\uFFFF', '😀') < 0);
    await bulkPut(srv, p, keys.map((key) => ({ key, value: `v-${key}` })));
    const expected = [...keys].sort(byteCompare);
    const r = await srv.api('GET', `${p}/keys`);
    const res = expectOk(r);
    assert.deepEqual(res.map((i) => i.name), expected);
    assert.deepEqual(res, expected.map((name) => ({ name })), 'items without expiration/metadata are {name}');
    assert.deepEqual(r.body.result_info, { count: keys.length, cursor: '', cursors: { after: '' } });
    // same order when paging 10 at a time
    const { names } = await listAll(srv, p, { limit: 10 });
    assert.deepEqual(names, expected);
  });

  it('prefix selects keys equal to or starting with it (including unicode and spaces)', async () => {
    const p = srv.ns(await srv.createNamespace());
    const keys = ['user', 'user/1', 'user/2', 'user/10', 'users', 'use', 'us', 'usr/1', 'user 1', 'user+1',
      'ключ/1', 'ключ/2', 'клюв', '😀a', '😀b', '\uFFFFx'];
    await bulkPut(srv, p, keys.map((key) => ({ key, value: 'v' })));
    const check = async (prefix) => {
      const want = keys.filter((k) => k.startsWith(prefix)).sort(byteCompare);
      const { names } = await listAll(srv, p, { prefix });
      assert.deepEqual(names, want, `prefix ${JSON.stringify(prefix)}`);
      const paged = await listAll(srv, p, { prefix, limit: 10 });
      assert.deepEqual(paged.names, want, `prefix ${JSON.stringify(prefix)} limit 10`);
    };
    for (const prefix of ['user', 'user/', 'user/1', 'users', 'user ', 'user+', 'ключ', 'ключ/', '😀', '\uFFFF', 'nothing', 'u', '']) {
      await check(prefix);
    }
  });

  it("'+' in the query string is a space, %2B is a plus", async () => {
    const p = srv.ns(await srv.createNamespace());
    await bulkPut(srv, p, ['a b', 'a+b', 'a-b'].map((key) => ({ key, value: 'v' })));
    const names = async (q) => expectOk(await srv.api('GET', `${p}/keys?${q}`)).map((i) => i.name);
    assert.deepEqual(await names('prefix=a+'), ['a b']);
    assert.deepEqual(await names('prefix=a%2B'), ['a+b']);
    assert.deepEqual(await names('prefix=a%20b'), ['a b']);
    assert.deepEqual(await names('prefix=a'), ['a b', 'a+b', 'a-b']);
  });

  it('prefix longer than 512 bytes is 414/10030; 512 is accepted', async () => {
    const p = srv.ns(await srv.createNamespace());
    const r = await srv.api('GET', `${p}/keys?prefix=${'p'.repeat(513)}`);
    expectError(r, 414, 10030, 'UTF-8 encoded length of 513 exceeds key length limit of 512.');
    const ok = await srv.api('GET', `${p}/keys?prefix=${'p'.repeat(512)}`);
    assert.deepEqual(expectOk(ok), []);
  });

  it('limit: 10 and 1000 accepted; 9, 1001, 0 and non-integers are 400/10028', async () => {
    const p = srv.ns(await srv.createNamespace());
    await bulkPut(srv, p, Array.from({ length: 15 }, (_, i) => ({ key: `k${String(i).padStart(2, '0')}`, value: 'v' })));
    const r10 = await srv.api('GET', `${p}/keys?limit=10`);
    assert.equal(expectOk(r10).length, 10);
    assert.notEqual(r10.body.result_info.cursor, '');
    const r1000 = await srv.api('GET', `${p}/keys?limit=1000`);
    assert.equal(expectOk(r1000).length, 15);
    assert.equal(r1000.body.result_info.cursor, '');
    const msg = "list keys: 'limit must be an integer between 10 and 1000'";
    for (const bad of ['9', '1001', '0', '-10', 'abc', '10.5', '1e3', '+10', '%2010', '10%20', '', '00000000010']) {
      expectError(await srv.api('GET', `${p}/keys?limit=${bad}`), 400, 10028, msg);
    }
    assert.equal(expectOk(await srv.api('GET', `${p}/keys?limit=010`)).length, 10);
  });

  // issue 9: "limit=10&limit=abc" was read as limit=10
  it('a repeated limit, prefix or cursor is 400/10029, whatever the values', async () => {
    const p = srv.ns(await srv.createNamespace());
    for (const [q, name] of [['limit=10&limit=abc', 'limit'], ['limit=10&limit=10', 'limit'],
      ['prefix=a&prefix=b', 'prefix'], ['cursor=&limit=20&cursor=', 'cursor'], ['limit=10&lim%69t=20', 'limit']]) {
      expectError(await srv.api('GET', `${p}/keys?${q}`), 400, 10029,
        `list keys: 'query parameter ${name} given more than once'`);
    }
    // other (unknown) parameters are not read, repeated or not
    expectOk(await srv.api('GET', `${p}/keys?x=1&x=2&limit=10`));
  });

  it('malformed cursor is 400/10041', async () => {
    const p = srv.ns(await srv.createNamespace());
    for (const bad of ['!!!not-base64!!!', '%%%', '@@@@']) {
      expectError(await srv.api('GET', `${p}/keys?cursor=${encodeURIComponent(bad)}`), 400, 10041,
        "list keys: 'invalid cursor'");
    }
  });

  it('result_info: count, cursor and cursors.after on each page; last page cursor ""', async () => {
    const p = srv.ns(await srv.createNamespace());
    const keys = Array.from({ length: 25 }, (_, i) => `key-${String(i).padStart(3, '0')}`);
    await bulkPut(srv, p, keys.map((key) => ({ key, value: key })));
    const { names, pages } = await listAll(srv, p, { limit: 10 });
    assert.deepEqual(names, keys);
    assert.deepEqual(pages.map((x) => x.count), [10, 10, 5]);
    assert.ok(pages[0].cursor.length > 0 && pages[1].cursor.length > 0);
    assert.notEqual(pages[0].cursor, pages[1].cursor);
    assert.match(pages[0].cursor, /^[A-Za-z0-9_-]+$/, 'cursor is base64url');
    assert.equal(pages[2].cursor, '');
    // default limit (1000): one page
    const r = await srv.api('GET', `${p}/keys`);
    assert.equal(expectOk(r).length, 25);
    assert.deepEqual(r.body.result_info, { count: 25, cursor: '', cursors: { after: '' } });
  });

  it('items carry expiration (absolute, also when set by TTL) and metadata', async () => {
    const p = srv.ns(await srv.createNamespace());
    const exp = nowS() + 3600;
    const t0 = nowS();
    await bulkPut(srv, p, [
      { key: 'a-plain', value: 'v' },
      { key: 'b-exp', value: 'v', expiration: exp },
      { key: 'c-ttl', value: 'v', expiration_ttl: 600 },
      { key: 'd-meta', value: 'v', metadata: { m: [1, 'two'], n: null } },
      { key: 'e-both', value: 'v', expiration: exp, metadata: 'str' },
    ]);
    const t1 = nowS();
    const res = expectOk(await srv.api('GET', `${p}/keys`));
    assert.equal(res.length, 5);
    assert.deepEqual(res[0], { name: 'a-plain' });
    assert.deepEqual(res[1], { name: 'b-exp', expiration: exp });
    assert.equal(res[2].name, 'c-ttl');
    assert.ok(res[2].expiration >= t0 + 600 && res[2].expiration <= t1 + 600, `ttl expiration ${res[2].expiration}`);
    assert.deepEqual(Object.keys(res[2]).sort(), ['expiration', 'name']);
    assert.deepEqual(res[3], { name: 'd-meta', metadata: { m: [1, 'two'], n: null } });
    assert.deepEqual(res[4], { name: 'e-both', expiration: exp, metadata: 'str' });

    // a single-key PUT with metadata is listed the same way
    const mp = '--b\r\nContent-Disposition: form-data; name="value"\r\n\r\nv\r\n'
      + '--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{"single":true}\r\n--b--\r\n';
    expectOk(await srv.api('PUT', `${p}/values/f-single?expiration=${exp}`,
      { body: mp, headers: { 'content-type': 'multipart/form-data; boundary=b' } }));
    const res2 = expectOk(await srv.api('GET', `${p}/keys?prefix=f-`));
    assert.deepEqual(res2, [{ name: 'f-single', expiration: exp, metadata: { single: true } }]);
  });

  it('deleted keys disappear from the list', async () => {
    const p = srv.ns(await srv.createNamespace());
    await bulkPut(srv, p, ['a', 'b', 'c'].map((key) => ({ key, value: 'v' })));
    expectOk(await srv.api('DELETE', `${p}/values/b`));
    assert.deepEqual(expectOk(await srv.api('GET', `${p}/keys`)).map((i) => i.name), ['a', 'c']);
  });

  it('keys written between pages after the cursor are seen, none twice', async () => {
    const p = srv.ns(await srv.createNamespace());
    const keys = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    await bulkPut(srv, p, keys.map((key) => ({ key, value: 'v' })));
    const r1 = await srv.api('GET', `${p}/keys?limit=10`);
    const page1 = expectOk(r1).map((i) => i.name);
    assert.deepEqual(page1, keys.slice(0, 10));
    // write one key before the cursor point and one after it
    expectOk(await srv.api('PUT', `${p}/values/k05a`, { body: 'v' }));
    expectOk(await srv.api('PUT', `${p}/values/k25a`, { body: 'v' }));
    const rest = [];
    let cursor = r1.body.result_info.cursor;
    for (let i = 0; i < 20 && cursor; i++) {
      const r = await srv.api('GET', `${p}/keys?limit=10&cursor=${encodeURIComponent(cursor)}`);
      rest.push(...expectOk(r).map((x) => x.name));
      cursor = r.body.result_info.cursor;
    }
    assert.equal(cursor, '');
    const all = [...page1, ...rest];
    assert.equal(new Set(all).size, all.length, 'a key was returned twice');
    assert.ok(rest.includes('k25a'), 'key written after the cursor point must be seen');
    assert.ok(!rest.includes('k05a'), 'key before the cursor point must not be returned later');
    assert.deepEqual(rest, [...keys.slice(10, 26), 'k25a', ...keys.slice(26)]);
  });

  it('a cursor stays valid when its key is deleted between pages', async () => {
    const p = srv.ns(await srv.createNamespace());
    const keys = Array.from({ length: 25 }, (_, i) => `c${String(i).padStart(2, '0')}`);
    await bulkPut(srv, p, keys.map((key) => ({ key, value: 'v' })));
    const r1 = await srv.api('GET', `${p}/keys?limit=10`);
    assert.deepEqual(expectOk(r1).map((i) => i.name), keys.slice(0, 10));
    // delete the last key of page 1 (the one the cursor points at) and the first of page 2
    expectOk(await srv.api('POST', `${p}/bulk/delete`, { json: ['c09', 'c10'] }));
    const r2 = await srv.api('GET', `${p}/keys?limit=10&cursor=${encodeURIComponent(r1.body.result_info.cursor)}`);
    assert.deepEqual(expectOk(r2).map((i) => i.name), keys.slice(11, 21));
  });

  it('continuation with the same prefix stays inside the prefix', async () => {
    const p = srv.ns(await srv.createNamespace());
    const items = [];
    for (let i = 0; i < 25; i++) items.push({ key: `in/${String(i).padStart(2, '0')}`, value: 'v' });
    for (let i = 0; i < 25; i++) items.push({ key: `out/${String(i).padStart(2, '0')}`, value: 'v' });
    items.push({ key: 'im', value: 'v' }, { key: 'io', value: 'v' });
    await bulkPut(srv, p, items);
    const { names, pages } = await listAll(srv, p, { prefix: 'in/', limit: 10 });
    assert.deepEqual(names, items.slice(0, 25).map((i) => i.key));
    assert.deepEqual(pages.map((x) => x.count), [10, 10, 5]);
  });

  describe('pagination over 2,600 keys', () => {
    let p;
    let expected;
    before(async () => {
      p = srv.ns(await srv.createNamespace());
      const keys = [];
      for (let i = 0; i < 2600; i++) {
        // a mix of ASCII, 2-, 3- and 4-byte characters so byte order != UTF-16 order
        const variant = ['', 'é', '\uFFFF', '😀', '~', ' '][i % 6];
        keys.push(`${String(i % 997).padStart(3, '0')}${variant}${i}`);
      }
      assert.equal(new Set(keys).size, keys.length);
      await bulkPut(srv, p, keys.map((key) => ({ key, value: `v${key}` })));
      expected = [...keys].sort(byteCompare);
    });

    for (const limit of [1000, 10, 333]) {
      it(`limit ${limit}: every key exactly once, in byte order`, { timeout: 60000 }, async () => {
        const { names, pages } = await listAll(srv, p, { limit });
        assert.equal(names.length, 2600);
        assert.equal(new Set(names).size, 2600, 'duplicates');
        assertByteOrdered(names);
        assert.deepEqual(names, expected);
        // no expired keys here, so every page but the last is full; when the keys end exactly
        // on a page boundary the server may need one more (empty) page to say "done".
        const full = Math.floor(2600 / limit);
        for (const pg of pages.slice(0, full)) assert.equal(pg.count, limit);
        const tail = pages.slice(full).map((x) => x.count);
        const rest = 2600 - full * limit;
        assert.ok(JSON.stringify(tail) === JSON.stringify(rest ? [rest] : [0]) || (rest === 0 && tail.length === 0),
          `pages after the full ones: ${JSON.stringify(tail)}`);
      });
    }

    it('default limit is 1000', async () => {
      const r = await srv.api('GET', `${p}/keys`);
      assert.equal(expectOk(r).length, 1000);
      assert.notEqual(r.body.result_info.cursor, '');
      assert.equal(r.body.result_info.count, 1000);
    });
  });
});

describe('list keys: expired keys are never listed', { timeout: 60000 }, () => {
  let srv;
  before(async () => { srv = await startServer({ testClock: true }); });
  after(async () => { await srv?.stop(); });

  it('expired keys vanish from every page; short or empty pages still carry a cursor', async () => {
    const p = srv.ns(await srv.createNamespace());
    const items = [];
    const live = [];
    for (let i = 0; i < 1500; i++) {
      const key = `e${String(i).padStart(5, '0')}`;
      // runs of expiring keys between live ones, including a long run of 1,000
      const expiring = (i >= 100 && i < 1100) || i % 3 === 0;
      if (expiring) items.push({ key, value: 'x', expiration_ttl: 60 });
      else { items.push({ key, value: 'y' }); live.push(key); }
    }
    await bulkPut(srv, p, items);
    // all visible before the clock moves
    assert.equal((await listAll(srv, p, { limit: 1000 })).names.length, 1500);
    await srv.advanceClock(61);
    for (const limit of [10, 1000]) {
      const { names, items: listed } = await listAll(srv, p, { limit });
      assert.deepEqual(names, live, `limit ${limit}`);
      for (const it of listed) assert.ok(!('expiration' in it), `${it.name} should not expire`);
    }
    const { names } = await listAll(srv, p, { prefix: 'e001', limit: 10 });
    assert.deepEqual(names, live.filter((k) => k.startsWith('e001')));
  });
});
