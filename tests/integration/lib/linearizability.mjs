// Linearizability checker for the Durable Object counter workload (do_owners.test.mjs), and the
// recorder that builds its histories.
//
// THE WORKLOAD. Every client repeats, on a random object: READ = storage get of key "n" (the
// answer r; absent = 0), then CAS = the transaction
//   { checks: [{key:'n', value: r}] (or [{key:'n', exists:false}] when r = 0),
//     then: [{op:'put', key:'n', value: r + 1}], else: [] }
// i.e. compare-and-set from r to r + 1. Each op is recorded with its object, its kind, its
// invocation and response times (process.hrtime, one clock for all clients) and its outcome:
//   read:  ok (with its value r) — any other outcome of a read is ignored (a read changes nothing);
//   CAS:   ok       succeeded: true  (applied)
//          conflict succeeded: false (not applied: the check failed)
//          fail     a definite failure: a 4xx, or 503 with errors[0].code 10079 (the op ran on
//                   an owner that had lost its partition and was fenced: not applied)
//          unknown  anything else (other 5xx, network error, timeout): may or may not have been
//                   applied, at any time after its invocation (a request held by a SIGSTOPped
//                   node can still be applied after the client gave up), so its response time is
//                   taken as +infinity.
// After the cluster is quiet the test reads each object's final value F.
//
// THE ARGUMENT (Wing & Gong's definition, specialised). A history is linearizable when every
// op that took effect can be given a point inside its [invocation, response] interval such that
// the ops, run one at a time in point order, give the answers the clients saw; ops that did not
// take effect (conflicts, failures, unknowns we decide were not applied) are either omitted or,
// for a conflict, placed where its check fails. Wing & Gong search all orders; this workload
// makes the search unnecessary:
//
//  1. The register only grows by one: an applied CAS from v writes v + 1, and a CAS from v can
//     only apply while the value is v. So the value's history is 0, 1, ..., F and there is
//     exactly one applied CAS from each v < F — call it W_v — and none from v >= F. W_v must be
//     the ok CAS from v if there is one (an ok CAS was applied); otherwise one of the unknown
//     CASes from v. Conflicts and definite failures are never W_v.
//     Hence (a) no two ok CASes from the same v (that would be two writers of v + 1: two owners
//     of the object at once, or a fenced write that was applied anyway), and (b) every ok CAS
//     has from < F, so #ok <= F <= #ok + #unknown.
//  2. Points: W_0 < W_1 < ... < W_{F-1}, each within its interval; a READ that returned r lies
//     after W_{r-1} (none for r = 0) and before W_r (none for r = F). A conflict from c lies
//     where the value is not c: before W_{c-1} or from W_c on.
//     Hence (c) a read of r > 0 needs a candidate W_{r-1} invoked before the read responded (else
//     the read saw a value that was never written, or not yet), and if the CAS from r is ok it
//     must have responded after the read was invoked (else the read is stale); r <= F.
//  3. (a)-(c) are pairwise conditions; the complete decision is a single greedy pass. Place
//     every op as EARLY as its constraints allow, value by value: the reads of v at
//     max(their invocation, just after W_{v-1}); then W_v at max(its invocation, just after
//     W_{v-1} and every read of v), choosing, when W_v is an unknown, the candidate invoked
//     first (unknowns respond at +infinity). If some op's earliest point is after its response,
//     there is no linearization: every constraint is a lower bound that only grows when an
//     earlier point moves later, so by induction the greedy points are the least possible ones
//     in ANY linearization (W_v is forced to one op or the earliest choice dominates), and an
//     op that cannot fit at its least point cannot fit at all. Conversely if every op fits, the
//     greedy points are a linearization. Ties in time are broken by a sub-order (points are
//     (time, k) pairs), which is allowed: equal timestamps do not order the ops in real time.
//     (This pass also catches what no pair shows, e.g. a read of 5 that responded before
//     another client's read of 3 was invoked, although each read alone fits.)
//  4. Conflicts are checked apart with a sound condition: with E_c = the greedy (least) time of
//     W_c (+infinity when c = F) and L_{c-1} = an upper bound on the time of W_{c-1} (its
//     response if ok, bounded by W_c's bound and the responses of the reads of c; -infinity
//     when c = 0), a conflict from c invoked after L_{c-1} and answered before E_c saw the
//     value c throughout and must have succeeded: a violation. In this workload every conflict
//     from c follows its client's read of c, so it lies after W_{c-1} in any linearization and
//     the condition is then exact (the least W_c serves every conflict at once).
//  Reads and CASes of different objects are independent (linearizability is local), so each
//  object is checked alone, in time about linear in its ops. linearizability_checker.test.mjs
//  compares the verdict with an exhaustive Wing & Gong search on small random histories.
//  Reading the final value F after the cluster is quiet assumes no unknown CAS is applied after
//  that read (the test reads F through every node and requires the same answer).
//
// API:
//   const h = new History();
//   const op = h.invoke({ object, client, kind: 'read' | 'cas', from, node });
//   h.complete(op, 'ok', { value })        // a read's answer, or a CAS's outcome:
//   h.complete(op, classifyTxn(reply))     // 'ok' | 'conflict' | 'fail' | 'unknown'
//   const { violations, objects } = checkHistory(h.ops, finals);   // finals: Map or object
//   violations: [{ object, rule, message, ops }]; objects: Map object -> per-object summary.
//   formatReport(result) gives a readable summary; seededRandom(seed) the workload's choices.

