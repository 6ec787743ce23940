// KV namespaces: create / list / get / rename / delete, and their errors (docs/API.md
// "KV namespaces").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, hex32, expectOk, expectError, byteCompare } from './lib/harness.mjs';

const T = { timeout: 30000 };

function checkNamespace(obj, id, title) {
  assert.deepEqual(obj, { id, title, supports_url_encoding: true });
}

describe('namespaces: create, get, rename, delete', T, () => {
  let srv;
  let nsPath;
  before(async () => {
    srv = await startServer();
    nsPath = `/accounts/${srv.accountId}/storage/kv/namespaces`;
  });
  after(async () => { await srv?.stop(); });

  it('POST creates a namespace and returns the namespace object', async () => {
    const title = `created-${hex32()}`;
    const r = await srv.api('POST', nsPath, { json: { title } });
    const ns = expectOk(r);
    assert.match(ns.id, /^[0-9a-f]{32}$/);
    checkNamespace(ns, ns.id, title);
    // the id is a random (version 4, RFC 4122 variant) UUID printed without dashes
    assert.ok(ns.id[12] === '4' && '89ab'.includes(ns.id[16]), `namespace id ${ns.id} is not a v4 UUID`);

    const g = expectOk(await srv.api('GET', `${nsPath}/${ns.id}`));
    checkNamespace(g, ns.id, title);
  });

  it('namespace ids are distinct', async () => {
    const a = await srv.createNamespace();
    const b = await srv.createNamespace();
    assert.notEqual(a, b);
  });

  it('titles may be up to 512 bytes (unicode counted in bytes)', async () => {
    const t512 = `${'x'.repeat(500)}${hex32().slice(0, 12)}`;
    assert.equal(Buffer.byteLength(t512), 512);
    const ns = expectOk(await srv.api('POST', nsPath, { json: { title: t512 } }));
    assert.equal(ns.title, t512);

    const t513 = `${'y'.repeat(501)}${hex32().slice(0, 12)}`;
    expectError(await srv.api('POST', nsPath, { json: { title: t513 } }), 400, 10019,
      "create namespace: 'title too long'");

    // 257 x 2-byte characters = 514 bytes although only 257 characters
    const tUni = 'é'.repeat(257);
    expectError(await srv.api('POST', nsPath, { json: { title: tUni } }), 400, 10019,
      "create namespace: 'title too long'");
    const tUniOk = `${'é'.repeat(250)}${hex32().slice(0, 12)}`; // 512 bytes
    assert.equal(Buffer.byteLength(tUniOk), 512);
    const u = expectOk(await srv.api('POST', nsPath, { json: { title: tUniOk } }));
    assert.equal(u.title, tUniOk);
    checkNamespace(expectOk(await srv.api('GET', `${nsPath}/${u.id}`)), u.id, tUniOk);
  });

  it('missing, empty or non-string title and non-JSON body are 400/10019', async () => {
    const msg = "create namespace: 'missing title'";
    expectError(await srv.api('POST', nsPath, { json: {} }), 400, 10019, msg);
    expectError(await srv.api('POST', nsPath, { json: { title: '' } }), 400, 10019, msg);
    expectError(await srv.api('POST', nsPath, { json: { name: 'x' } }), 400, 10019, msg);
    expectError(await srv.api('POST', nsPath, { body: 'not json', headers: { 'content-type': 'application/json' } }),
      400, 10019);
    expectError(await srv.api('POST', nsPath, {}), 400, 10019);
    expectError(await srv.api('POST', nsPath, { json: { title: 42 } }), 400, 10019);
  });

  it('duplicate title on create is 400/10014', async () => {
    const title = `dup-${hex32()}`;
    expectOk(await srv.api('POST', nsPath, { json: { title } }));
    expectError(await srv.api('POST', nsPath, { json: { title } }), 400, 10014,
      'a namespace with this account ID and title already exists');
  });

  it('PUT renames and returns the renamed object; the old title becomes free', async () => {
    const oldTitle = `old-${hex32()}`;
    const newTitle = `new-${hex32()}`;
    const id = await srv.createNamespace(oldTitle);
    const r = expectOk(await srv.api('PUT', `${nsPath}/${id}`, { json: { title: newTitle } }));
    checkNamespace(r, id, newTitle);
    checkNamespace(expectOk(await srv.api('GET', `${nsPath}/${id}`)), id, newTitle);
    // new title now taken, old one free
    expectError(await srv.api('POST', nsPath, { json: { title: newTitle } }), 400, 10014);
    const again = expectOk(await srv.api('POST', nsPath, { json: { title: oldTitle } }));
    assert.notEqual(again.id, id);
  });

  it('rename to a title another namespace holds is 400/10014 and changes nothing', async () => {
    const t1 = `r1-${hex32()}`;
    const t2 = `r2-${hex32()}`;
    const id1 = await srv.createNamespace(t1);
    await srv.createNamespace(t2);
    expectError(await srv.api('PUT', `${nsPath}/${id1}`, { json: { title: t2 } }), 400, 10014,
      'a namespace with this account ID and title already exists');
    checkNamespace(expectOk(await srv.api('GET', `${nsPath}/${id1}`)), id1, t1);
  });

  it('rename with a missing title is 400/10019', async () => {
    const id = await srv.createNamespace();
    expectError(await srv.api('PUT', `${nsPath}/${id}`, { json: {} }), 400, 10019);
    expectError(await srv.api('PUT', `${nsPath}/${id}`, { json: { title: '' } }), 400, 10019);
  });

  it('DELETE removes the namespace and all its keys; the title becomes free', async () => {
    const title = `del-${hex32()}`;
    const id = await srv.createNamespace(title);
    const put = await srv.api('PUT', `${srv.ns(id)}/values/k1`, { body: 'v1' });
    expectOk(put);
    const d = await srv.api('DELETE', `${nsPath}/${id}`);
    assert.deepEqual(expectOk(d), {});
    expectError(await srv.api('GET', `${nsPath}/${id}`), 404, 10013, "get namespace: 'namespace not found'");
    expectError(await srv.api('GET', `${srv.ns(id)}/values/k1`), 404, 10013, "get: 'namespace not found'");
    expectError(await srv.api('DELETE', `${nsPath}/${id}`), 404, 10013, "delete namespace: 'namespace not found'");
    // the list no longer shows it
    const list = expectOk(await srv.api('GET', `${nsPath}?per_page=1000`));
    assert.ok(!list.some((n) => n.id === id), 'deleted namespace still listed');
    // same title can be created again, and it starts empty
    const id2 = await srv.createNamespace(title);
    assert.notEqual(id2, id);
    expectError(await srv.api('GET', `${srv.ns(id2)}/values/k1`), 404, 10009, "get: 'key not found'");
    const keys = expectOk(await srv.api('GET', `${srv.ns(id2)}/keys`));
    assert.deepEqual(keys, []);
  });

  it('titles with quotes, backslashes and unicode round-trip', async () => {
    const title = `q"uo\\te/ключ 🔑 ${hex32().slice(0, 6)}`;
    const ns = expectOk(await srv.api('POST', nsPath, { json: { title } }));
    assert.equal(ns.title, title);
    assert.equal(expectOk(await srv.api('GET', `${nsPath}/${ns.id}`)).title, title);
    const list = expectOk(await srv.api('GET', `${nsPath}?per_page=1000`));
    assert.equal(list.find((n) => n.id === ns.id)?.title, title);
  });

  it('concurrent creates with one title: exactly one wins, the rest are 400/10014', async () => {
    const title = `race-${hex32()}`;
    const rs = await Promise.all(Array.from({ length: 20 }, () => srv.api('POST', nsPath, { json: { title } })));
    const ok = rs.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, `winners: ${ok.length}`);
    for (const r of rs.filter((x) => x.status !== 200)) {
      expectError(r, 400, 10014, 'a namespace with this account ID and title already exists');
    }
    const list = expectOk(await srv.api('GET', `${nsPath}?per_page=1000`));
    assert.equal(list.filter((n) => n.title === title).length, 1);
  });

  it('concurrent renames to one title: exactly one wins', async () => {
    const title = `race-rename-${hex32()}`;
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push(await srv.createNamespace());
    const rs = await Promise.all(ids.map((id) => srv.api('PUT', `${nsPath}/${id}`, { json: { title } })));
    assert.equal(rs.filter((r) => r.status === 200).length, 1);
    for (const r of rs.filter((x) => x.status !== 200)) expectError(r, 400, 10014);
    const list = expectOk(await srv.api('GET', `${nsPath}?per_page=1000`));
    assert.equal(list.filter((n) => n.title === title).length, 1);
  });

  it('a deleted namespace is gone even right after its keys were read (no stale cache)', async () => {
    const id = await srv.createNamespace();
    expectOk(await srv.api('PUT', `${srv.ns(id)}/values/cached`, { body: 'c' }));
    const g = await srv.fetch('GET', `${srv.ns(id)}/values/cached`);
    assert.equal(await g.text(), 'c');
    expectOk(await srv.api('GET', `${srv.ns(id)}/metadata/cached`));
    expectOk(await srv.api('DELETE', `${nsPath}/${id}`));
    expectError(await srv.api('GET', `${srv.ns(id)}/values/cached`), 404, 10013, "get: 'namespace not found'");
    expectError(await srv.api('GET', `${srv.ns(id)}/metadata/cached`), 404, 10013, "metadata: 'namespace not found'");
    expectError(await srv.api('POST', `${srv.ns(id)}/bulk/get`, { json: { keys: ['cached'] } }), 404, 10013,
      "bulk get keys: 'namespace not found'");
    expectError(await srv.api('PUT', `${srv.ns(id)}/values/cached`, { body: 'again' }), 404, 10013,
      "put: 'namespace not found'");
  });

  it('keys of one namespace are not visible in another', async () => {
    const a = await srv.createNamespace();
    const b = await srv.createNamespace();
    expectOk(await srv.api('PUT', `${srv.ns(a)}/values/shared`, { body: 'in-a' }));
    expectError(await srv.api('GET', `${srv.ns(b)}/values/shared`), 404, 10009);
    assert.deepEqual(expectOk(await srv.api('GET', `${srv.ns(b)}/keys`)), []);
  });

  it('malformed namespace ids are 400/10011 on every namespace route', async () => {
    const cases = [
      ['abc', 3],
      ['0123456789abcdef0123456789abcde', 31],
      ['0123456789abcdef0123456789abcdef0', 33],
    ];
    for (const [bad, n] of cases) {
      const msg = `could not parse UUID from request's namespace_id: 'invalid UUID length: ${n}'`;
      expectError(await srv.api('GET', `${nsPath}/${bad}`), 400, 10011, msg);
      expectError(await srv.api('PUT', `${nsPath}/${bad}`, { json: { title: 'x' } }), 400, 10011, msg);
      expectError(await srv.api('DELETE', `${nsPath}/${bad}`), 400, 10011, msg);
      expectError(await srv.api('GET', `${nsPath}/${bad}/values/k`), 400, 10011, msg);
      expectError(await srv.api('PUT', `${nsPath}/${bad}/values/k`, { body: 'v' }), 400, 10011, msg);
      expectError(await srv.api('DELETE', `${nsPath}/${bad}/values/k`), 400, 10011, msg);
      expectError(await srv.api('GET', `${nsPath}/${bad}/metadata/k`), 400, 10011, msg);
      expectError(await srv.api('GET', `${nsPath}/${bad}/keys`), 400, 10011, msg);
      expectError(await srv.api('PUT', `${nsPath}/${bad}/bulk`, { json: [] }), 400, 10011, msg);
      expectError(await srv.api('POST', `${nsPath}/${bad}/bulk/delete`, { json: [] }), 400, 10011, msg);
      expectError(await srv.api('POST', `${nsPath}/${bad}/bulk/get`, { json: { keys: ['a'] } }), 400, 10011, msg);
    }
    // right length, not hex
    expectError(await srv.api('GET', `${nsPath}/${'z'.repeat(32)}`), 400, 10011,
      /^could not parse UUID from request's namespace_id/);
  });

  it('unknown namespace ids are 404/10013 with the operation name', async () => {
    const id = hex32();
    const p = srv.ns(id);
    const cases = [
      ['GET', p, undefined, 'get namespace'],
      ['PUT', p, { json: { title: `t-${hex32()}` } }, 'rename namespace'],
      ['DELETE', p, undefined, 'delete namespace'],
      ['GET', `${p}/values/k`, undefined, 'get'],
      ['PUT', `${p}/values/k`, { body: 'v' }, 'put'],
      ['DELETE', `${p}/values/k`, undefined, 'remove key'],
      ['GET', `${p}/metadata/k`, undefined, 'metadata'],
      ['GET', `${p}/keys`, undefined, 'list keys'],
      ['PUT', `${p}/bulk`, { json: [{ key: 'a', value: 'b' }] }, 'bulk write'],
      ['POST', `${p}/bulk/delete`, { json: ['a'] }, 'bulk delete'],
      ['DELETE', `${p}/bulk`, { json: ['a'] }, 'bulk delete'],
      ['POST', `${p}/bulk/get`, { json: { keys: ['a'] } }, 'bulk get keys'],
    ];
    for (const [method, path, opts, op] of cases) {
      expectError(await srv.api(method, path, opts || {}), 404, 10013, `${op}: 'namespace not found'`);
    }
  });
});

