#!/usr/bin/env node
// bench/lib/do_upstream.js - the Durable Object "script" for bench/do.sh: a trivial HTTP
// server on 127.0.0.1 (node's http module, one process, no dependencies).
//
//   node do_upstream.js PORT
//
//   POST /__edgekv/alarm   an alarm delivery: the arrival time (wall clock, ms with a
//                          fractional part, taken when the request's headers arrived) and the
//                          body's objectId / scheduledTime / retryCount are recorded; 200 "ok"
//   GET  /__bench/alarms   the records so far, one per line:
//                          "arrival_ms objectId scheduledTime retryCount status"
//                          (status: the one this server answered, always 200)
//   GET  /__bench/count    how many records (cheap: polled while alarms arrive)
//   GET  /__bench/conns    TCP connections accepted since the start or the last reset
//   POST /__bench/reset    forget the records
//   anything else          200 "ok" at once (the fetch target of the call scenario)
'use strict';
const http = require('http');
const { performance } = require('perf_hooks');

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: do_upstream.js PORT');
  process.exit(2);
}

// wall clock with sub-ms resolution (timeOrigin is the wall clock at process start; over a
// benchmark's minutes the monotonic clock does not drift from it measurably)
const nowMs = () => performance.timeOrigin + performance.now();

let records = [];
let conns = 0;

const OK = { 'Content-Type': 'text/plain', 'Content-Length': '2' };

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__edgekv/alarm') {
    const arrival = nowMs();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        const b = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        records.push(`${arrival.toFixed(3)} ${b.objectId} ${b.scheduledTime} ${b.retryCount} 200`);
      } catch (e) {
        records.push(`${arrival.toFixed(3)} unparsable 0 0 200`);
      }
      res.writeHead(200, OK);
      res.end('ok');
    });
    return;
  }
  if (req.url === '/__bench/alarms') {
    const text = records.join('\n') + (records.length ? '\n' : '');
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  if (req.url === '/__bench/count') {
    const text = String(records.length);
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  if (req.url === '/__bench/conns') {
    const text = String(conns);
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  if (req.url === '/__bench/reset') {
    records = [];
    conns = 0;
    res.writeHead(200, OK);
    res.end('ok');
    return;
  }
  // the trivial target: answer at once, whatever the method; a request body is drained
  req.resume();
  res.writeHead(200, OK);
  res.end('ok');
});

// edgekv pools keep-alive connections to the script (up to 64): never cut them during a run
server.keepAliveTimeout = 120000;
server.headersTimeout = 130000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.on('connection', () => conns++);
server.listen(port, '127.0.0.1', () => console.log(`do_upstream listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