// ---------------------------------------------------------------------------------------------
// Recording.

export class History {
  constructor() {
    this.t0 = process.hrtime.bigint();
    this.ops = [];
  }

  // Nanoseconds since the history began (Number: exact up to ~104 days).
  now() {
    return Number(process.hrtime.bigint() - this.t0);
  }

  // A new op, invoked now. fields: { object, client, kind, from (CAS), node, ... }.
  invoke(fields) {
    const op = { id: this.ops.length, ...fields, inv: this.now(), resp: null, outcome: 'pending' };
    this.ops.push(op);
    return op;
  }

  // The op responded now. outcome: 'ok' | 'conflict' | 'fail' | 'unknown'; extra: { value,
  // detail, code, status }.
  complete(op, outcome, extra = {}) {
    op.resp = this.now();
    op.outcome = outcome;
    Object.assign(op, extra);
    return op;
  }
}

// The outcome of a storage transaction reply ({ status, body } as harness api() returns), or of
// an exception (reply = undefined): 'ok' | 'conflict' | 'fail' | 'unknown'.
export function classifyTxn(reply) {
  if (!reply) return 'unknown';
  const { status, body } = reply;
  if (status === 200 && body?.success === true) {
    if (body.result?.succeeded === true) return 'ok';
    if (body.result?.succeeded === false) return 'conflict';
    return 'unknown';
  }
  if (status >= 400 && status < 500) return 'fail';
  if (status === 503 && errorCode(reply) === 10079) return 'fail';
  return 'unknown';
}

// errors[0].code of an error envelope, or undefined.
export function errorCode(reply) {
  const e = reply?.body?.errors;
  return Array.isArray(e) && e.length ? e[0]?.code : undefined;
}

// The counter a get of ["n"] returned (absent = 0), or undefined when the reply is no success.
export function readValue(reply) {
  if (!reply || reply.status !== 200 || reply.body?.success !== true) return undefined;
  const v = reply.body.result?.n;
  return v === undefined ? 0 : v;
}

// A seeded generator of floats in [0, 1) (mulberry32), so a run's random choices repeat from
// its seed.
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Checking.

const NEG = { t: -Infinity, k: 0 };
// The least point strictly after q at time >= t.
const after = (q, t) => (t > q.t ? { t, k: 0 } : { t: q.t, k: q.k + 1 });
const later = (a, b) => (a.t > b.t || (a.t === b.t && a.k >= b.k) ? a : b);

export const fmtT = (ns) => (ns === Infinity ? '+inf' : ns === -Infinity ? '-inf' : `${(ns / 1e6).toFixed(3)}ms`);

// One op, readable.
export function describeOp(op) {
  const who = `${op.client !== undefined ? `client ${op.client}` : 'a client'}${op.node ? ` via ${op.node}` : ''}`;
  const span = `[${fmtT(op.inv)}, ${op.outcome === 'unknown' || op.outcome === 'pending' ? `+inf (gave up ${fmtT(op.resp ?? Infinity)})` : fmtT(op.resp)}]`;
  const what = op.kind === 'read' ? `READ -> ${JSON.stringify(op.value)}` : `CAS ${op.from}->${op.from + 1} ${op.outcome}`;
  return `#${op.id} ${what} by ${who} ${span}${op.detail ? ` (${op.detail})` : ''}`;
}

const isCounter = (v) => Number.isSafeInteger(v) && v >= 0;