describe('namespaces: list, paging and ordering', T, () => {
  let srv;
  let nsPath;
  const made = []; // {id, title}
  before(async () => {
    srv = await startServer();
    nsPath = `/accounts/${srv.accountId}/storage/kv/namespaces`;
    // Titles chosen so that title order differs from id order (ids are random).
    const titles = ['delta', 'alpha', 'Echo', 'charlie', 'bravo'];
    for (const title of titles) made.push({ id: await srv.createNamespace(title), title });
  });
  after(async () => { await srv?.stop(); });

  const byId = () => [...made].sort((a, b) => byteCompare(a.id, b.id));
  const byTitle = () => [...made].sort((a, b) => byteCompare(a.title, b.title));
  const shape = (l) => l.map((n) => ({ id: n.id, title: n.title, supports_url_encoding: true }));

  it('default list: page 1, per_page 20, ordered by id ascending', async () => {
    const r = await srv.api('GET', nsPath);
    const result = expectOk(r);
    assert.deepEqual(result, shape(byId()));
    assert.deepEqual(r.body.result_info, { page: 1, per_page: 20, count: 5, total_count: 5, total_pages: 1 });
  });

  it('order=title and direction=asc|desc', async () => {
    const asc = await srv.api('GET', `${nsPath}?order=title&direction=asc`);
    assert.deepEqual(expectOk(asc), shape(byTitle()));
    const desc = await srv.api('GET', `${nsPath}?order=title&direction=desc`);
    assert.deepEqual(expectOk(desc), shape(byTitle().reverse()));
    const idDesc = await srv.api('GET', `${nsPath}?order=id&direction=desc`);
    assert.deepEqual(expectOk(idDesc), shape(byId().reverse()));
    const idAsc = await srv.api('GET', `${nsPath}?order=id`);
    assert.deepEqual(expectOk(idAsc), shape(byId()));
  });

  it('paging: per_page=2 gives 3 pages; result_info is exact', async () => {
    const all = shape(byTitle());
    const seen = [];
    for (let page = 1; page <= 3; page++) {
      const r = await srv.api('GET', `${nsPath}?order=title&per_page=2&page=${page}`);
      const res = expectOk(r);
      const count = page < 3 ? 2 : 1;
      assert.equal(res.length, count);
      assert.deepEqual(r.body.result_info, { page, per_page: 2, count, total_count: 5, total_pages: 3 });
      seen.push(...res);
    }
    assert.deepEqual(seen, all);
  });

  it('a page past the end is 200 with an empty result', async () => {
    for (const q of ['per_page=2&page=4', 'page=2', 'page=1000']) {
      const r = await srv.api('GET', `${nsPath}?${q}`);
      assert.deepEqual(expectOk(r), [], q);
      assert.equal(r.body.result_info.count, 0, q);
      assert.equal(r.body.result_info.total_count, 5, q);
    }
  });

  it('per_page bounds: 1 and 1000 accepted', async () => {
    const r1 = await srv.api('GET', `${nsPath}?per_page=1&order=title`);
    assert.deepEqual(expectOk(r1), shape(byTitle()).slice(0, 1));
    assert.deepEqual(r1.body.result_info, { page: 1, per_page: 1, count: 1, total_count: 5, total_pages: 5 });
    const r2 = await srv.api('GET', `${nsPath}?per_page=1000&page=1&order=title&direction=asc`);
    assert.deepEqual(expectOk(r2), shape(byTitle()));
    assert.deepEqual(r2.body.result_info, { page: 1, per_page: 1000, count: 5, total_count: 5, total_pages: 1 });
  });

  it('bad page / per_page / order / direction', async () => {
    for (const v of ['0', '-1', 'abc', '1.5']) {
      expectError(await srv.api('GET', `${nsPath}?page=${v}`), 400, 10007, 'malformed page argument');
    }
    for (const v of ['0', '1001', '-5', 'x', '2.5']) {
      expectError(await srv.api('GET', `${nsPath}?per_page=${v}`), 400, 10008, 'malformed per_page argument');
    }
    for (const v of ['name', 'created']) {
      expectError(await srv.api('GET', `${nsPath}?order=${v}`), 400, 10043, 'invalid order');
    }
    for (const v of ['up', 'descending']) {
      expectError(await srv.api('GET', `${nsPath}?direction=${v}`), 400, 10044, 'invalid direction');
    }
  });

  it('renames and deletes are reflected in the list', async () => {
    const id = await srv.createNamespace('aaa-first');
    expectOk(await srv.api('PUT', `${nsPath}/${id}`, { json: { title: 'zzz-last' } }));
    let res = expectOk(await srv.api('GET', `${nsPath}?order=title&direction=asc`));
    assert.equal(res[res.length - 1].id, id);
    assert.equal(res[res.length - 1].title, 'zzz-last');
    expectOk(await srv.api('DELETE', `${nsPath}/${id}`));
    res = expectOk(await srv.api('GET', `${nsPath}?order=title`));
    assert.deepEqual(res, shape(byTitle()));
  });
});

