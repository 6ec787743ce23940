// A private etcd (Debian's etcd-server) on loopback for the coordinator tests, and a small
// client of its HTTP/JSON gateway for assertions.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

// A free loopback port (closed again: a small race with other processes, fine for tests).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
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
