// Several accounts on one node and the cluster operator credential (docs/API.md "Operator
// API"): POST/GET /_edgekv/accounts, account isolation between admins, and checksum/promote
// refusing every account token.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Cluster, waitStreaming } from './lib/cluster.mjs';
import { startServer, expectOk, expectError, runCli } from './lib/harness.mjs';

describe('accounts and the operator credential', { timeout: 60000 }, () => {
  let srv;
  let op; // the operator token (standalone node: from its data dir's operator.secret)
  let b; // { id, name, token } of the second account
  let nsA;
  let nsB;
  before(async () => {
    srv = await startServer();
    op = srv.operatorToken;
    assert.match(op, /^[0-9a-f]{64}$/, 'a standalone node makes its operator.secret on first start');
    nsA = await srv.createNamespace('acct-a');
    expectOk(await srv.api('PUT', `${srv.ns(nsA)}/values/k`, { body: 'a-value' }));
  });
  after(async () => { await srv?.stop(); });

  const bearer = (t) => ({ auth: false, headers: { authorization: `Bearer ${t}` } });
  const raw = async (method, path, token, json) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    if (json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(srv.origin + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch { body = text; }
    return { status: res.status, body, text, method, path, headers: res.headers };
  };

  it('the operator creates an account with a first admin token, shown once', async () => {
    const r = expectOk(await raw('POST', '/_edgekv/accounts', op, { name: 'tenant-b' }));
    assert.match(r.id, /^[0-9a-f]{32}$/);
    assert.equal(r.name, 'tenant-b');
    assert.match(r.created_on, /^\d{4}-\d\d-\d\dT/);
    assert.equal(typeof r.admin_token.value, 'string');
    b = { id: r.id, name: r.name, token: r.admin_token.value };
    const list = expectOk(await raw('GET', '/_edgekv/accounts', op));
    assert.deepEqual(list.map((a) => a.id).sort(), [srv.accountId, b.id].sort());
    assert.ok(list.every((a) => !('admin_token' in a)), 'the list never shows tokens');
    // B's admin works in B
    nsB = expectOk(await srv.api('POST', `/accounts/${b.id}/storage/kv/namespaces`, { ...bearer(b.token), json: { title: 'acct-b' } })).id;
    expectOk(await srv.api('PUT', `/accounts/${b.id}/storage/kv/namespaces/${nsB}/values/k`, { ...bearer(b.token), body: 'b-value' }));
  });

  it('a bad create body is a 400', async () => {
    expectError(await raw('POST', '/_edgekv/accounts', op, { nope: 1 }), 400, 10029);
    expectError(await raw('POST', '/_edgekv/accounts', op, { name: '' }), 400, 10029);
  });

  const routes = (acct, ns) => {
    const a = `/accounts/${acct}`;
    const p = `${a}/storage/kv/namespaces/${ns}`;
    return [
      ['GET', `${p}/values/k`],
      ['PUT', `${p}/values/x`, { body: 'evil' }],
      ['GET', `${a}/storage/kv/namespaces`],
      ['POST', `${a}/storage/kv/namespaces`, { json: { title: 'evil' } }],
      ['GET', `${p}/keys`],
      ['PUT', `${p}/bulk`, { json: [{ key: 'x', value: 'evil' }] }],
      ['GET', `${a}/tokens`],
    ];
  };

  it("each account's admin is refused on every route of the other account", async () => {
    for (const [who, token, acct, ns] of [['B', b.token, srv.accountId, nsA], ['A', srv.token, b.id, nsB]]) {
      for (const [method, path, o = {}] of routes(acct, ns)) {
        const r = await srv.api(method, path, { ...bearer(token), ...o });
        assert.equal(r.status, 403, `${who}'s admin on ${method} ${path}: ${r.text}`);
        assert.equal(r.body.errors[0].code, 10000, r.text);
      }
    }
    // nothing leaked across
    assert.equal((await srv.fetch('GET', `${srv.ns(nsA)}/values/k`).then((r) => r.text())), 'a-value');
    assert.equal((await srv.fetch('GET', `${srv.ns(nsA)}/values/x`)).status, 404);
  });

  it('account admins are refused as operator: checksum, promote, accounts', async () => {
    for (const token of [b.token, srv.token, undefined, 'x'.repeat(64)]) {
      for (const [method, path, json] of [
        ['GET', '/_edgekv/replication/checksum'],
        ['POST', '/_edgekv/replication/promote'],
        ['GET', '/_edgekv/accounts'],
        ['POST', '/_edgekv/accounts', { name: 'evil' }],
      ]) {
        const r = await raw(method, path, token, json);
        assert.equal(r.status, 403, `${method} ${path} with ${token ? 'an account token' : 'no token'}: ${r.text}`);
        assert.equal(r.body.success, false);
        assert.equal(r.body.errors[0].code, 10000, r.text);
        assert.equal(r.body.errors[0].message, 'Authentication error', r.text);
      }
    }
    assert.match(srv.stderr, /operator credential refused/, 'refusals are logged');
    assert.equal(expectOk(await raw('GET', '/_edgekv/accounts', op)).length, 2, 'no account was created');
  });

  it('the operator token works on checksum and reaches the role logic on promote', async () => {
    const cs = expectOk(await raw('GET', '/_edgekv/replication/checksum', op));
    assert.equal(typeof cs.checksum, 'string');
    assert.ok(cs.keys >= 2, `checksum counts every account's keys: ${JSON.stringify(cs)}`);
    const pr = await raw('POST', '/_edgekv/replication/promote', op);
    assert.equal(pr.status, 400, pr.text);
    assert.match(pr.body.errors[0].message, /only a replica can be promoted/, pr.text);
    // the operator token is not an account token
    const r = await srv.api('GET', `/accounts/${srv.accountId}/storage/kv/namespaces`, bearer(op));
    assert.equal(r.status, 403, r.text);
  });

  it('edgekv secret operator-token prints the same token from the data dir', async () => {
    const x = await runCli(['secret', 'operator-token', '--data-dir', srv.dataDir]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(x.stdout.trim(), op);
  });
});

describe('edgekv account create|list (offline)', { timeout: 60000 }, () => {
  it('creates an account whose admin token works once the server starts', async () => {
    let srv = await startServer({ keepData: true });
    const dir = srv.dataDir;
    await srv.stop();
    const x = await runCli(['account', 'create', '--name', 'offline-c', '--data-dir', dir]);
    assert.equal(x.code, 0, x.stderr);
    const id = /^account:\s+([0-9a-f]{32})$/m.exec(x.stdout)?.[1];
    const token = /^token:\s+(\S+)$/m.exec(x.stdout)?.[1];
    assert.ok(id && token, x.stdout);
    const l = await runCli(['account', 'list', '--data-dir', dir]);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, new RegExp(`^${id}\\s+offline-c$`, 'm'));
    srv = await startServer({ dataDir: dir, accountId: srv.accountId, token: srv.token });
    try {
      const r = await srv.api('GET', `/accounts/${id}/storage/kv/namespaces`, { auth: false, headers: { authorization: `Bearer ${token}` } });
      expectOk(r);
      const other = await srv.api('GET', `/accounts/${srv.accountId}/storage/kv/namespaces`, { auth: false, headers: { authorization: `Bearer ${token}` } });
      assert.equal(other.status, 403, other.text);
    } finally {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('operator account API in a cluster', { timeout: 90000 }, () => {
  const c = new Cluster('accounts');
  after(async () => { await c.cleanup(); });

  it('an edge relays account creation to the primary; a replica refuses it', async () => {
    const p = await c.startPrimary({ nodeId: 'p1' });
    const r = await c.startReplica(p, { nodeId: 'r1', replListen: '127.0.0.1:0' });
    await waitStreaming(c, r);
    const e = await c.startEdge(p, [r], { nodeId: 'e1' });
    assert.equal(e.operatorToken, p.operatorToken, 'one operator token per cluster secret');
    const post = (node, token) => fetch(`${node.origin}/_edgekv/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'via-edge' }),
    }).then(async (res) => ({ status: res.status, body: await res.json(), headers: res.headers }));
    const refused = await post(e, p.token);
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    const created = expectOk(await post(e, e.operatorToken));
    const ok = await c.waitFor(async () => (await e.api('GET', `/accounts/${created.id}/storage/kv/namespaces`, {
      auth: false, headers: { authorization: `Bearer ${created.admin_token.value}` } })).status === 200, 10000,
    'the new admin token works through the edge');
    assert.ok(ok);
    const onReplica = await post(r, r.operatorToken);
    assert.equal(onReplica.status, 403, JSON.stringify(onReplica.body));
  });
});
