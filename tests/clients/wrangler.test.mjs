// The real `wrangler` CLI (pinned in package.json) against a real edgekv binary, run as a
// child process exactly as a user would (CLOUDFLARE_API_BASE_URL pointing at edgekv).
// Every effect is checked through edgekv's REST API, not only wrangler's exit code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, hex32 } from '../integration/lib/harness.mjs';
import { runWrangler } from './lib/wrangler.mjs';

const CMD_TIMEOUT_MS = 90_000;

let srv;
let work; // temp HOME and cwd for wrangler (no wrangler.toml anywhere)

before(async () => {
  srv = await startServer();
  work = mkdtempSync(join(tmpdir(), 'edgekv-wrangler-'));
});

after(async () => {
  if (srv) await srv.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// Run wrangler (lib/wrangler.mjs); opts.server: another harness server (default: the file's
// one); opts.env overrides/extends the environment (undefined removes a variable).
function wrangler(args, { env = {}, timeout = CMD_TIMEOUT_MS, server = srv } = {}) {
  return runWrangler(args, { work, base: server.base, token: server.token, accountId: server.accountId, env, timeoutMs: timeout });
}

function show(r) {
  return `wrangler ${r.args.join(' ')}\n  exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

async function ok(args, opts) {
  const r = await wrangler(args, opts);
  assert.equal(r.code, 0, `wrangler failed:\n${show(r)}`);
  return r;
}

const uniq = (p) => `${p}-${hex32().slice(0, 10)}`;
const now = () => Math.floor(Date.now() / 1000);
// An expiration computed by the server from a TTL, given the client clock before/after the call.
const assertAround = (v, lo, hi, what) => assert.ok(Number.isInteger(v) && v >= lo - 1 && v <= hi + 1, `${what}: ${v} not in [${lo}, ${hi}]`);
const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const nsPath = () => `/accounts/${srv.accountId}/storage/kv/namespaces`;
const enc = encodeURIComponent;

async function apiOk(method, path, opts) {
  const r = await srv.api(method, path, opts);
  assert.equal(r.status, 200, `${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.body.success, true);
  return r.body;
}

async function listAllNamespaces() {
  const all = [];
  for (let page = 1; ; page++) {
    const b = await apiOk('GET', `${nsPath()}?per_page=100&page=${page}`);
    all.push(...b.result);
    if (b.result.length < 100) return all;
  }
}

async function listAllKeys(nsId, prefix = '') {
  const all = [];
  let cursor = '';
  for (;;) {
    const q = new URLSearchParams({ limit: '1000', ...(prefix ? { prefix } : {}), ...(cursor ? { cursor } : {}) });
    const b = await apiOk('GET', `${srv.ns(nsId)}/keys?${q}`);
    all.push(...b.result);
    cursor = b.result_info.cursor;
    if (!cursor) return all;
  }
}

async function getValue(nsId, key) {
  const res = await srv.fetch('GET', `${srv.ns(nsId)}/values/${enc(key)}`);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body, expiration: res.headers.get('expiration') };
}

async function getMetadata(nsId, key) {
  return (await apiOk('GET', `${srv.ns(nsId)}/metadata/${enc(key)}`)).result;
}

function writeJson(name, data) {
  const p = join(work, name);
  writeFileSync(p, JSON.stringify(data));
  return p;
}

// With WRANGLER_LOG=debug wrangler prints "-- START CF API REQUEST: <METHOD> <URL>" for every
// REST call it makes through its fetch helpers: returns [[method, path-after-base], ...].
function apiRequests(r) {
  const out = [];
  for (const m of r.stdout.matchAll(/-- START CF API REQUEST: ([A-Z]+) (\S+)/g)) {
    out.push([m[1], m[2].startsWith(srv.base) ? m[2].slice(srv.base.length) : m[2]]);
  }
  return out;
}
const DEBUG = { env: { WRANGLER_LOG: 'debug' } };

// Output of `kv bulk get`: the JSON document followed by "\nSuccess!".
function parseLeadingJson(text) {
  const end = text.lastIndexOf('Success!');
  return JSON.parse((end >= 0 ? text.slice(0, end) : text).trim());
}

// ---------------------------------------------------------------------------------------

test('wrangler --version is the pinned one', async () => {
  const r = await ok(['--version']);
  assert.match(r.stdout, /4\.86\.0/);
});

test('kv namespace create / list / rename / delete', async () => {
  const title = uniq('wr-ns');
  const c = await ok(['kv', 'namespace', 'create', title]);
  const found = (await listAllNamespaces()).filter((n) => n.title === title);
  assert.equal(found.length, 1, `namespace "${title}" not found through the API after create:\n${show(c)}`);
  const id = found[0].id;
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.ok(c.stdout.includes(id), `create output should print the new id ${id}:\n${show(c)}`);

  // list prints a JSON array (SDK paging with per_page=1000, order=title)
  const l = await ok(['kv', 'namespace', 'list']);
  let listed;
  assert.doesNotThrow(() => { listed = JSON.parse(l.stdout); }, `list output is not JSON:\n${show(l)}`);
  assert.ok(Array.isArray(listed));
  assert.deepEqual(listed.filter((n) => n.id === id), [{ id, title, supports_url_encoding: true }]);
  const titles = listed.map((n) => n.title);
  assert.deepEqual(titles, [...titles].sort(byteOrder), 'list is ordered by title');

  // duplicate title: wrangler turns code 10014 into its friendly error
  const dup = await wrangler(['kv', 'namespace', 'create', title]);
  assert.notEqual(dup.code, 0, `duplicate create should fail:\n${show(dup)}`);
  assert.match(dup.stdout + dup.stderr, /already exists/, show(dup));
  assert.equal((await listAllNamespaces()).filter((n) => n.title === title).length, 1);

  // rename by --namespace-id
  const renamed = `${title}-renamed`;
  const r1 = await ok(['kv', 'namespace', 'rename', '--namespace-id', id, '--new-name', renamed]);
  assert.match(r1.stdout, new RegExp(`Successfully renamed namespace to "${renamed}"`), show(r1));
  assert.equal((await apiOk('GET', `${nsPath()}/${id}`)).result.title, renamed);

  // rename by old name (wrangler resolves it via GET ?per_page=100&order=title&direction=asc)
  const renamed2 = `${title}-again`;
  const r2 = await ok(['kv', 'namespace', 'rename', renamed, '--new-name', renamed2]);
  assert.match(r2.stdout, new RegExp(`Successfully renamed namespace to "${renamed2}"`), show(r2));
  assert.equal((await apiOk('GET', `${nsPath()}/${id}`)).result.title, renamed2);

  // delete by --namespace-id
  await ok(['kv', 'namespace', 'delete', '--namespace-id', id, '--skip-confirmation']);
  const gone = await srv.api('GET', `${nsPath()}/${id}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.errors[0].code, 10013);

  // delete by title
  const t2 = uniq('wr-del');
  const id2 = await srv.createNamespace(t2);
  await ok(['kv', 'namespace', 'delete', t2, '-y']);
  assert.equal((await srv.api('GET', `${nsPath()}/${id2}`)).status, 404);
});

test('kv key put / get / list / delete --remote', async () => {
  const nsId = await srv.createNamespace(uniq('wr-keys'));
  const base = ['--namespace-id', nsId, '--remote'];

  // plain put
  await ok(['kv', 'key', 'put', 'alpha', 'one', ...base]);
  let v = await getValue(nsId, 'alpha');
  assert.equal(v.status, 200);
  assert.equal(v.body.toString(), 'one');
  assert.equal(v.expiration, null);
  assert.equal(await getMetadata(nsId, 'alpha'), null);

  // put with --metadata and --ttl (multipart body + ?expiration_ttl=120)
  const t0 = now();
  await ok(['kv', 'key', 'put', 'beta', 'two', ...base, '--metadata', '{"a":1}', '--ttl', '120']);
  v = await getValue(nsId, 'beta');
  assert.equal(v.status, 200);
  assert.equal(v.body.toString(), 'two');
  const exp = Number(v.expiration);
  assert.ok(exp >= t0 + 118 && exp <= now() + 122, `expiration header ${v.expiration}, now ${t0}`);
  assert.deepEqual(await getMetadata(nsId, 'beta'), { a: 1 });

  // put with an absolute --expiration
  const abs = now() + 7200;
  await ok(['kv', 'key', 'put', 'gamma', 'three', ...base, '--expiration', String(abs)]);

  // put --path with binary content; key with characters that need encoding
  const bin = randomBytes(4096);
  bin[0] = 0; bin[1] = 0xff;
  const binPath = join(work, 'value.bin');
  writeFileSync(binPath, bin);
  const oddKey = 'dir/sub key:ü?#%';
  await ok(['kv', 'key', 'put', oddKey, ...base, '--path', binPath]);
  v = await getValue(nsId, oddKey);
  assert.equal(v.status, 200);
  assert.ok(v.body.equals(bin), 'binary value stored byte-exact');

  // --path together with --metadata: multipart with a file part for the value
  const blobPath = join(work, 'value2.bin');
  const bin2 = randomBytes(100_000);
  writeFileSync(blobPath, bin2);
  await ok(['kv', 'key', 'put', 'blob-meta', ...base, '--path', blobPath, '--metadata', '{"kind":"blob","size":100000}']);
  assert.ok((await getValue(nsId, 'blob-meta')).body.equals(bin2));
  assert.deepEqual(await getMetadata(nsId, 'blob-meta'), { kind: 'blob', size: 100000 });
  await apiOk('DELETE', `${srv.ns(nsId)}/values/blob-meta`);

  // get prints the raw value
  let g = await ok(['kv', 'key', 'get', 'alpha', ...base]);
  assert.equal(g.stdout, 'one');
  g = await ok(['kv', 'key', 'get', 'beta', ...base, '--text']);
  assert.equal(g.stdout, 'two\n');
  g = await ok(['kv', 'key', 'get', oddKey, ...base]);
  assert.ok(g.stdoutBuf.equals(bin), `binary get: ${g.stdoutBuf.length} bytes vs ${bin.length}`);

  // get of a missing key fails (wrangler reports the HTTP status)
  const miss = await wrangler(['kv', 'key', 'get', 'no-such-key', ...base]);
  assert.notEqual(miss.code, 0, show(miss));
  assert.match(miss.stdout + miss.stderr, /404/, show(miss));

  // list (JSON)
  const l = await ok(['kv', 'key', 'list', ...base]);
  const keys = JSON.parse(l.stdout);
  assert.deepEqual(keys, [
    { name: 'alpha' },
    { name: 'beta', expiration: exp, metadata: { a: 1 } },
    { name: oddKey },
    { name: 'gamma', expiration: abs },
  ].sort((a, b) => byteOrder(a.name, b.name)));
  const lp = await ok(['kv', 'key', 'list', ...base, '--prefix', 'dir/']);
  assert.deepEqual(JSON.parse(lp.stdout), [{ name: oddKey }]);

  // delete
  await ok(['kv', 'key', 'delete', 'alpha', ...base]);
  assert.equal((await getValue(nsId, 'alpha')).status, 404);
  await ok(['kv', 'key', 'delete', oddKey, ...base]);
  assert.equal((await getValue(nsId, oddKey)).status, 404);
  assert.deepEqual((await listAllKeys(nsId)).map((k) => k.name), ['beta', 'gamma']);
});

test('kv key list --remote follows the cursor over 2,600 keys', async () => {
  const nsId = await srv.createNamespace(uniq('wr-many'));
  const names = Array.from({ length: 2600 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
  for (let i = 0; i < names.length; i += 1000) {
    await apiOk('PUT', `${srv.ns(nsId)}/bulk`, { json: names.slice(i, i + 1000).map((key) => ({ key, value: 'x' })) });
  }
  await apiOk('PUT', `${srv.ns(nsId)}/bulk`, { json: [{ key: 'other', value: 'y' }] });

  const l = await ok(['kv', 'key', 'list', '--namespace-id', nsId, '--remote', '--prefix', 'many/']);
  const listed = JSON.parse(l.stdout).map((k) => k.name);
  assert.equal(listed.length, names.length);
  assert.deepEqual(listed, names);

  const all = JSON.parse((await ok(['kv', 'key', 'list', '--namespace-id', nsId, '--remote'])).stdout);
  assert.equal(all.length, 2601);
  assert.equal(all[2600].name, 'other');
});

test('kv bulk put / get / delete --remote with JSON files', async () => {
  const nsId = await srv.createNamespace(uniq('wr-bulk'));
  const base = ['--namespace-id', nsId, '--remote'];
  const bin = randomBytes(200);
  const t0 = now();

  // 1,500 items: wrangler sends two PUT /bulk batches (1,000 + 500)
  const items = Array.from({ length: 1490 }, (_, i) => ({ key: `bulk/${String(i).padStart(4, '0')}`, value: `value-${i}` }));
  items.push(
    { key: 'b64', value: bin.toString('base64'), base64: true },
    { key: 'b64text', value: Buffer.from('hello from base64').toString('base64'), base64: true },
    { key: 'meta', value: 'with metadata', metadata: { owner: 'bob', n: 7, tags: ['a', 'b'] } },
    { key: 'ttl', value: 'expiring', expiration_ttl: 300 },
    { key: 'json', value: '{"x":[1,2,3]}' },
    { key: 'sp ace/ü', value: 'unicode key' },
    { key: 'e0', value: 'e0' }, { key: 'e1', value: 'e1' }, { key: 'e2', value: 'e2' }, { key: 'e3', value: 'e3' },
  );
  assert.equal(items.length, 1500);
  const put = await ok(['kv', 'bulk', 'put', writeJson('put.json', items), ...base], DEBUG);
  assert.match(put.stdout, /Success!/, show(put));
  const bulkPath = `/accounts/${srv.accountId}/storage/kv/namespaces/${nsId}/bulk`;
  assert.deepEqual(apiRequests(put), [['PUT', bulkPath], ['PUT', bulkPath]], show(put));

  const keys = await listAllKeys(nsId);
  assert.equal(keys.length, 1500);
  assert.deepEqual(keys.map((k) => k.name), items.map((i) => i.key).sort(byteOrder));
  assert.equal((await getValue(nsId, 'bulk/0042')).body.toString(), 'value-42');
  assert.ok((await getValue(nsId, 'b64')).body.equals(bin), 'base64 item decoded to the original bytes');
  assert.equal((await getValue(nsId, 'b64text')).body.toString(), 'hello from base64');
  assert.deepEqual(await getMetadata(nsId, 'meta'), { owner: 'bob', n: 7, tags: ['a', 'b'] });
  const ttl = await getValue(nsId, 'ttl');
  assertAround(Number(ttl.expiration), t0 + 300, now() + 300, 'ttl expiration');
  assert.equal(keys.find((k) => k.name === 'ttl').expiration, Number(ttl.expiration));
  assert.equal((await getValue(nsId, 'sp ace/ü')).body.toString(), 'unicode key');

  // bulk get (POST /bulk/get with {keys}); input may mix strings and {name} objects
  const g = await ok(['kv', 'bulk', 'get', writeJson('get.json', ['bulk/0001', { name: 'b64text' }, 'json', 'sp ace/ü', 'missing']), ...base]);
  assert.deepEqual(parseLeadingJson(g.stdout), {
    'bulk/0001': 'value-1',
    b64text: 'hello from base64',
    json: '{"x":[1,2,3]}',
    'sp ace/ü': 'unicode key',
    missing: null,
  });

  // bulk delete (deprecated DELETE /bulk), 1,200 keys -> two batches; --force skips the prompt
  const del = items.slice(0, 1196).map((i) => i.key);
  del.push('e0', { name: 'e1' }, 'e2', 'not-there');
  const d = await ok(['kv', 'bulk', 'delete', writeJson('del.json', del), ...base, '--force'], DEBUG);
  assert.doesNotMatch(d.stdout, /Not deleting/, show(d));
  assert.deepEqual(apiRequests(d), [['DELETE', bulkPath], ['DELETE', bulkPath]], show(d));
  const left = (await listAllKeys(nsId)).map((k) => k.name);
  const expectLeft = items.slice(1196).map((i) => i.key).filter((k) => !['e0', 'e1', 'e2'].includes(k)).sort(byteOrder);
  assert.deepEqual(left, expectLeft);
  assert.equal((await getValue(nsId, 'bulk/0000')).status, 404);
  assert.equal((await getValue(nsId, 'e3')).body.toString(), 'e3');
});

test('wrangler surfaces server errors (unknown namespace) as a failure', async () => {
  const missing = hex32();
  const r = await wrangler(['kv', 'key', 'list', '--namespace-id', missing, '--remote']);
  assert.notEqual(r.code, 0, show(r));
  assert.match(r.stdout + r.stderr, /namespace not found/, show(r));
  assert.match(r.stdout + r.stderr, /10013/, show(r));
});

test('auth: legacy CLOUDFLARE_API_KEY + CLOUDFLARE_EMAIL, and a read-only token', async () => {
  const nsId = await srv.createNamespace(uniq('wr-auth'));
  const base = ['--namespace-id', nsId, '--remote'];
  const legacy = { env: { CLOUDFLARE_API_TOKEN: undefined, CLOUDFLARE_API_KEY: srv.token, CLOUDFLARE_EMAIL: 'ops@example.com' } };
  await ok(['kv', 'key', 'put', 'k', 'legacy-auth', ...base], legacy);
  assert.equal((await getValue(nsId, 'k')).body.toString(), 'legacy-auth');
  assert.equal((await ok(['kv', 'key', 'get', 'k', ...base], legacy)).stdout, 'legacy-auth');

  const tok = await apiOk('POST', `/accounts/${srv.accountId}/tokens`, { json: { name: 'wr-ro', permissions: ['kv:read'] } });
  const ro = { env: { CLOUDFLARE_API_TOKEN: tok.result.value } };
  assert.equal((await ok(['kv', 'key', 'get', 'k', ...base], ro)).stdout, 'legacy-auth');
  assert.deepEqual(JSON.parse((await ok(['kv', 'key', 'list', ...base], ro)).stdout), [{ name: 'k' }]);
  const denied = await wrangler(['kv', 'key', 'put', 'k', 'overwrite', ...base], ro);
  assert.notEqual(denied.code, 0, show(denied));
  assert.match(denied.stdout + denied.stderr, /PUT method not allowed for the api_token authentication scheme/, show(denied));
  assert.equal((await getValue(nsId, 'k')).body.toString(), 'legacy-auth');
});

test('expiry: a key put with --ttl 60 disappears for wrangler once the TTL passes (test clock)', async () => {
  const clocked = await startServer({ testClock: true });
  try {
    const opts = { server: clocked };
    const nsRes = await clocked.api('POST', `/accounts/${clocked.accountId}/storage/kv/namespaces`, { json: { title: 'expiry' } });
    const nsId = nsRes.body.result.id;
    const base = ['--namespace-id', nsId, '--remote'];
    await ok(['kv', 'key', 'put', 'short', 'bye', ...base, '--ttl', '60'], opts);
    await ok(['kv', 'key', 'put', 'stay', 'here', ...base], opts);
    assert.equal((await ok(['kv', 'key', 'get', 'short', ...base], opts)).stdout, 'bye');

    await clocked.advanceClock(61);
    const g = await wrangler(['kv', 'key', 'get', 'short', ...base], opts);
    assert.notEqual(g.code, 0, show(g));
    assert.match(g.stdout + g.stderr, /404/, show(g));
    assert.deepEqual(JSON.parse((await ok(['kv', 'key', 'list', ...base], opts)).stdout), [{ name: 'stay' }]);
  } finally {
    await clocked.stop();
  }
});