// Check a history (ops of any number of objects; ops still pending count as unknown) against
// the final values (finals: Map or plain object, object -> F; absent key = 0). Returns
// { violations: [{ object, rule, message, ops }], objects: Map object -> { reads, ok, conflict,
// fail, unknown, F, linearizable } }.
export function checkHistory(ops, finals) {
  const finalOf = (o) => {
    const v = finals instanceof Map ? finals.get(o) : finals?.[o];
    return v === undefined || v === null ? 0 : v;
  };
  const byObject = new Map();
  // an object with a final value and no op is checked too (it must hold 0)
  for (const o of finals instanceof Map ? finals.keys() : Object.keys(finals || {})) byObject.set(o, []);
  for (const op of ops) {
    if (!byObject.has(op.object)) byObject.set(op.object, []);
    byObject.get(op.object).push(op);
  }
  const violations = [];
  const objects = new Map();
  for (const [object, list] of byObject) {
    const r = checkObject(object, list, finalOf(object));
    violations.push(...r.violations);
    objects.set(object, r.summary);
  }
  return { violations, objects };
}

// Normalise one op: response time +infinity for an unknown CAS.
function norm(op) {
  const outcome = op.outcome === 'pending' ? 'unknown' : op.outcome;
  const resp = outcome === 'unknown' || op.resp === null || op.resp === undefined ? Infinity : op.resp;
  return { op, outcome, inv: op.inv, resp };
}

