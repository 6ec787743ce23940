// A fetch wrapper that remembers the last requests/responses, so a failing assertion can
// show exactly what the client sent and what edgekv answered (used for the minimal
// reproductions in failure reports).
const MAX_BODY = 1500;

function clip(text) {
  return text.length > MAX_BODY ? `${text.slice(0, MAX_BODY)}… (${text.length} chars)` : text;
}

function printable(buf) {
  const text = Buffer.from(buf).toString('utf8');
  // Show binary bodies as a length only.
  return /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text) ? `<${buf.byteLength} binary bytes>` : clip(text);
}

export function makeTracer(limit = 6) {
  const entries = [];
  async function tracingFetch(url, init = {}) {
    const req = new Request(url, init);
    if (!req.url.startsWith('http')) return fetch(req); // the SDK probes `data:` URLs; not API traffic
    let reqBody = '';
    if (req.body) reqBody = printable(await req.clone().arrayBuffer());
    const entry = {
      method: req.method,
      url: req.url,
      contentType: req.headers.get('content-type') || '',
      reqBody,
      status: 0,
      resType: '',
      resBody: '',
    };
    entries.push(entry);
    while (entries.length > limit) entries.shift();
    const res = await fetch(req);
    entry.status = res.status;
    entry.resType = res.headers.get('content-type') || '';
    try {
      entry.resBody = printable(await res.clone().arrayBuffer());
    } catch {
      entry.resBody = '<unreadable>';
    }
    return res;
  }
  function format() {
    return entries.map((e, i) => [
      `#${i + 1} ${e.method} ${e.url}`,
      e.contentType ? `   content-type: ${e.contentType}` : null,
      e.reqBody ? `   body: ${e.reqBody}` : null,
      `   -> ${e.status} ${e.resType}`,
      e.resBody ? `   ${e.resBody}` : null,
    ].filter(Boolean).join('\n')).join('\n');
  }
  // Run fn; on failure append the recent exchange to the error message.
  async function traced(fn) {
    entries.length = 0;
    try {
      return await fn();
    } catch (err) {
      const tail = `\n--- last requests (most recent last) ---\n${format()}`;
      try { err.message += tail; } catch { /* frozen */ }
      throw err;
    }
  }
  return { fetch: tracingFetch, entries, format, traced };
}
