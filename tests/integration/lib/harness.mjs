// Integration-test harness: starts the real edgekv binary on a random loopback port with a
// fresh data dir, waits until /healthz answers, and gives the test typed helpers.
//
//   const srv = await startServer({ testClock: true });
//   const r = await srv.api('GET', `/accounts/${srv.accountId}/storage/kv/namespaces`);
//   await srv.stop();
//
// EDGEKV_BIN names the binary (ctest sets it); default build/edgekv.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { randomBytes, createHash, createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.EDGEKV_BIN || join(here, '..', '..', '..', 'build', 'edgekv');

// The cluster operator token (docs/API.md "Operator API") for a secret as a node reads it:
// hex HMAC-SHA256(secret without trailing whitespace, "edgekv-operator v1").
export function operatorToken(secret) {
  return createHmac('sha256', Buffer.from(String(secret).replace(/[\s]+$/, ''))).update('edgekv-operator v1').digest('hex');
}

export function hex32() {
  return randomBytes(16).toString('hex');
}

export function newToken() {
  // 40 chars of [A-Za-z0-9_-], like Cloudflare's tokens.
  return randomBytes(30).toString('base64url');
}

// Every server/CLI process started here; killed if the test process exits without stopping it.
const live = new Set();
process.on('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

// process.env without any EDGEKV_* setting (EDGEKV_BIN is kept), so a test controls them all.
export function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('EDGEKV_') && k !== 'EDGEKV_BIN') delete env[k];
  return { ...env, ...extra };
}

