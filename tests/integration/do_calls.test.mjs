// Durable Object calls and alarms (docs/API.md "Durable Objects": Calls, Alarms): forwarding of
// .../objects/{obj}/fetch/{path} to the namespace's script URL, one call at a time per object,
// the call-wait timeout, and alarm delivery (body, headers, retries with backoff, replacement
// during a run, survival of kill -9). The script is a node:http upstream (lib/do_upstream.mjs).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, hex32, newToken, expectOk, expectError, sleep, sha256, waitFor } from './lib/harness.mjs';
import { nsPath, objPath, createNs, newId, storage } from './lib/do_api.mjs';
import { startUpstream, deadPort } from './lib/do_upstream.mjs';

const T = { timeout: 120000 };
const RETRY_BASE = 100; // --do-alarm-retry-base-ms in these tests
const WRONG_NS = 'Durable Object ID is not valid for this namespace.';
const BAD_ID = 'Invalid Durable Object ID: must be 64 hex digits';

// A raw call through .../fetch/<path>: { status, headers, text, body (Buffer) }.
async function call(srv, ns, obj, path, { method = 'GET', headers = {}, body, auth = true } = {}) {
  const res = await srv.fetch(method, `${objPath(srv, ns, obj)}/fetch/${path}`, { headers, body, auth });
  const buf = Buffer.from(await res.arrayBuffer());
  let json;
  try { json = JSON.parse(buf.toString('utf8')); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, body: buf, text: buf.toString('utf8'), json, method, path };
}
// call() in the shape expectOk/expectError take.
const asApi = (r) => ({ ...r, body: r.json ?? r.text, path: `fetch/${r.path}` });

const setAlarm = (srv, ns, obj, scheduledTime, headers) => srv.api('PUT', `${objPath(srv, ns, obj)}/alarm`, { json: { scheduledTime }, headers });
const getAlarm = async (srv, ns, obj) => expectOk(await srv.api('GET', `${objPath(srv, ns, obj)}/alarm`)).scheduledTime;