describe('namespaces: 1,000 per account', { timeout: 120000 }, () => {
  let srv;
  let nsPath;
  before(async () => {
    // sync=none only to make 1,000 creates quick; the limit does not depend on it.
    srv = await startServer({ env: { EDGEKV_SYNC: 'none' } });
    nsPath = `/accounts/${srv.accountId}/storage/kv/namespaces`;
  });
  after(async () => { await srv?.stop(); });

  it('the 1,001st namespace is 400/10018; deleting one frees a slot', async () => {
    let next = 0;
    const ids = [];
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= 1000) return;
        const r = await srv.api('POST', nsPath, { json: { title: `bulk-${String(i).padStart(4, '0')}` } });
        ids.push(expectOk(r).id);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.equal(ids.length, 1000);
    expectError(await srv.api('POST', nsPath, { json: { title: 'one-too-many' } }), 400, 10018,
      'too many namespaces in this account');

    const r = await srv.api('GET', `${nsPath}?per_page=1000`);
    assert.equal(expectOk(r).length, 1000);
    assert.deepEqual(r.body.result_info, { page: 1, per_page: 1000, count: 1000, total_count: 1000, total_pages: 1 });
    const p2 = await srv.api('GET', `${nsPath}?per_page=1000&page=2`);
    assert.deepEqual(expectOk(p2), []);
    const p7 = await srv.api('GET', `${nsPath}?per_page=150&page=7`);
    assert.equal(expectOk(p7).length, 100);
    assert.deepEqual(p7.body.result_info, { page: 7, per_page: 150, count: 100, total_count: 1000, total_pages: 7 });

    expectOk(await srv.api('DELETE', `${nsPath}/${ids[0]}`));
    expectOk(await srv.api('POST', nsPath, { json: { title: 'fits-again' } }));
    expectError(await srv.api('POST', nsPath, { json: { title: 'one-too-many-again' } }), 400, 10018);
  });
});
