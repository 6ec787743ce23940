#!/usr/bin/env python3
"""Data-side helpers for bench/scale.sh (standard library only, 127.0.0.1 URLs from the script).

Data sets: key(i) = "k%08d" % i, data_value(i) = key(i) + ":" + 90 hex digits taken from a
fixed pseudo-random 1 MiB blob at offset i * 7919 mod (1 MiB - 90): 100 bytes, the same on
every run, and not compressible by LZ4 (RocksDB's codec), so the bytes on disk per key are
those of real-looking values. The writer's keys (below) use value(key) = the first 100 bytes
of key + ":" + "xxx..." instead (a value read back says which key it belongs to). Env for
every command that calls the API: SCALE_ACCOUNT (account id), SCALE_TOKEN (Bearer token).

  scale_load.py load URL NS N CONNS
      PUT .../bulk, 10,000 pairs a request (the API's maximum), CONNS requests in flight (one
      keep-alive connection per thread), keys k00000000..k{N-1}.
      -> "seconds keys_per_s requests"; exit 1 on the first refused request (printed).

  scale_load.py getcheck URL NS I
      GET key(I) and compare it with data_value(I) -> "ok"; exit 1 otherwise.

  scale_load.py listcheck URL NS PREFIX LIMIT
      GET .../keys?prefix=PREFIX&limit=LIMIT once -> "count first last cursor_nonempty"

  scale_load.py healthz URL TIMEOUT_S READYFILE
      GET /healthz every 10 ms (a new connection each time, 200 ms timeout) until it answers
      200 -> the wall-clock time of that answer in ns (time.time_ns); exit 1 on timeout.
      READYFILE is created when polling starts (the script starts the server after that, so
      the poller's own start-up is not counted).

  scale_load.py writer URL NS CONNS SECONDS ACKFILE
      CONNS keep-alive connections (asyncio, one process), each writing unique keys
      c<conn>-<seq> = value(key) one after the other for SECONDS. Every key whose PUT got a 200
      is appended to ACKFILE. A failed connection (reset, refused: the server was killed) is
      re-opened every 10 ms until the end; the request it carried is not counted as acked.
      -> "WRITER acked=N failed=F errors=E reconnects=R first_fail_s=.. last_fail_s=.. gap_s=.."

  scale_load.py verify URL NS ACKFILE CONNS
      Reads every key of ACKFILE back (POST .../bulk/get, 100 keys a request, CONNS threads)
      and compares each value with value(key).
      -> "VERIFY acked=N lost=M wrong=W requests=R seconds=S"  (+ up to 5 examples on stderr)
"""
import asyncio
import json
import os
import random
import re
import socket
import sys
import threading
import time

from edgeprobe import Conn  # one keep-alive connection, reconnects once (bench/lib/edgeprobe.py)

PAD = "x" * 100


def value_for(key):
    return (key + ":" + PAD)[:100]