describe('durable objects: calls', T, () => {
  let srv;
  let up;
  let ns; // script: <up>/app
  let nsBare; // script: <up> (no path)
  let noScript;
  before(async () => {
    up = await startUpstream();
    srv = await startServer({ args: ['--do-alarm-retry-base-ms', String(RETRY_BASE)] });
    ns = (await createNs(srv, { script: `${up.url}/app` })).id;
    nsBare = (await createNs(srv, { script: up.url })).id;
    noScript = (await createNs(srv)).id;
  });
  after(async () => {
    await srv?.stop();
    await up?.close();
  });

  it('forwards method, path, query, headers and body; Authorization is not forwarded', async () => {
    const obj = await newId(srv, ns, 'fwd');
    const before = up.requests.length;
    const r = await call(srv, ns, obj, 'some/path.json?x=1&y=two%20words&z', {
      headers: { 'x-custom': 'custom value', 'content-type': 'text/plain' },
    });
    assert.equal(r.status, 200, r.text);
    const got = up.requests.slice(before);
    assert.equal(got.length, 1, `upstream requests: ${got.length}`);
    const q = got[0];
    assert.equal(q.method, 'GET');
    assert.equal(q.path, '/app/some/path.json');
    assert.equal(q.query, 'x=1&y=two%20words&z');
    assert.equal(q.headers['edgekv-object-id'], obj);
    assert.equal(q.headers['edgekv-namespace-id'], ns);
    assert.equal(q.headers['edgekv-object-name'], undefined, 'no name header unless the client sent one');
    assert.equal(q.headers['x-custom'], 'custom value');
    assert.equal(q.headers.authorization, undefined, 'the client\'s Authorization must not reach the upstream');
    assert.ok(!q.rawHeaders.some((h) => h.includes(srv.token)), 'the token appears in the upstream request');
    // the answer is the upstream's, not an envelope
    assert.equal(r.json.path, '/app/some/path.json');
    assert.equal(r.json.success, undefined);

    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const body = randomBytes(method === 'POST' ? 200_000 : 1000);
      const n0 = up.requests.length;
      const r2 = await call(srv, ns, obj, `m/${method}`, { method, body, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r2.status, 200, `${method}: ${r2.text.slice(0, 200)}`);
      const q2 = up.requests[n0];
      assert.equal(q2.method, method);
      assert.equal(q2.path, `/app/m/${method}`);
      assert.equal(q2.body.length, body.length, `${method} body length`);
      assert.equal(sha256(q2.body), sha256(body), `${method} body bytes`);
    }
    // a script URL without a path
    const bare = await newId(srv, nsBare, 'bare');
    const n1 = up.requests.length;
    assert.equal((await call(srv, nsBare, bare, 'p?q=1')).status, 200);
    assert.equal(up.requests[n1].path, '/p');
    assert.equal(up.requests[n1].query, 'q=1');
    assert.equal(up.requests[n1].headers['edgekv-namespace-id'], nsBare);
  });

  it('credentials sent as X-Auth-Key / X-Auth-Email are not forwarded either', async () => {
    const obj = await newId(srv, ns, 'xauth');
    const n0 = up.requests.length;
    const r = await call(srv, ns, obj, 'xauth', { auth: false, headers: { 'x-auth-key': srv.token, 'x-auth-email': 'a@b.c' } });
    assert.equal(r.status, 200, r.text);
    const q = up.requests[n0];
    assert.equal(q.headers['x-auth-key'], undefined);
    assert.ok(!q.rawHeaders.some((h) => h.includes(srv.token)), 'the token appears in the upstream request');
  });

  it('Edgekv-Object-Name: forwarded when it derives the id, else 400/10068 and no upstream call', async () => {
    const obj = await newId(srv, ns, 'alice');
    const n0 = up.requests.length;
    const r = await call(srv, ns, obj, 'named', { headers: { 'edgekv-object-name': 'alice' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(up.requests[n0].headers['edgekv-object-name'], 'alice');
    assert.equal(up.requests[n0].headers['edgekv-object-id'], obj);
    const n1 = up.requests.length;
    const bad = await call(srv, ns, obj, 'named', { headers: { 'edgekv-object-name': 'bob' } });
    // (the spec gives only the code for a name that does not derive the id, not the message)
    expectError(asApi(bad), 400, 10068);
    // a unique id has no name
    const uniq = await newId(srv, ns);
    expectError(asApi(await call(srv, ns, uniq, 'named', { headers: { 'edgekv-object-name': 'alice' } })), 400, 10068);
    assert.equal(up.requests.length, n1, 'refused calls reached the upstream');
  });

  it('upstream status, headers and body come back as they are (2xx, 4xx, 5xx)', async () => {
    const obj = await newId(srv, ns, 'status');
    const bin = randomBytes(70_000);
    up.on({ path: '/app/created' }, { status: 201, headers: { 'x-upstream': 'yes', 'content-type': 'text/plain; charset=utf-8' }, body: 'made it' });
    up.on({ path: '/app/missing' }, { status: 404, headers: { 'content-type': 'application/json', 'x-reason': 'nope' }, body: '{"error":"no such thing"}' });
    up.on({ path: '/app/broken' }, { status: 500, headers: { 'content-type': 'text/html' }, body: '<h1>boom</h1>' });
    up.on({ path: '/app/unavail' }, { status: 503, headers: { 'retry-after': '7' }, body: 'later' });
    up.on({ path: '/app/binary' }, { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: bin });
    up.on({ path: '/app/empty' }, { status: 204 });
    const c = await call(srv, ns, obj, 'created');
    assert.equal(c.status, 201);
    assert.equal(c.headers.get('x-upstream'), 'yes');
    assert.equal(c.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(c.text, 'made it');
    const m = await call(srv, ns, obj, 'missing');
    assert.equal(m.status, 404);
    assert.equal(m.headers.get('x-reason'), 'nope');
    assert.equal(m.text, '{"error":"no such thing"}');
    const b = await call(srv, ns, obj, 'broken');
    assert.equal(b.status, 500);
    assert.equal(b.text, '<h1>boom</h1>');
    assert.equal(b.headers.get('content-type'), 'text/html');
    const u = await call(srv, ns, obj, 'unavail');
    assert.equal(u.status, 503);
    assert.equal(u.headers.get('retry-after'), '7');
    assert.equal(u.text, 'later');
    const bb = await call(srv, ns, obj, 'binary');
    assert.equal(bb.status, 200);
    assert.equal(sha256(bb.body), sha256(bin));
    const e = await call(srv, ns, obj, 'empty');
    assert.equal(e.status, 204);
    assert.equal(e.body.length, 0);
  });

  it('no script: 400/10075; connection refused: 502; bad ids: 10067/10068', async () => {
    const obj = await newId(srv, noScript, 'x');
    expectError(asApi(await call(srv, noScript, obj, 'anything')), 400, 10075);
    const port = await deadPort();
    const dead = (await createNs(srv, { script: `http://127.0.0.1:${port}/x` })).id;
    const dobj = await newId(srv, dead, 'x');
    const r = await call(srv, dead, dobj, 'anything');
    assert.equal(r.status, 502, `${r.status} ${r.text}`);
    expectError(asApi(await call(srv, ns, 'abc', 'x')), 400, 10067, BAD_ID);
    expectError(asApi(await call(srv, ns, await newId(srv, nsBare, 'x'), 'x')), 400, 10068, WRONG_NS);
    expectError(asApi(await call(srv, hex32(), obj, 'x')), 404, 10066);
    // the object still works afterwards (the failed call released its turn)
    expectOk(await storage(srv, dead, dobj, 'put', { entries: { a: 1 } }));
    const r2 = await call(srv, dead, dobj, 'again');
    assert.equal(r2.status, 502);
  });

  it('calls to one object run one at a time; different objects run concurrently', async () => {
    const one = await newId(srv, ns, 'serial');
    up.on({ path: '/app/slow' }, { status: 200, body: 'slow done', delayMs: 150 });
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => call(srv, ns, one, `slow?i=${i}`, { method: i % 2 ? 'POST' : 'GET', body: i % 2 ? `b${i}` : undefined })));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    assert.equal(up.filter((q) => q.objectId === one && q.path === '/app/slow').length, 10);
    assert.equal(up.maxConcurrency(one), 1, 'two calls of one object overlapped at the upstream');

    const objs = [];
    for (let i = 0; i < 6; i++) objs.push(await newId(srv, ns, `parallel-${i}`));
    up.on({ path: '/app/hold' }, { status: 200, body: 'held', delayMs: 1500 });
    const before = up.maxConcurrencyAll;
    const rs2 = await Promise.all(objs.map((o) => call(srv, ns, o, 'hold')));
    for (const r of rs2) assert.equal(r.status, 200, r.text);
    for (const o of objs) assert.equal(up.maxConcurrency(o), 1);
    assert.ok(up.maxConcurrencyAll >= 2, `calls to 6 different objects never overlapped (max in flight ${up.maxConcurrencyAll}, before ${before})`);
  });

  describe('alarms', () => {
    it('PUT / GET / DELETE alarm', async () => {
      const obj = await newId(srv, noScript, 'alarm-crud');
      assert.equal(await getAlarm(srv, noScript, obj), null);
      const at = Date.now() + 3600e3;
      assert.deepEqual(expectOk(await setAlarm(srv, noScript, obj, at)), { scheduledTime: at });
      assert.equal(await getAlarm(srv, noScript, obj), at);
      const at2 = at + 1000;
      assert.deepEqual(expectOk(await setAlarm(srv, noScript, obj, at2)), { scheduledTime: at2 });
      assert.equal(await getAlarm(srv, noScript, obj), at2);
      assert.equal(expectOk(await srv.api('DELETE', `${objPath(srv, noScript, obj)}/alarm`)), null);
      assert.equal(await getAlarm(srv, noScript, obj), null);
      assert.equal(expectOk(await srv.api('DELETE', `${objPath(srv, noScript, obj)}/alarm`)), null);
      expectError(await setAlarm(srv, noScript, obj, at, { 'edgekv-object-name': 'not-its-name' }), 400, 10068);
      assert.equal(await getAlarm(srv, noScript, obj), null);
    });

    it('delivery: POST <script>/__edgekv/alarm with headers and body; then GET alarm is null', async () => {
      const obj = await newId(srv, ns, 'alarm-deliver');
      const at = Date.now() + 700;
      expectOk(await setAlarm(srv, ns, obj, at));
      const [d] = await up.waitRequests((q) => q.isAlarm && q.objectId === obj, 1, 15000, `alarm of ${obj}`);
      assert.equal(d.method, 'POST');
      assert.equal(d.path, '/app/__edgekv/alarm');
      assert.equal(d.headers['edgekv-object-id'], obj);
      assert.equal(d.headers['edgekv-namespace-id'], ns);
      assert.equal(d.headers['edgekv-object-name'], undefined);
      assert.match(d.headers['content-type'] || '', /^application\/json/);
      assert.deepEqual(d.json, { namespaceId: ns, objectId: obj, scheduledTime: at, retryCount: 0, isRetry: false });
      assert.ok(d.time >= at - 20, `delivered ${at - d.time} ms before its scheduled time`);
      await waitFor(async () => (await getAlarm(srv, ns, obj)) === null, 10000, 'alarm removed after a 2xx');
      await sleep(500);
      assert.equal(up.alarms(obj).length, 1, 'a 2xx alarm was delivered again');
    });

    it('a past time fires at once; the Edgekv-Object-Name of the PUT is delivered', async () => {
      const obj = await newId(srv, ns, 'alarm-named');
      const at = Date.now() - 60_000;
      expectOk(await setAlarm(srv, ns, obj, at, { 'edgekv-object-name': 'alarm-named' }));
      const [d] = await up.waitRequests((q) => q.isAlarm && q.objectId === obj, 1, 10000, 'past alarm');
      assert.equal(d.headers['edgekv-object-name'], 'alarm-named');
      assert.equal(d.json.scheduledTime, at);
      assert.equal(d.json.retryCount, 0);
      const zero = await newId(srv, ns, 'alarm-zero');
      assert.deepEqual(expectOk(await setAlarm(srv, ns, zero, 0)), { scheduledTime: 0 });
      const [z] = await up.waitRequests((q) => q.isAlarm && q.objectId === zero, 1, 10000, 'alarm at 0');
      assert.equal(z.json.scheduledTime, 0);
    });

    it('failures are retried with backoff: retryCount 0..6 (7 attempts), then the alarm is deleted', async () => {
      const obj = await newId(srv, ns, 'alarm-fail');
      up.on({ alarm: true, objectId: obj }, { status: 500, body: 'handler threw' });
      const at = Date.now();
      expectOk(await setAlarm(srv, ns, obj, at));
      const got = await up.waitRequests((q) => q.isAlarm && q.objectId === obj, 7, 40000, '7 alarm attempts');
      await waitFor(async () => (await getAlarm(srv, ns, obj)) === null, 10000, 'alarm deleted after 7 failed attempts');
      // the 8th attempt would come 6.4 s after the 7th: wait a little past the 7th's answer and
      // check, and the alarm is gone anyway
      await sleep(1000);
      const all = up.alarms(obj);
      assert.equal(all.length, 7, `attempts: ${all.map((q) => q.json?.retryCount)}`);
      assert.deepEqual(all.map((q) => q.json.retryCount), [0, 1, 2, 3, 4, 5, 6]);
      assert.deepEqual(all.map((q) => q.json.isRetry), [false, true, true, true, true, true, true]);
      for (const q of all) assert.equal(q.json.scheduledTime, at);
      // the retry n comes no earlier than base << (n - 1) after the failed attempt n - 1
      for (let n = 1; n < got.length; n++) {
        const gap = all[n].time - all[n - 1].endTime;
        assert.ok(gap >= (RETRY_BASE << (n - 1)) - 15, `retry ${n} came ${gap} ms after the failure (min ${RETRY_BASE << (n - 1)})`);
      }
    });

    it('fail twice then succeed: 3 attempts, then gone', async () => {
      const obj = await newId(srv, ns, 'alarm-fail2');
      up.on({ alarm: true, objectId: obj, times: 2 }, { status: 503, body: 'not yet' });
      expectOk(await setAlarm(srv, ns, obj, Date.now() + 200));
      await up.waitRequests((q) => q.isAlarm && q.objectId === obj && q.status === 200, 1, 20000, 'successful alarm');
      await waitFor(async () => (await getAlarm(srv, ns, obj)) === null, 10000, 'alarm removed');
      await sleep(1000);
      assert.deepEqual(up.alarms(obj).map((q) => [q.json.retryCount, q.status]), [[0, 503], [1, 503], [2, 200]]);
    });

    it('connection failures are retried without counting', async () => {
      const port = await deadPort();
      const nsd = (await createNs(srv, { script: `http://127.0.0.1:${port}` })).id;
      const obj = await newId(srv, nsd, 'alarm-conn');
      const at = Date.now() - 1000;
      expectOk(await setAlarm(srv, nsd, obj, at));
      // plenty of retry periods with base 100 ms (7 counted failures would take ~6.3 s)
      await sleep(8000);
      assert.equal(await getAlarm(srv, nsd, obj), at, 'connection failures must not use up the retries');
      expectOk(await srv.api('PUT', nsPath(srv, nsd), { json: { script: `${up.url}/moved` } }));
      const [d] = await up.waitRequests((q) => q.isAlarm && q.objectId === obj, 1, 30000, 'alarm after the script came up');
      assert.equal(d.path, '/moved/__edgekv/alarm');
      assert.equal(d.json.retryCount, 0, 'connection failures must not count');
      // workerd's AlarmInvocationInfo: isRetry == (retryCount > 0) (API-FACTS §7.5)
      assert.equal(d.json.isRetry, false, `isRetry must equal retryCount > 0: ${JSON.stringify(d.json)}`);
      await waitFor(async () => (await getAlarm(srv, nsd, obj)) === null, 10000, 'alarm removed');
    });

    it('a new alarm set during a run stays (and fires); runs are serialized with calls', async () => {
      const obj = await newId(srv, ns, 'alarm-replace');
      up.on({ alarm: true, objectId: obj, times: 1 }, { status: 200, body: 'slow ok', delayMs: 1500 });
      up.on({ path: '/app/during' }, { status: 200, body: 'during' });
      expectOk(await setAlarm(srv, ns, obj, Date.now()));
      await up.waitRequests((q) => q.isAlarm && q.objectId === obj, 1, 10000, 'first run');
      const next = Date.now() + 5000;
      expectOk(await setAlarm(srv, ns, obj, next));
      const c = await call(srv, ns, obj, 'during');
      assert.equal(c.status, 200);
      assert.equal(up.maxConcurrency(obj), 1, 'a call overlapped the alarm run of its object');
      await waitFor(async () => up.alarms(obj)[0].endTime !== null, 10000, 'first run answered');
      assert.equal(await getAlarm(srv, ns, obj), next, 'the alarm set during the run was removed with it');
      const runs = await up.waitRequests((q) => q.isAlarm && q.objectId === obj, 2, 20000, 'second run');
      assert.equal(runs[1].json.scheduledTime, next);
      assert.equal(runs[1].json.retryCount, 0);
      await waitFor(async () => (await getAlarm(srv, ns, obj)) === null, 10000, 'alarm removed after the second run');
    });

    it('deleteAll and DELETE alarm cancel a pending alarm', async () => {
      const control = await newId(srv, ns, 'alarm-control');
      const cleared = await newId(srv, ns, 'alarm-cleared');
      const deleted = await newId(srv, ns, 'alarm-deleted');
      const at = Date.now() + 1500;
      for (const o of [control, cleared, deleted]) expectOk(await setAlarm(srv, ns, o, at));
      expectOk(await storage(srv, ns, cleared, 'put', { entries: { a: 1 } }));
      expectOk(await storage(srv, ns, cleared, 'deleteAll', {}));
      expectOk(await srv.api('DELETE', `${objPath(srv, ns, deleted)}/alarm`));
      assert.equal(await getAlarm(srv, ns, cleared), null);
      assert.equal(await getAlarm(srv, ns, deleted), null);
      await up.waitRequests((q) => q.isAlarm && q.objectId === control, 1, 15000, 'control alarm');
      await sleep(1000);
      assert.equal(up.alarms(cleared).length, 0, 'deleteAll did not cancel the alarm');
      assert.equal(up.alarms(deleted).length, 0, 'DELETE alarm did not cancel the alarm');
    });
  });
});

describe('durable objects: call wait timeout', T, () => {
  let srv;
  let up;
  let ns;
  before(async () => {
    up = await startUpstream();
    srv = await startServer({ args: ['--do-call-wait-ms', '300'] });
    ns = (await createNs(srv, { script: up.url })).id;
  });
  after(async () => {
    await srv?.stop();
    await up?.close();
  });

  it('a call that waits longer than --do-call-wait-ms for its turn is 503/10076; other objects are not held', async () => {
    const a = await newId(srv, ns, 'a');
    const b = await newId(srv, ns, 'b');
    up.on({ path: '/hold' }, { status: 200, body: 'held', delayMs: 4000 });
    const first = call(srv, ns, a, 'hold');
    await up.waitRequests((q) => q.objectId === a && q.path === '/hold', 1, 10000, 'first call at the upstream');
    const second = await call(srv, ns, a, 'quick');
    expectError(asApi(second), 503, 10076);
    const other = await call(srv, ns, b, 'quick');
    assert.equal(other.status, 200, `another object must not wait: ${other.status} ${other.text}`);
    const f = await first;
    assert.equal(f.status, 200);
    assert.equal(f.text, 'held');
    assert.equal(up.filter((q) => q.objectId === a && q.path === '/quick').length, 0, 'the timed-out call reached the upstream');
    const after1 = await call(srv, ns, a, 'quick');
    assert.equal(after1.status, 200, 'the object serves calls again');
  });
});

describe('durable objects: an acknowledged alarm survives kill -9', T, () => {
  let up;
  let dataDir;
  const servers = [];
  before(async () => {
    up = await startUpstream();
    dataDir = mkdtempSync(join(tmpdir(), 'edgekv-it-do-alarm-'));
  });
  after(async () => {
    for (const s of servers) if (s.running) await s.kill('SIGKILL');
    await up?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('alarms set before SIGKILL are delivered after the restart (also those due while down)', async () => {
    const accountId = hex32();
    const token = newToken();
    let srv = await startServer({ dataDir, accountId, token, keepData: true });
    servers.push(srv);
    const ns = (await createNs(srv, { script: `${up.url}/k9` })).id;
    const soon = await newId(srv, ns, 'soon');
    const later = await newId(srv, ns, 'later');
    const atSoon = Date.now() + 1500; // due while the server is down
    const atLater = Date.now() + 6000;
    expectOk(await setAlarm(srv, ns, soon, atSoon, { 'edgekv-object-name': 'soon' }));
    expectOk(await setAlarm(srv, ns, later, atLater));
    expectOk(await storage(srv, ns, later, 'put', { entries: { kept: 'yes' } }));
    await srv.kill('SIGKILL');
    await sleep(Math.max(0, atSoon - Date.now() + 300));
    assert.equal(up.alarms().length, 0, 'nothing delivered before the restart');
    srv = await startServer({ dataDir, accountId, token, keepData: true });
    servers.push(srv);
    const [d] = await up.waitRequests((q) => q.isAlarm && q.objectId === soon, 1, 15000, 'overdue alarm after restart');
    assert.equal(d.path, '/k9/__edgekv/alarm');
    assert.deepEqual(d.json, { namespaceId: ns, objectId: soon, scheduledTime: atSoon, retryCount: 0, isRetry: false });
    assert.equal(d.headers['edgekv-object-name'], 'soon');
    assert.equal(await getAlarm(srv, ns, later), atLater);
    assert.deepEqual(expectOk(await storage(srv, ns, later, 'get', { keys: ['kept'] })), { kept: 'yes' });
    const [l] = await up.waitRequests((q) => q.isAlarm && q.objectId === later, 1, 20000, 'later alarm after restart');
    assert.equal(l.json.scheduledTime, atLater);
    assert.ok(l.time >= atLater - 20, 'delivered early');
    await waitFor(async () => (await getAlarm(srv, ns, later)) === null && (await getAlarm(srv, ns, soon)) === null, 10000, 'alarms removed');
    await srv.stop();
  });
});