function checkObject(object, list, F) {
  const violations = [];
  const short = String(object).slice(0, 12);
  const bad = (rule, message, opsInvolved = []) => violations.push({
    object, rule, message: `object ${short}: ${message}${opsInvolved.length ? `\n    ${opsInvolved.map(describeOp).join('\n    ')}` : ''}`,
    ops: opsInvolved,
  });
  const summary = { reads: 0, ok: 0, conflict: 0, fail: 0, unknown: 0, F, linearizable: false };

  if (!isCounter(F)) {
    bad('final', `the final value ${JSON.stringify(F)} is not a counter (a non-negative integer)`);
    return { violations, summary };
  }

  const reads = new Map(); // value -> [norm]
  const okFrom = new Map(); // from -> [norm]
  const unknownFrom = new Map(); // from -> [norm]
  const conflicts = [];
  const push = (m, k, v) => { if (!m.has(k)) m.set(k, []); m.get(k).push(v); };
  for (const op of list) {
    const n = norm(op);
    if (op.kind === 'read') {
      if (n.outcome !== 'ok') continue; // unanswered reads have no effect
      summary.reads++;
      if (!isCounter(op.value)) {
        bad('value', `a read returned ${JSON.stringify(op.value)}, which this workload never writes`, [op]);
        continue;
      }
      push(reads, op.value, n);
    } else if (op.kind === 'cas') {
      if (!isCounter(op.from)) throw new Error(`CAS op #${op.id} has no valid from: ${JSON.stringify(op.from)}`);
      summary[n.outcome] = (summary[n.outcome] || 0) + 1;
      if (n.outcome === 'ok') push(okFrom, op.from, n);
      else if (n.outcome === 'unknown') push(unknownFrom, op.from, n);
      else if (n.outcome === 'conflict') conflicts.push(n);
      else if (n.outcome !== 'fail') throw new Error(`op #${op.id}: unknown outcome ${op.outcome}`);
    } else {
      throw new Error(`op #${op.id}: unknown kind ${op.kind}`);
    }
  }

  // (a) one applied CAS per value
  for (const [v, l] of okFrom) {
    if (l.length > 1) {
      bad('double-write', `${l.length} acknowledged CASes from ${v}: two writers of ${v + 1} (two owners at once, or a fenced write applied)`, l.map((n) => n.op));
    }
  }
  // (b) bounds
  const nOk = summary.ok;
  if (F < nOk) bad('lost-ack', `final value ${F} < ${nOk} acknowledged increments: an acknowledged increment was lost`);
  if (F > nOk + summary.unknown) {
    bad('invented', `final value ${F} > ${nOk} acknowledged + ${summary.unknown} unknown increments: a write that was not acknowledged as possible was applied (a conflict or a definite failure took effect?)`);
  }
  for (const [v, l] of okFrom) {
    if (v >= F) bad('lost-ack', `the acknowledged CAS from ${v} wrote ${v + 1}, but the final value is ${F}`, l.map((n) => n.op));
  }
  for (let v = 0; v < F; v++) {
    if (!okFrom.has(v) && !unknownFrom.has(v)) {
      bad('never-written', `the final value ${F} needs a write of ${v + 1}, but no CAS from ${v} was acknowledged or of unknown outcome`);
    }
  }
  // (c) every read, pairwise
  for (const [r, l] of reads) {
    for (const n of l) {
      if (r > F) {
        bad('future-read', `a read returned ${r} > the final value ${F}`, [n.op]);
        continue;
      }
      if (r > 0) {
        const ok = okFrom.get(r - 1);
        const cands = ok ? ok : (unknownFrom.get(r - 1) || []);
        if (!cands.length) {
          bad('never-written', `a read returned ${r}, but no CAS from ${r - 1} was acknowledged or of unknown outcome`, [n.op]);
        } else if (cands.every((w) => w.inv > n.resp)) {
          bad('read-before-write', `a read returned ${r} before any CAS that could write it (from ${r - 1}) was invoked`, [n.op, ...cands.map((w) => w.op)]);
        }
      }
      const over = okFrom.get(r);
      if (over && over.length === 1 && over[0].resp < n.inv) {
        bad('stale-read', `stale read: returned ${r} although the CAS ${r}->${r + 1} had been acknowledged before the read was invoked`, [over[0].op, n.op]);
      }
    }
  }
  if (violations.length) return { violations, summary };

  // The greedy pass (the complete decision, point 3 of the header).
  const maxVal = Math.max(F, ...reads.keys());
  let prev = NEG; // point of W_{v-1}
  let prevWhy = null; // the op that W_{v-1} is, for messages
  const earliest = []; // least time of W_v
  for (let v = 0; v <= maxVal; v++) {
    let last = prev;
    for (const n of reads.get(v) || []) {
      const p = after(prev, n.inv);
      if (p.t > n.resp) {
        bad('order', `no linearization: a read returned ${v}, but the write of ${v} (CAS from ${v - 1}) cannot take effect before ${fmtT(prev.t)} given everything it must follow, after the read responded`,
          [n.op, ...(prevWhy ? [prevWhy] : [])]);
        return { violations, summary };
      }
      last = later(last, p);
    }
    if (v >= F) break;
    const ok = okFrom.get(v);
    let w;
    if (ok) {
      w = ok[0];
    } else {
      w = (unknownFrom.get(v) || []).reduce((a, b) => (!a || b.inv < a.inv ? b : a), null);
    }
    const p = after(last, w.inv);
    if (p.t > w.resp) {
      const readsOfV = (reads.get(v) || []).filter((n) => n.inv <= p.t).map((n) => n.op);
      bad('order', `no linearization: the acknowledged CAS ${v}->${v + 1} responded at ${fmtT(w.resp)}, but it must follow the write of ${v} and every read that returned ${v}, which cannot all take effect before ${fmtT(last.t)}`,
        [w.op, ...(prevWhy ? [prevWhy] : []), ...readsOfV.slice(0, 5)]);
      return { violations, summary };
    }
    earliest[v] = p.t;
    prev = p;
    prevWhy = w.op;
  }

  // Conflicts (point 4): the upper bounds L_v of W_v's time, from the end backwards.
  const latest = [];
  for (let v = F - 1; v >= 0; v--) {
    const ok = okFrom.get(v);
    let l = ok ? ok[0].resp : Infinity;
    if (v + 1 < F) l = Math.min(l, latest[v + 1]);
    for (const n of reads.get(v + 1) || []) l = Math.min(l, n.resp);
    latest[v] = l;
  }
  for (const n of conflicts) {
    const c = n.op.from;
    if (c > F) continue; // the value never was c
    const lo = c === 0 ? -Infinity : latest[c - 1];
    const hi = c < F ? earliest[c] : Infinity;
    if (n.inv > lo && n.resp < hi) {
      bad('conflict', `a CAS from ${c} answered succeeded:false, but the value was ${c} for its whole interval (${c === 0 ? 'never written before it' : `written by ${fmtT(lo)}`}, `
        + `${c < F ? `the next write cannot take effect before ${fmtT(hi)}` : 'never changed after'})`, [n.op]);
    }
  }
  if (!violations.length) summary.linearizable = true;
  return { violations, summary };
}

// A short report of per-object summaries and the first violations.
export function formatReport({ violations, objects }, maxViolations = 20) {
  const lines = [];
  for (const [o, s] of objects) {
    lines.push(`${String(o).slice(0, 12)}: F=${s.F} reads=${s.reads} ok=${s.ok} conflict=${s.conflict} fail=${s.fail} unknown=${s.unknown}${s.linearizable ? '' : ' NOT LINEARIZABLE'}`);
  }
  if (violations.length) {
    lines.push(`${violations.length} violation(s):`);
    for (const v of violations.slice(0, maxViolations)) lines.push(`[${v.rule}] ${v.message}`);
    if (violations.length > maxViolations) lines.push(`... ${violations.length - maxViolations} more`);
  }
  return lines.join('\n');
}
