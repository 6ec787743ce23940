// Run the pinned wrangler (tests/clients/node_modules) against an edgekv API, isolated: its
// HOME, config and temp dir are `work`, no metrics, no banner, and its "newer version" check
// goes to a closed loopback port, so nothing leaves the machine.
// Resolves { code, signal, stdout (string), stdoutBuf, stderr, args }.
//   runWrangler(args, { work, base, token, accountId, env, timeoutMs })
// env overrides/extends the environment (a value of undefined removes the variable).
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const WRANGLER = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.bin', 'wrangler');

export function runWrangler(args, { work, base, token, accountId, env = {}, timeoutMs = 90_000 }) {
  const childEnv = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HOME: work,
    XDG_CONFIG_HOME: join(work, '.config'),
    TMPDIR: work,
    CI: 'true',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    CLOUDFLARE_API_BASE_URL: base,
    CLOUDFLARE_API_TOKEN: token,
    CLOUDFLARE_ACCOUNT_ID: accountId,
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_HIDE_BANNER: 'true',
    npm_config_registry: 'http://127.0.0.1:9/',
    ...env,
  };
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  return new Promise((resolve, reject) => {
    const child = spawn(WRANGLER, args, { cwd: work, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, signal, stdoutBuf, stdout: stdoutBuf.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), args });
    });
  });
}
