#!/usr/bin/env python3
"""Set-up and checks of bench/do.sh (Durable Objects) against edgekv on 127.0.0.1.

Token: env DO_TOKEN. URL: edgekv's base URL; NSPATH: "/client/v4/accounts/{a}/workers/
durable_objects/namespaces/{ns}". Every request has a timeout; keep-alive connections, one
per thread.

  dodriver.py ids URL NSPATH PREFIX N THREADS OUT
      ids from names PREFIX0..PREFIX{N-1} (POST objects/ids), one per line into OUT (in order)
      -> prints "seconds"
  dodriver.py alarms URL NSPATH IDS T_MS THREADS
      PUT objects/{id}/alarm {"scheduledTime": T_MS} for every id of the file
      -> prints "seconds non2xx errors last_ack_ms" (last_ack_ms: wall clock of the last answer)
  dodriver.py storage-check URL NSPATH ID KEY VALUE_SIZE
      storage/get of KEY on ID must give the value do_bench.lua puts -> exit 0, else 1
  dodriver.py owned URL NSPATH PREFIX N OWNER OUT
      ids from names PREFIX0, PREFIX1, ... (POST objects/ids), keeping those whose partition
      GET /_edgekv/replication/do-owner?id= (operator token: env DO_OP_TOKEN) says OWNER
      owns, not pending, until N are kept (at most 64 N + 64 names), one per line into OUT
      -> prints "names_tried seconds"
  dodriver.py settled TIMEOUT_S OWNERS URL...
      until every node's /_edgekv/replication/status (no auth) has the same DO table
      version, pending 0, primary_owned 0 and exactly the nodes OWNERS (comma-separated)
      owning partitions -> prints "ms table_version owners" (owners: JSON {node:
      partitions}); exit 1 on timeout (the last states on stderr)
  dodriver.py wait UPSTREAM N DEADLINE_MS
      poll UPSTREAM/__bench/count every 100 ms until >= N or the wall clock passes DEADLINE_MS
      -> prints the count
  dodriver.py report RECORDS IDS T_MS
      lateness of the alarm deliveries the upstream recorded (lines "arrival_ms objectId
      scheduledTime retryCount status") -> a table, and "BENCH ..."; exit 1 when an id did not
      arrive exactly once, a scheduledTime is not T_MS, a retry was recorded or a record is
      not for one of the ids
"""
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

TIMEOUT = 30


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)


def call(conn, method, path, body=None):
    headers = {"Authorization": "Bearer " + os.environ["DO_TOKEN"]}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def parallel(n_items, threads, url, work):
    """Run work(conn, i) for i in range(n_items) on `threads` threads (item i on thread
    i % threads), each thread with its own keep-alive connection. Returns the errors."""
    errors = []

    def run(t):
        conn = conn_for(url)
        for i in range(t, n_items, threads):
            try:
                work(conn, i)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(f"item {i}: {e!r}")
                conn.close()
                conn = conn_for(url)
        conn.close()

    ths = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return errors


def cmd_ids(url, nspath, prefix, n, threads, out):
    n, threads = int(n), int(threads)
    ids = [None] * n

    def work(conn, i):
        st, body = call(conn, "POST", nspath + "/objects/ids", json.dumps({"name": f"{prefix}{i}"}))
        if st != 200:
            raise RuntimeError(f"HTTP {st}: {body[:200]!r}")
        ids[i] = json.loads(body)["result"]["id"]

    t0 = time.time()
    errors = parallel(n, threads, url, work)
    if errors or any(x is None for x in ids):
        sys.exit(f"ids: {len(errors)} failures, first: {errors[:3]}")
    with open(out, "w", encoding="ascii") as f:
        f.write("\n".join(ids) + "\n")
    print(f"{time.time() - t0:.2f}")


