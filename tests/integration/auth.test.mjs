// Authentication, permissions, account isolation, user/account routes, routing errors
// (docs/API.md "Authentication", "Routing errors", "Accounts, memberships, tokens").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, expectOk, expectError, hex32, newToken } from './lib/harness.mjs';

describe('auth', { timeout: 60000 }, () => {
  let srv;
  let acct;
  let nsId;
  let nsList;
  let p;
  before(async () => {
    srv = await startServer();
    acct = srv.accountId;
    nsList = `/accounts/${acct}/storage/kv/namespaces`;
    nsId = await srv.createNamespace('auth-ns');
    p = srv.ns(nsId);
    expectOk(await srv.api('PUT', `${p}/values/readable`, { body: 'public-ish' }));
  });
  after(async () => { await srv?.stop(); });

  // call with explicit headers and no root token
  const as = (headers) => ({ auth: false, headers });
  const bearer = (t) => as({ authorization: `Bearer ${t}` });
  const createToken = async (name, permissions) => {
    const r = await srv.api('POST', `/accounts/${acct}/tokens`, { json: { name, permissions } });
    const t = expectOk(r);
    assert.match(t.id, /^[0-9a-f]{32}$/);
    assert.equal(typeof t.value, 'string');
    assert.ok(t.value.length >= 20, 'token secret too short');
    assert.equal(t.name, name);
    assert.equal(t.status, 'active');
    assert.deepEqual([...t.permissions].sort(), [...permissions].sort());
    assert.equal(typeof t.created_on, 'string');
    return t;
  };

  describe('headers', () => {
    it('no auth headers: 400/9106', async () => {
      for (const [m, path] of [['GET', nsList], ['GET', `${p}/values/readable`], ['PUT', `${p}/values/x`], ['GET', '/accounts'],
        ['GET', '/memberships']]) {
        expectError(await srv.api(m, path, { auth: false, body: m === 'PUT' ? 'v' : undefined }), 400, 9106,
          'Missing X-Auth-Key, X-Auth-Email or Authorization headers');
      }
    });

    it('malformed Authorization: 400/6003 with error_chain 6111', async () => {
      const malformed = ['Basic x', 'Basic dXNlcjpwYXNz', 'Bearer a b', `Bearer ${srv.token} extra`,
        'Bearer', 'Token abc', 'bearerabc'];
      for (const h of malformed) {
        const r = await srv.api('GET', nsList, as({ authorization: h }));
        const e = expectError(r, 400, 6003, 'Invalid request headers');
        assert.ok(Array.isArray(e.error_chain), `error_chain for ${JSON.stringify(h)}: ${JSON.stringify(r.body)}`);
        assert.equal(e.error_chain.length, 1);
        assert.equal(e.error_chain[0].code, 6111);
        assert.equal(e.error_chain[0].message, 'Invalid format for Authorization header');
      }
    });

    it('unknown token: 403/10000', async () => {
      for (const path of [nsList, `${p}/values/readable`, `${p}/keys`]) {
        expectError(await srv.api('GET', path, bearer(newToken())), 403, 10000, 'Authentication error');
      }
      expectError(await srv.api('PUT', `${p}/values/x`, { ...bearer(newToken()), body: 'v' }), 403, 10000,
        'Authentication error');
    });

    it('X-Auth-Key + X-Auth-Email with a valid token works', async () => {
      const r = await srv.api('GET', nsList, as({ 'x-auth-key': srv.token, 'x-auth-email': 'someone@example.com' }));
      const res = expectOk(r);
      assert.ok(res.some((n) => n.id === nsId));
      const put = await srv.api('PUT', `${p}/values/via-legacy`,
        { ...as({ 'x-auth-key': srv.token, 'x-auth-email': 'x' }), body: 'legacy' });
      expectOk(put);
      const g = await srv.fetch('GET', `${p}/values/via-legacy`);
      assert.equal(await g.text(), 'legacy');
    });

    it('X-Auth-Key + X-Auth-Email with an unknown token: 403/10000', async () => {
      expectError(await srv.api('GET', nsList, as({ 'x-auth-key': newToken(), 'x-auth-email': 'a@b.c' })),
        403, 10000, 'Authentication error');
    });

    it('X-Auth-Key without X-Auth-Email: 400/6003 with error_chain 6103', async () => {
      const r = await srv.api('GET', nsList, as({ 'x-auth-key': srv.token }));
      const e = expectError(r, 400, 6003, 'Invalid request headers');
      assert.ok(Array.isArray(e.error_chain), JSON.stringify(r.body));
      assert.equal(e.error_chain[0].code, 6103);
      assert.equal(e.error_chain[0].message, 'Invalid format for X-Auth-Key header');
    });

    it('malformed X-Auth-Key (with spaces): 400/6003 with error_chain 6103', async () => {
      const r = await srv.api('GET', nsList, as({ 'x-auth-key': 'has space', 'x-auth-email': 'a@b.c' }));
      const e = expectError(r, 400, 6003, 'Invalid request headers');
      assert.equal(e.error_chain?.[0]?.code, 6103, JSON.stringify(r.body));
    });
  });

  describe('tokens and permissions', () => {
    it('read-only token: reads work, KV writes are 405/10000', async () => {
      const ro = await createToken('reader', ['kv:read']);
      const h = bearer(ro.value);
      expectOk(await srv.api('GET', nsList, h));
      expectOk(await srv.api('GET', p, h));
      const g = await srv.fetch('GET', `${p}/values/readable`, { auth: false, headers: h.headers });
      assert.equal(g.status, 200);
      assert.equal(await g.text(), 'public-ish');
      expectOk(await srv.api('GET', `${p}/metadata/readable`, h));
      expectOk(await srv.api('GET', `${p}/keys`, h));

      expectError(await srv.api('PUT', `${p}/values/nope`, { ...h, body: 'v' }), 405, 10000,
        'PUT method not allowed for the api_token authentication scheme');
      expectError(await srv.api('DELETE', `${p}/values/readable`, h), 405, 10000,
        'DELETE method not allowed for the api_token authentication scheme');
      expectError(await srv.api('PUT', `${p}/bulk`, { ...h, json: [{ key: 'a', value: 'b' }] }), 405, 10000,
        'PUT method not allowed for the api_token authentication scheme');
      expectError(await srv.api('POST', `${p}/bulk/delete`, { ...h, json: ['readable'] }), 405, 10000,
        'POST method not allowed for the api_token authentication scheme');
      expectError(await srv.api('DELETE', `${p}/bulk`, { ...h, json: ['readable'] }), 405, 10000,
        'DELETE method not allowed for the api_token authentication scheme');
      expectError(await srv.api('POST', nsList, { ...h, json: { title: 'by-reader' } }), 405, 10000,
        'POST method not allowed for the api_token authentication scheme');
      expectError(await srv.api('PUT', p, { ...h, json: { title: 'renamed-by-reader' } }), 405, 10000,
        'PUT method not allowed for the api_token authentication scheme');
      expectError(await srv.api('DELETE', p, h), 405, 10000,
        'DELETE method not allowed for the api_token authentication scheme');
      // nothing changed
      expectError(await srv.api('GET', `${p}/values/nope`), 404, 10009);
      const still = await srv.fetch('GET', `${p}/values/readable`);
      assert.equal(await still.text(), 'public-ish');
      assert.equal(expectOk(await srv.api('GET', p)).title, 'auth-ns');
    });

    it('read-only token via X-Auth-Key is read-only too', async () => {
      const ro = await createToken('reader-legacy', ['kv:read']);
      const h = as({ 'x-auth-key': ro.value, 'x-auth-email': 'r@example.com' });
      expectOk(await srv.api('GET', `${p}/keys`, h));
      expectError(await srv.api('PUT', `${p}/values/nope2`, { ...h, body: 'v' }), 405, 10000,
        'PUT method not allowed for the api_token authentication scheme');
    });

    it('kv:read + kv:write token can write; it is not admin', async () => {
      const rw = await createToken('writer', ['kv:read', 'kv:write']);
      const h = bearer(rw.value);
      expectOk(await srv.api('PUT', `${p}/values/by-writer`, { ...h, body: 'w' }));
      const g = await srv.fetch('GET', `${p}/values/by-writer`, { auth: false, headers: h.headers });
      assert.equal(await g.text(), 'w');
      expectOk(await srv.api('DELETE', `${p}/values/by-writer`, h));
      // admin routes need admin
      expectError(await srv.api('GET', `/accounts/${acct}/tokens`, h), 403, 10000, 'Authentication error');
      expectError(await srv.api('POST', `/accounts/${acct}/tokens`, { ...h, json: { name: 'x', permissions: ['kv:read'] } }),
        403, 10000, 'Authentication error');
      expectError(await srv.api('DELETE', `/accounts/${acct}/tokens/${rw.id}`, h), 403, 10000, 'Authentication error');
    });

    // docs/API.md: kv:write implies read (Cloudflare: read endpoints accept "Workers KV Storage
    // Read" or "Write"), as dispatch.c authorize_or_reply does
    it('a kv:write-only token can read too (write implies read); it is not admin', async () => {
      const wo = await createToken('write-only', ['kv:write']);
      const h = bearer(wo.value);
      expectOk(await srv.api('PUT', `${p}/values/by-write-only`, { ...h, body: 'wo' }));
      const g = await srv.fetch('GET', `${p}/values/by-write-only`, { auth: false, headers: h.headers });
      assert.equal(g.status, 200);
      assert.equal(await g.text(), 'wo');
      assert.ok(expectOk(await srv.api('GET', `${p}/keys`, h)).some((k) => k.name === 'by-write-only'));
      assert.equal(expectOk(await srv.api('GET', `${p}/metadata/by-write-only`, h)), null);
      expectOk(await srv.api('POST', `${p}/bulk/get`, { ...h, json: { keys: ['by-write-only'] } }));
      expectError(await srv.api('GET', `/accounts/${acct}/tokens`, h), 403, 10000, 'Authentication error');
    });

    it('admin routes with a read-only token: 403/10000', async () => {
      const ro = await createToken('reader-admin-check', ['kv:read']);
      const h = bearer(ro.value);
      expectError(await srv.api('GET', `/accounts/${acct}/tokens`, h), 403, 10000, 'Authentication error');
      expectError(await srv.api('POST', `/accounts/${acct}/tokens`, { ...h, json: { name: 'esc', permissions: ['admin'] } }),
        403, 10000, 'Authentication error');
      expectError(await srv.api('DELETE', `/accounts/${acct}/tokens/${ro.id}`, h), 403, 10000, 'Authentication error');
      // the token still works (the revoke above was refused)
      expectOk(await srv.api('GET', `${p}/keys`, h));
    });

    it('token list shows tokens without secrets; verify routes', async () => {
      const t = await createToken('listed', ['kv:read']);
      const list = expectOk(await srv.api('GET', `/accounts/${acct}/tokens`));
      const mine = list.find((x) => x.id === t.id);
      assert.ok(mine, 'created token not listed');
      assert.equal(mine.name, 'listed');
      assert.equal(mine.status, 'active');
      assert.deepEqual(mine.permissions, ['kv:read']);
      assert.equal(mine.created_on, t.created_on);
      assert.ok(!('value' in mine), 'secret must not be listed');
      for (const x of list) assert.ok(!('value' in x));

      const v = expectOk(await srv.api('GET', '/user/tokens/verify', bearer(t.value)));
      assert.deepEqual(v, { id: t.id, status: 'active' });
      const v2 = expectOk(await srv.api('GET', `/accounts/${acct}/tokens/verify`));
      assert.equal(v2.status, 'active');
      assert.match(v2.id, /^[0-9a-f]{32}$/);
      expectError(await srv.api('GET', '/user/tokens/verify', bearer(newToken())), 401, 1000, 'Invalid API Token');
    });

    it('revoked token stops working at once: 403/10000', async () => {
      const t = await createToken('short-lived', ['kv:read', 'kv:write']);
      const h = bearer(t.value);
      expectOk(await srv.api('GET', `${p}/keys`, h));
      const r = await srv.api('DELETE', `/accounts/${acct}/tokens/${t.id}`);
      assert.deepEqual(expectOk(r), { id: t.id });
      expectError(await srv.api('GET', `${p}/keys`, h), 403, 10000, 'Authentication error');
      expectError(await srv.api('PUT', `${p}/values/x`, { ...h, body: 'v' }), 403, 10000, 'Authentication error');
      expectError(await srv.api('GET', '/user/tokens/verify', h), 401, 1000, 'Invalid API Token');
      const list = expectOk(await srv.api('GET', `/accounts/${acct}/tokens`));
      assert.ok(!list.some((x) => x.id === t.id && x.status === 'active'), 'revoked token still listed as active');
    });

    it('a token created with admin permission can use admin routes', async () => {
      const a = await createToken('second-admin', ['admin']);
      const h = bearer(a.value);
      expectOk(await srv.api('GET', `/accounts/${acct}/tokens`, h));
      expectOk(await srv.api('PUT', `${p}/values/by-admin`, { ...h, body: 'a' }));
    });
  });

  describe('account isolation', () => {
    it('the root token cannot use another account id: 403/10000', async () => {
      const other = hex32();
      const op = `/accounts/${other}/storage/kv/namespaces`;
      expectError(await srv.api('GET', op), 403, 10000, 'Authentication error');
      expectError(await srv.api('POST', op, { json: { title: 'evil' } }), 403, 10000, 'Authentication error');
      // even with a real namespace id in the other account's URL
      expectError(await srv.api('GET', `${op}/${nsId}/values/readable`), 403, 10000, 'Authentication error');
      expectError(await srv.api('PUT', `${op}/${nsId}/values/readable`, { body: 'overwrite' }), 403, 10000,
        'Authentication error');
      expectError(await srv.api('GET', `${op}/${nsId}/keys`), 403, 10000, 'Authentication error');
      expectError(await srv.api('GET', `/accounts/${other}/tokens`), 403, 10000, 'Authentication error');
      const g = await srv.fetch('GET', `${p}/values/readable`);
      assert.equal(await g.text(), 'public-ish');
    });

    it('a created token cannot touch another account\'s URLs', async () => {
      const rw = await createToken('iso', ['kv:read', 'kv:write']);
      const ro = await createToken('iso-ro', ['kv:read']);
      const other = hex32();
      const op = `/accounts/${other}/storage/kv/namespaces`;
      for (const t of [rw, ro]) {
        const h = bearer(t.value);
        expectError(await srv.api('GET', op, h), 403, 10000, 'Authentication error');
        expectError(await srv.api('GET', `${op}/${nsId}/values/readable`, h), 403, 10000, 'Authentication error');
        expectError(await srv.api('PUT', `${op}/${nsId}/values/x`, { ...h, body: 'v' }), 403, 10000, 'Authentication error');
      }
    });

    it('a namespace id is not reachable through another account even when it exists', async () => {
      // malformed account ids are not routable or not authorised, never served
      const r = await srv.api('GET', `/accounts/not-an-account/storage/kv/namespaces/${nsId}/values/readable`);
      assert.ok(r.status === 403 || r.status === 404 || r.status === 400, `status ${r.status}`);
      assert.equal(r.body.success, false);
    });
  });

  describe('account, membership and user routes', () => {
    it('GET /accounts lists the token\'s own account', async () => {
      const r = await srv.api('GET', '/accounts');
      const res = expectOk(r);
      assert.equal(res.length, 1);
      const a = res[0];
      assert.equal(a.id, acct);
      assert.equal(typeof a.name, 'string');
      assert.equal(a.type, 'standard');
      assert.deepEqual(a.settings, {});
      assert.equal(typeof a.created_on, 'string');
      assert.ok(!Number.isNaN(Date.parse(a.created_on)), `created_on ${a.created_on} is not a date`);
      const ri = r.body.result_info;
      assert.equal(typeof ri, 'object', 'page-style result_info expected');
      assert.equal(ri.page, 1);
      assert.equal(typeof ri.per_page, 'number');
      assert.equal(ri.count, 1);
      assert.equal(ri.total_count, 1);
      assert.equal(ri.total_pages, 1);
    });

    it('GET /accounts works for a read-only token', async () => {
      const ro = await createToken('acct-reader', ['kv:read']);
      const res = expectOk(await srv.api('GET', '/accounts', bearer(ro.value)));
      assert.deepEqual(res.map((a) => a.id), [acct]);
    });

    it('GET /memberships', async () => {
      const res = expectOk(await srv.api('GET', '/memberships'));
      assert.equal(res.length, 1);
      const m = res[0];
      assert.match(m.id, /^[0-9a-f]{32}$/);
      assert.equal(m.status, 'accepted');
      assert.equal(m.account.id, acct);
      assert.equal(typeof m.account.name, 'string');
      assert.deepEqual(m.roles, ['Administrator']);
      assert.deepEqual(m.permissions, {});
    });

    it('GET /user/tokens/verify with the root token', async () => {
      const v = expectOk(await srv.api('GET', '/user/tokens/verify'));
      assert.equal(v.status, 'active');
      assert.match(v.id, /^[0-9a-f]{32}$/);
      const lv = expectOk(await srv.api('GET', '/user/tokens/verify',
        as({ 'x-auth-key': srv.token, 'x-auth-email': 'e@x' })));
      assert.deepEqual(lv, v);
    });
  });

  describe('routing errors', () => {
    it('unknown path: 404/7003 (checked before auth)', async () => {
      for (const [path, auth] of [
        [`/accounts/${acct}/storage/kv/nope`, true],
        [`/accounts/${acct}/storage/kv/nope`, false],
        [`${p}/values`, true],
        [`${p}/something/else`, true],
        [`/accounts/${acct}/workers/nothing-here`, false],
      ]) {
        const r = await srv.api('GET', path, { auth });
        const esc = path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
        expectError(r, 404, 7003,
          new RegExp(`^Could not route to (/client/v4)?${esc}, perhaps your object identifier is invalid\\?$`));
      }
      const r2 = await fetch(`${srv.base}/nope`);
      assert.equal(r2.status, 404);
      const b2 = await r2.json();
      assert.equal(b2.success, false);
      assert.equal(b2.result, null);
      const r3 = await fetch(`${srv.origin}/not-the-api`);
      assert.equal(r3.status, 404);
      await r3.text();
    });

    it('wrong method on a known path: 405/7001 (checked before auth)', async () => {
      const cases = [
        ['PATCH', nsList],
        ['DELETE', nsList],
        ['POST', p],
        ['PATCH', `${p}/values/k`],
        ['POST', `${p}/values/k`],
        ['DELETE', `${p}/keys`],
        ['PUT', `${p}/metadata/k`],
        ['GET', `${p}/bulk/delete`],
        ['GET', `${p}/bulk/get`],
        ['POST', '/accounts'],
      ];
      for (const [m, path] of cases) {
        for (const auth of [true, false]) {
          const r = await srv.api(m, path, { auth });
          expectError(r, 405, 7001, `${m} not supported for requested URI.`);
        }
      }
    });
  });
});
