// A private etcd (Debian's etcd-server) on loopback for the coordinator tests, and a small
// client of its HTTP/JSON gateway for assertions.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

// A free loopback port for a listener given on a command line, below Linux's ephemeral range
// (32768-60999): a port the kernel hands out can be taken meanwhile by any outgoing
// connection of this busy machine (the processes' links, the test's own HTTP clients).
const taken = new Set();
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (taken.has(port)) continue;
    const ok = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) { taken.add(port); return port; }
  }
  throw new Error('no free port in 20000-31999');
}

export function etcdInstalled() {
  try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

export async function startEtcd() {
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const proc = spawn('etcd', [
    '--name', 'it', '--data-dir', join(dir, 'data'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `it=http://127.0.0.1:${peer}`, '--log-level', 'warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20000); });
  const url = `http://127.0.0.1:${client}`;
  const until = Date.now() + 20000;
  for (;;) {
    try {
      const r = await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64('x') }) });
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > until) { proc.kill('SIGKILL'); throw new Error(`etcd did not start:\n${stderr}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url, addr: `127.0.0.1:${client}`, proc,
    async get(key) {
      const r = await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(key) }) });
      const j = await r.json();
      const kv = j.kvs && j.kvs[0];
      return kv ? { value: Buffer.from(kv.value || '', 'base64').toString(), createRevision: Number(kv.create_revision), lease: kv.lease } : null;
    },
    async stop() {
      proc.kill('SIGKILL');
      await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const b64 = (s) => Buffer.from(s).toString('base64');