def cmd_alarms(url, nspath, idsfile, t_ms, threads):
    ids = [line.strip() for line in open(idsfile, encoding="ascii") if line.strip()]
    threads = int(threads)
    body = json.dumps({"scheduledTime": int(t_ms)})
    bad = []
    last = [0.0]
    lock = threading.Lock()

    def work(conn, i):
        st, b = call(conn, "PUT", f"{nspath}/objects/{ids[i]}/alarm", body)
        now = time.time() * 1000
        with lock:
            last[0] = max(last[0], now)
            if st != 200:
                bad.append(f"{ids[i]}: HTTP {st} {b[:120]!r}")

    t0 = time.time()
    errors = parallel(len(ids), threads, url, work)
    for e in (bad + errors)[:3]:
        print(f"alarm PUT failed: {e}", file=sys.stderr)
    print(f"{time.time() - t0:.2f} {len(bad)} {len(errors)} {last[0]:.0f}")


def cmd_storage_check(url, nspath, oid, key, size):
    conn = conn_for(url)
    st, body = call(conn, "POST", f"{nspath}/objects/{oid}/storage/get", json.dumps({"keys": [key]}))
    want = "v" * max(int(size) - 2, 0)
    try:
        ok = st == 200 and json.loads(body)["result"].get(key) == want
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        print(f"storage/get {key}: HTTP {st} {body[:200]!r}", file=sys.stderr)
        sys.exit(1)


def cmd_owned(url, nspath, prefix, n, owner, out):
    n = int(n)
    op = {"Authorization": "Bearer " + os.environ["DO_OP_TOKEN"]}
    conn = conn_for(url)
    kept, tried = [], 0
    t0 = time.time()
    while len(kept) < n:
        if tried >= 64 * n + 64:
            sys.exit(f"owned: only {len(kept)} of {n} ids owned by {owner} among {tried} names")
        st, body = call(conn, "POST", nspath + "/objects/ids", json.dumps({"name": f"{prefix}{tried}"}))
        tried += 1
        if st != 200:
            sys.exit(f"owned: objects/ids HTTP {st}: {body[:200]!r}")
        oid = json.loads(body)["result"]["id"]
        conn.request("GET", f"/_edgekv/replication/do-owner?id={oid}", headers=op)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"owned: do-owner HTTP {r.status}: {body[:200]!r}")
        res = json.loads(body)["result"]
        if res["owner"] == owner and not res["pending"]:
            kept.append(oid)
    conn.close()
    with open(out, "w", encoding="ascii") as f:
        f.write("\n".join(kept) + "\n")
    print(f"{tried} {time.time() - t0:.2f}")


def cmd_settled(timeout_s, owners, *urls):
    want = sorted(owners.split(","))
    deadline = time.monotonic() + float(timeout_s)
    t0 = time.monotonic()
    last = {}
    while True:
        last = {}
        for u in urls:
            try:
                conn = conn_for(u)
                conn.timeout = 2
                conn.request("GET", "/_edgekv/replication/status")
                last[u] = json.loads(conn.getresponse().read())["result"].get("durable_objects")
                conn.close()
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last[u] = repr(e)
        ds = list(last.values())
        ok = all(isinstance(d, dict) for d in ds)
        if ok:
            versions = {d.get("table_version") for d in ds}
            ok = len(versions) == 1 and all(
                d.get("pending") == 0 and d.get("primary_owned") == 0
                and sorted(k for k, v in (d.get("owners") or {}).items() if v) == want for d in ds)
        if ok:
            d = ds[0]
            print(f"{(time.monotonic() - t0) * 1000:.0f} {d['table_version']} "
                  f"{json.dumps(d['owners'], separators=(',', ':'), sort_keys=True)}")
            return
        if time.monotonic() > deadline:
            for u, d in last.items():
                print(f"settled: {u}: {json.dumps(d) if isinstance(d, dict) else d}", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.2)