BLOB_LEN = 1 << 20
BLOB = random.Random(20240601).randbytes(BLOB_LEN // 2).hex()
BLOB_MOD = BLOB_LEN - 90


def data_value(i):
    o = (i * 7919) % BLOB_MOD
    return "k%08d:" % i + BLOB[o:o + 90]


def parse_url(url):
    m = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
    if not m:
        sys.exit(f"bad url {url}")
    return m.group(1), int(m.group(2))


def ns_path(ns):
    return f"/client/v4/accounts/{os.environ['SCALE_ACCOUNT']}/storage/kv/namespaces/{ns}"


def auth():
    return {"Authorization": "Bearer " + os.environ["SCALE_TOKEN"]}


# --- load ------------------------------------------------------------------------------------

BATCH = 10000


def bulk_body(start, end):
    """JSON array of {"key": key(i), "value": data_value(i)}, built as one string (~1 us/pair)."""
    b, m = BLOB, BLOB_MOD
    return ("[" + ",".join(['{"key":"k%08d","value":"k%08d:%s"}' % (i, i, b[(i * 7919) % m:(i * 7919) % m + 90])
                            for i in range(start, end)]) + "]").encode()


def cmd_load(url, ns, n, conns):
    n, conns = int(n), max(1, int(conns))
    path = ns_path(ns) + "/bulk"
    hdr = {**auth(), "Content-Type": "application/json"}
    starts = list(range(0, n, BATCH))
    lock = threading.Lock()
    state = {"next": 0, "err": None, "reqs": 0}

    def worker():
        c = Conn(url, timeout=120.0)
        while True:
            with lock:
                if state["err"] or state["next"] >= len(starts):
                    break
                s = starts[state["next"]]
                state["next"] += 1
            e = min(n, s + BATCH)
            st, data = c.req("PUT", path, bulk_body(s, e), hdr)
            ok = False
            if st == 200:
                try:
                    r = json.loads(data)
                    ok = r.get("success") is True and r["result"]["successful_key_count"] == e - s
                except (ValueError, KeyError, TypeError):
                    pass
            with lock:
                state["reqs"] += 1
                if not ok and not state["err"]:
                    state["err"] = f"bulk write k{s:08d}..k{e - 1:08d}: HTTP {st} {data[:300]!r}"
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    if state["err"]:
        print(state["err"], file=sys.stderr)
        sys.exit(1)
    print(f"{secs:.2f} {n / secs if secs > 0 else 0:.0f} {state['reqs']}")


# --- getcheck --------------------------------------------------------------------------------

def cmd_getcheck(url, ns, i):
    i = int(i)
    st, data = Conn(url, timeout=10).req("GET", f"{ns_path(ns)}/values/k{i:08d}", None, auth())
    if st != 200 or data != data_value(i).encode():
        sys.exit(f"GET k{i:08d}: HTTP {st}, {data[:120]!r}, expected {data_value(i)[:40]!r}...")
    print("ok")


# --- listcheck -------------------------------------------------------------------------------

def cmd_listcheck(url, ns, prefix, limit):
    c = Conn(url, timeout=30)
    st, data = c.req("GET", f"{ns_path(ns)}/keys?prefix={prefix}&limit={limit}", None, auth())
    if st != 200:
        sys.exit(f"list keys: HTTP {st} {data[:300]!r}")
    r = json.loads(data)
    names = [k["name"] for k in r["result"]]
    cur = (r.get("result_info") or {}).get("cursor") or ""
    print(f"{len(names)} {names[0] if names else '-'} {names[-1] if names else '-'} {1 if cur else 0}")


# --- healthz ---------------------------------------------------------------------------------

def cmd_healthz(url, timeout_s, readyfile):
    host, port = parse_url(url)
    deadline = time.monotonic() + float(timeout_s)
    with open(readyfile, "w", encoding="ascii"):
        pass
    req = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        t_next = time.monotonic() + 0.010
        try:
            with socket.create_connection((host, port), timeout=0.2) as s:
                s.sendall(req)
                buf = b""
                while b"\r\n" not in buf:
                    d = s.recv(4096)
                    if not d:
                        break
                    buf += d
                if buf.startswith(b"HTTP/1.1 200"):
                    print(time.time_ns())
                    return
        except OSError:
            pass
        time.sleep(max(0.0, t_next - time.monotonic()))
    sys.exit(f"/healthz of {url} not 200 within {timeout_s} s")


# --- writer ----------------------------------------------------------------------------------

async def read_response(reader):
    """-> status of one HTTP/1.1 response (Content-Length framed), body discarded."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    clen = 0
    for ln in lines[1:]:
        if ln[:15].lower() == b"content-length:":
            clen = int(ln[15:].strip())
    if clen:
        await reader.readexactly(clen)
    return status


async def writer_main(url, ns, conns, seconds, ackfile):
    host, port = parse_url(url)
    base = ns_path(ns) + "/values/"
    token = os.environ["SCALE_TOKEN"]
    t0 = time.monotonic()
    deadline = t0 + seconds
    st = {"acked": 0, "failed": 0, "errors": 0, "reconnects": 0, "non200": 0,
          "first_fail": None, "last_fail": None}
    out = open(ackfile, "w", encoding="ascii", buffering=1 << 16)

    async def one(ci):
        seq = 0
        reader = writer = None
        while time.monotonic() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                except (OSError, asyncio.TimeoutError):
                    reader = writer = None
                    st["reconnects"] += 1
                    await asyncio.sleep(0.010)
                    continue
            key = f"c{ci}-{seq:07d}"
            seq += 1
            val = value_for(key).encode()
            req = (f"PUT {base}{key} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
                   f"Content-Length: {len(val)}\r\n\r\n").encode() + val
            try:
                writer.write(req)
                status = await asyncio.wait_for(read_response(reader), 10)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    asyncio.TimeoutError, ValueError, IndexError):
                now = time.monotonic() - t0
                st["errors"] += 1
                if st["first_fail"] is None:
                    st["first_fail"] = now
                st["last_fail"] = now
                try:
                    writer.close()
                except OSError:
                    pass
                reader = writer = None
                await asyncio.sleep(0.010)
                continue
            if status == 200:
                st["acked"] += 1
                out.write(key + "\n")
            else:
                st["non200"] += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(conns)))
    out.close()
    ff = st["first_fail"]
    lf = st["last_fail"]
    print(f"WRITER acked={st['acked']} non200={st['non200']} errors={st['errors']} "
          f"reconnect_attempts={st['reconnects']} seconds={time.monotonic() - t0:.1f} "
          f"first_fail_s={'-' if ff is None else f'{ff:.2f}'} "
          f"last_fail_s={'-' if lf is None else f'{lf:.2f}'}")


def cmd_writer(url, ns, conns, seconds, ackfile):
    asyncio.run(writer_main(url, ns, int(conns), float(seconds), ackfile))


# --- verify ----------------------------------------------------------------------------------

def cmd_verify(url, ns, ackfile, conns):
    with open(ackfile, encoding="ascii") as f:
        keys = [ln.strip() for ln in f if ln.strip()]
    chunks = [keys[i:i + 100] for i in range(0, len(keys), 100)]
    path = ns_path(ns) + "/bulk/get"
    hdr = {**auth(), "Content-Type": "application/json"}
    lock = threading.Lock()
    st = {"next": 0, "lost": 0, "wrong": 0, "reqs": 0, "err": None, "ex": []}

    def worker():
        c = Conn(url, timeout=30)
        while True:
            with lock:
                if st["err"] or st["next"] >= len(chunks):
                    break
                ch = chunks[st["next"]]
                st["next"] += 1
            code, data = c.req("POST", path, json.dumps({"keys": ch, "type": "text"}).encode(), hdr)
            try:
                vals = json.loads(data)["result"]["values"] if code == 200 else None
            except (ValueError, KeyError, TypeError):
                vals = None
            with lock:
                st["reqs"] += 1
                if vals is None:
                    st["err"] = f"bulk get: HTTP {code} {data[:300]!r}"
                    break
                for k in ch:
                    v = vals.get(k)
                    if v is None:
                        st["lost"] += 1
                        if len(st["ex"]) < 5:
                            st["ex"].append(f"lost {k}")
                    elif v != value_for(k):
                        st["wrong"] += 1
                        if len(st["ex"]) < 5:
                            st["ex"].append(f"wrong {k}: {v[:40]!r}")
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, int(conns)))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for e in st["ex"]:
        print("  " + e, file=sys.stderr)
    if st["err"]:
        print(st["err"], file=sys.stderr)
        sys.exit(2)
    print(f"VERIFY acked={len(keys)} lost={st['lost']} wrong={st['wrong']} requests={st['reqs']} "
          f"seconds={time.monotonic() - t0:.1f}")


def main():
    cmds = {"load": (cmd_load, 4), "listcheck": (cmd_listcheck, 4), "getcheck": (cmd_getcheck, 3), "healthz": (cmd_healthz, 3),
            "writer": (cmd_writer, 5), "verify": (cmd_verify, 4)}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) - 2 != cmds[sys.argv[1]][1]:
        sys.exit(__doc__)
    cmds[sys.argv[1]][0](*sys.argv[2:])


if __name__ == "__main__":
    main()