// Start a server. opts: { dataDir, accountId, token, testClock, args: [], env: {}, keepData }
// Extensions (all optional):
//   noRootToken: true  -> EDGEKV_ROOT_TOKEN (and EDGEKV_ACCOUNT_ID unless accountId is given)
//                         are not set (first-run credential printing); srv.token is null.
//   bare: true         -> no EDGEKV_* variable is set at all; pass everything with opts.args.
//   stopTimeoutMs      -> stop() escalates to SIGKILL after this long (default 15000).
//   startTimeoutMs     -> how long to wait for the "listening" line (default 15000).
export async function startServer(opts = {}) {
  const dataDir = opts.dataDir || mkdtempSync(join(tmpdir(), 'edgekv-it-'));
  const noCreds = !!(opts.noRootToken || opts.bare);
  const accountId = opts.accountId || (noCreds ? null : hex32());
  const token = opts.token || (noCreds ? null : newToken());
  let env;
  if (opts.bare) {
    env = cleanEnv(opts.env || {});
  } else if (opts.noRootToken) {
    env = cleanEnv({
      EDGEKV_DATA_DIR: dataDir,
      EDGEKV_LISTEN: '127.0.0.1:0',
      ...(accountId ? { EDGEKV_ACCOUNT_ID: accountId } : {}),
      ...(opts.testClock ? { EDGEKV_TEST_CLOCK: '1' } : {}),
      ...(opts.env || {}),
    });
  } else {
    env = {
      ...process.env,
      EDGEKV_DATA_DIR: dataDir,
      EDGEKV_LISTEN: '127.0.0.1:0',
      EDGEKV_ACCOUNT_ID: accountId,
      EDGEKV_ROOT_TOKEN: token,
      ...(opts.testClock ? { EDGEKV_TEST_CLOCK: '1' } : {}),
      ...(opts.env || {}),
    };
  }
  const proc = spawn(BIN, ['serve', ...(opts.args || [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  proc.on('error', () => { /* reported through the start-up promise below */ });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  const cleanupOnFailure = () => {
    if (!opts.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const port = await new Promise((resolve, reject) => {
    // (on failure the fresh data dir is removed below)
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`edgekv did not start:\n${stderr}`));
    }, opts.startTimeoutMs || 15000);
    proc.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${BIN}: ${e.message}`)); });
    proc.stderr.on('data', (d) => {
      stderr += d;
      const m = /msg="listening" addr=[0-9.]+:(\d+)/.exec(stderr);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`edgekv exited early (code ${code}, signal ${sig}):\n${stderr}`));
    });
  }).catch((e) => { cleanupOnFailure(); throw e; });
  const origin = `http://127.0.0.1:${port}`;
  const base = `${origin}/client/v4`;
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));

  const srv = {
    proc, port, origin, base, accountId, token, dataDir,
    // The operator token: set by the caller (cluster secret), else from the data dir's
    // operator.secret (a node without a cluster secret makes it on first start).
    opToken: opts.operatorToken || null,
    get operatorToken() {
      if (this.opToken) return this.opToken;
      const f = join(dataDir, 'operator.secret');
      return existsSync(f) ? operatorToken(readFileSync(f, 'utf8')) : null;
    },
    get running() { return proc.exitCode === null && proc.signalCode === null; },
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    exited,
    // Raw fetch against the /client/v4 base with the root token unless headers override it.
    async fetch(method, path, { body, headers = {}, auth = true } = {}) {
      const h = { ...(auth ? { authorization: `Bearer ${srv.token}` } : {}), ...headers };
      return fetch(base + path, { method, headers: h, body });
    },
    // JSON envelope call: returns { status, body, headers }.
    async api(method, path, { json, body, headers = {}, auth = true } = {}) {
      const h = { ...headers };
      let b = body;
      if (json !== undefined) { b = JSON.stringify(json); h['content-type'] = 'application/json'; }
      const res = await srv.fetch(method, path, { body: b, headers: h, auth });
      const text = await res.text();
      let parsed;
      try { parsed = JSON.parse(text); } catch { parsed = text; }
      return { status: res.status, body: parsed, headers: res.headers, text, method, path };
    },
    ns(nsId) { return `/accounts/${srv.accountId}/storage/kv/namespaces/${nsId}`; },
    async createNamespace(title = `ns-${hex32()}`) {
      const r = await srv.api('POST', `/accounts/${srv.accountId}/storage/kv/namespaces`, { json: { title } });
      if (r.status !== 200) throw new Error(`create namespace failed: ${JSON.stringify(r.body)}`);
      return r.body.result.id;
    },
    async advanceClock(seconds) {
      const r = await fetch(`${origin}/_edgekv/test/clock?advance_s=${seconds}`, { method: 'POST' });
      if (r.status !== 200) throw new Error(`clock advance failed: ${r.status}`);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), opts.stopTimeoutMs || 15000);
      const r = await exited;
      clearTimeout(t);
      if (!opts.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
      return r;
    },
    kill(signal = 'SIGKILL') { proc.kill(signal); return exited; },
  };
  try {
    await waitHealthy(origin);
  } catch (e) {
    proc.kill('SIGKILL');
    await exited;
    cleanupOnFailure();
    throw e;
  }
  return srv;
}

export async function waitHealthy(origin, timeoutMs = 10000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${origin}/healthz`);
      if (r.status === 200) return;
    } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`${origin}/healthz never answered`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the integration tests.

export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

// A process's resident memory now and at its peak, in KiB (/proc/PID/status VmRSS, VmHWM).
export function procMemKiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)[1]);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn() until it returns a truthy value; throws after timeoutMs.
export async function waitFor(fn, timeoutMs = 5000, what = 'condition', stepMs = 25) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

// p's value, or null if it does not settle within ms (the timer never keeps node alive).
export async function within(p, ms) {
  let t;
  try {
    return await Promise.race([p, new Promise((res) => { t = setTimeout(() => res(null), ms); })]);
  } finally {
    clearTimeout(t);
  }
}

// Reject if p does not settle within ms.
export function withTimeout(p, ms, what = 'operation') {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

// UTF-8 byte order, as the server lists keys.
export function byteCompare(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function describeReply(r) {
  return `${r.method || ''} ${r.path || ''} -> ${r.status} ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`;
}

// Assert a successful envelope: status 200, success true, errors [] and messages [].
export function expectOk(r) {
  assert.equal(r.status, 200, describeReply(r));
  assert.equal(typeof r.body, 'object', `JSON envelope expected: ${describeReply(r)}`);
  assert.equal(r.body.success, true, describeReply(r));
  assert.deepEqual(r.body.errors, [], describeReply(r));
  assert.deepEqual(r.body.messages, [], describeReply(r));
  assert.match(r.headers.get('content-type') || '', /^application\/json/, `content-type of ${describeReply(r)}`);
  return r.body.result;
}

// Assert an error envelope. message: exact string, RegExp, or undefined (not checked).
export function expectError(r, status, code, message) {
  const d = describeReply(r);
  assert.equal(r.status, status, `status: ${d}`);
  assert.equal(typeof r.body, 'object', `JSON envelope expected: ${d}`);
  assert.ok(r.body !== null, d);
  assert.equal(r.body.success, false, d);
  assert.equal(r.body.result, null, `result must be null: ${d}`);
  assert.ok(Array.isArray(r.body.errors) && r.body.errors.length >= 1, `errors[]: ${d}`);
  assert.ok(Array.isArray(r.body.messages), `messages[]: ${d}`);
  assert.equal(r.body.errors[0].code, code, `code: ${d}`);
  if (typeof message === 'string') assert.equal(r.body.errors[0].message, message, `message: ${d}`);
  else if (message instanceof RegExp) assert.match(r.body.errors[0].message, message, `message: ${d}`);
  assert.match(r.headers.get('content-type') || '', /^application\/json/, `content-type: ${d}`);
  return r.body.errors[0];
}

// Build a multipart/form-data body byte by byte.
// parts: [{ name, data: string|Buffer, filename?, contentType? }]
export function multipart(parts, boundary = `----edgekvTest${randomBytes(8).toString('hex')}`) {
  const chunks = [];
  for (const p of parts) {
    let h = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) h += `; filename="${p.filename}"`;
    h += '\r\n';
    if (p.contentType) h += `Content-Type: ${p.contentType}\r\n`;
    h += '\r\n';
    chunks.push(Buffer.from(h, 'utf8'), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

// Run the edgekv binary (CLI commands). EDGEKV_* variables are cleared unless given in env.
export function runCli(args, { env = {}, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`edgekv ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); live.delete(p); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(t);
      live.delete(p);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// ---- raw HTTP/1.1 over node:net ----

// Try to parse one response from buf. Returns { response, consumed } or null (need more bytes).
// closed: the peer closed, so a body without length ends at buf's end.
export function parseHttpResponse(buf, closed = false, { head = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const headText = buf.subarray(0, end).toString('latin1');
  const lines = headText.split('\r\n');
  const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i < 0) throw new Error(`bad header line: ${JSON.stringify(l)}`);
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  const status = Number(m[2]);
  let pos = end + 4;
  let body;
  if (head || (status >= 100 && status < 200) || status === 204 || status === 304) {
    body = Buffer.alloc(0);
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    for (;;) {
      const le = buf.indexOf('\r\n', pos);
      if (le < 0) return null;
      const size = parseInt(buf.subarray(pos, le).toString('latin1').split(';')[0], 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      pos = le + 2;
      if (size === 0) {
        const te = buf.indexOf('\r\n\r\n', pos - 2);
        if (te < 0) return null;
        pos = te + 4;
        break;
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < pos + n) return null;
    body = buf.subarray(pos, pos + n);
    pos += n;
  } else {
    if (!closed) return null;
    body = buf.subarray(pos);
    pos = buf.length;
  }
  let json;
  try { json = JSON.parse(body.toString('utf8')); } catch { json = undefined; }
  return {
    response: { httpVersion: m[1], status, reason: m[3] || '', headers, body: Buffer.from(body), json },
    consumed: pos,
  };
}

// A raw client connection: write exact bytes, read responses one by one, observe the close.
export class RawConn {
  static open(port, host = '127.0.0.1', timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host });
      const t = setTimeout(() => { sock.destroy(); reject(new Error('connect timeout')); }, timeoutMs);
      sock.once('connect', () => { clearTimeout(t); resolve(new RawConn(sock)); });
      sock.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.chunks = [];
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.error = null;
    this.waiters = [];
    sock.on('data', (d) => { this.chunks.push(d); this._wake(); });
    sock.on('end', () => { this.closed = true; this._wake(); });
    sock.on('close', () => { this.closed = true; this._wake(); });
    sock.on('error', (e) => { this.error = e; this.closed = true; this._wake(); });
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  _take() {
    if (this.chunks.length) {
      this.buf = Buffer.concat([this.buf, ...this.chunks]);
      this.chunks = [];
    }
    return this.buf;
  }

  _wait(deadline) {
    return new Promise((res) => {
      const t = setTimeout(res, Math.max(0, deadline - Date.now()));
      this.waiters.push(() => { clearTimeout(t); res(); });
    });
  }

  // Resolves true when the bytes were handed to the kernel, false if the socket failed.
  write(data) {
    return new Promise((res) => {
      if (this.sock.destroyed || !this.sock.writable) return res(false);
      this.sock.write(data, (err) => res(!err));
    });
  }

  async readResponse(timeoutMs = 5000, opts = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = parseHttpResponse(this._take(), this.closed && this.chunks.length === 0, opts);
      if (r) {
        this.buf = this.buf.subarray(r.consumed);
        return r.response;
      }
      if (this.closed && this.chunks.length === 0) {
        throw new Error(`connection closed before a complete response (have ${this.buf.length} bytes: ${JSON.stringify(this.buf.subarray(0, 200).toString('latin1'))})`);
      }
      if (Date.now() >= deadline) {
        throw new Error(`no complete response within ${timeoutMs} ms (have ${this.buf.length} bytes: ${JSON.stringify(this.buf.subarray(0, 200).toString('latin1'))})`);
      }
      await this._wait(deadline);
    }
  }

  // true if the peer closed within timeoutMs.
  async waitClose(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() >= deadline) return false;
      await this._wait(deadline);
    }
    return true;
  }

  // Bytes received and not yet parsed.
  pending() { return this._take(); }

  destroy() { this.sock.destroy(); }
}

// One-shot raw exchange: write data, read one response, close.
export async function rawRequest(port, data, timeoutMs = 5000) {
  const c = await RawConn.open(port);
  try {
    await c.write(data);
    return await c.readResponse(timeoutMs);
  } finally {
    c.destroy();
  }
}