def cmd_wait(upstream, n, deadline_ms):
    n, deadline_ms = int(n), float(deadline_ms)
    conn = conn_for(upstream)
    count = -1
    while True:
        try:
            conn.request("GET", "/__bench/count")
            count = int(conn.getresponse().read())
        except Exception:  # noqa: BLE001 - retried until the deadline
            conn.close()
            conn = conn_for(upstream)
        if count >= n or time.time() * 1000 > deadline_ms:
            break
        time.sleep(0.1)
    print(count)


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def cmd_report(records, idsfile, t_ms):
    t_ms = int(t_ms)
    ids = [line.strip() for line in open(idsfile, encoding="ascii") if line.strip()]
    want = set(ids)
    seen = {}
    late = []
    foreign = wrong_time = retries = non2xx = 0
    arrivals = []
    for line in open(records, encoding="ascii"):
        p = line.split()
        if len(p) < 5:
            continue
        arrival, oid, sched, retry, status = float(p[0]), p[1], int(p[2]), int(p[3]), int(p[4])
        arrivals.append(arrival)
        seen[oid] = seen.get(oid, 0) + 1
        if oid not in want:
            foreign += 1
        if sched != t_ms:
            wrong_time += 1
        if retry:
            retries += 1
        if not 200 <= status < 300:
            non2xx += 1
        late.append(arrival - sched)
    late.sort()
    arrivals.sort()
    once = sum(1 for i in ids if seen.get(i) == 1)
    missing = sum(1 for i in ids if i not in seen)
    dups = sum(c - 1 for c in seen.values() if c > 1)
    n = len(ids)
    print(f"\n== alarm: {n} objects, one alarm each, all for the same second T ==")
    hdr = (f'{"alarms":>6} {"arrived":>7} {"once":>6} {"missing":>7} {"dups":>5} {"p50 ms":>8} {"p99 ms":>8} '
           f'{"max ms":>8} {"first ms":>8} {"all in ms":>9} {"alarms/s":>8}')
    print(hdr)
    print("-" * len(hdr))
    if late:
        first, last = arrivals[0] - t_ms, arrivals[-1] - t_ms
        span = (arrivals[-1] - arrivals[0]) / 1000
        rate = (len(arrivals) / span) if span > 0 else float("inf")
        print(f'{n:>6} {len(late):>7} {once:>6} {missing:>7} {dups:>5} {pct(late, 50):>8.1f} {pct(late, 99):>8.1f} '
              f'{late[-1]:>8.1f} {first:>8.1f} {last:>9.1f} {rate:>8.0f}')
    else:
        first = last = rate = float("nan")
        print(f'{n:>6} {0:>7} {0:>6} {missing:>7} {0:>5}')
    print()
    print("  lateness = arrival at the upstream (when its headers arrived) - scheduledTime (T), both")
    print("  wall clock on this host; first/all in: the first and the last arrival after T; alarms/s:")
    print("  arrivals / (last - first).")
    ok = once == n and dups == 0 and foreign == 0 and wrong_time == 0 and retries == 0 and non2xx == 0
    if not ok:
        print(f"  WRONG: {n - once} of {n} ids not delivered exactly once ({missing} missing, {dups} duplicate "
              f"deliveries), {foreign} records of other ids, {wrong_time} with another scheduledTime, "
              f"{retries} retries, {non2xx} non-2xx")
    print()
    kv = [f"scenario=do_alarm alarms={n} arrived={len(late)} once={once} missing={missing} duplicates={dups}",
          f"retries={retries}"]
    if late:
        kv.append(f"late_p50_ms={pct(late, 50):.1f} late_p99_ms={pct(late, 99):.1f} late_max_ms={late[-1]:.1f} "
                  f"first_ms={first:.1f} all_in_ms={last:.1f} alarms_per_s={rate:.0f}")
    kv.append(f"valid={'yes' if ok else 'no'}")
    print("BENCH " + " ".join(kv))
    sys.exit(0 if ok else 1)


def main():
    a = sys.argv[1:]
    cmds = {"ids": (cmd_ids, 6), "alarms": (cmd_alarms, 5), "storage-check": (cmd_storage_check, 5),
            "wait": (cmd_wait, 3), "report": (cmd_report, 3), "owned": (cmd_owned, 6)}
    if a and a[0] == "settled" and len(a) >= 4:
        cmd_settled(*a[1:])
        return
    if not a or a[0] not in cmds or len(a) - 1 != cmds[a[0]][1]:
        sys.exit(__doc__)
    cmds[a[0]][0](*a[1:])


if __name__ == "__main__":
    main()
