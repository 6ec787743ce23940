#!/usr/bin/env python3
"""Connection-side helpers for bench/scale.sh (standard library only, one process, epoll).

  scale_conns.py idle HOST PORT N SERVER_PID STATUSFILE RELEASEFILE SAMPLE_S HOLD_MAX_S
      1. VmRSS of SERVER_PID (rss_start).
      2. Opens N TCP connections (non-blocking connects, 256 at a time in flight at most
         between polls), sends one "GET /healthz HTTP/1.1" (keep-alive) on each as soon as it
         is connected and reads the answer; keeps every connection open.
      3. Waits 1 s, reads VmRSS (rss_open), writes "READY key=value..." to STATUSFILE.
      4. Holds the connections until RELEASEFILE exists (at most HOLD_MAX_S), then counts the
         connections the server closed meanwhile (readable = EOF), closes all (close(): FIN),
         and samples VmRSS every second for SAMPLE_S seconds from the last close.
      -> STATUSFILE gets a second line "DONE key=value..." (also printed), including
         samples=t:kB,... and back_s (first sample <= rss_start + 20 MB, -1 if none).

  scale_conns.py burst HOST PORT N TIMEOUT_S
      Starts N non-blocking connects as fast as possible (polling for completions every 64
      connects, so a completion is timed when it happens, not after the loop), waits until each
      completed (writable, SO_ERROR == 0) or failed, at most TIMEOUT_S. Per connection: time
      from its connect() to its completion. Then one "GET /healthz" on every established
      connection (HTTP/1.1 keep-alive), counting the 200s (at most TIMEOUT_S), then closes all
      with SO_LINGER 0 (RST: no TIME_WAIT, so repeated runs do not exhaust local ports).
      -> "BURST key=value ..." on stdout.
"""
import errno
import os
import selectors
import socket
import statistics
import struct
import sys
import time

RSS_BACK_MB = 20


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return -1


def request_bytes(host, port):
    return f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


class Resp:
    """Incremental parse of one HTTP/1.1 response framed by Content-Length."""

    __slots__ = ("buf", "status", "need")

    def __init__(self):
        self.buf, self.status, self.need = b"", 0, -1

    def feed(self, data):
        """-> True when the response is complete."""
        self.buf += data
        if self.need < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return False
            head = self.buf[:i].split(b"\r\n")
            try:
                self.status = int(head[0].split()[1])
            except (IndexError, ValueError):
                self.status = -1
            clen = 0
            for ln in head[1:]:
                if ln[:15].lower() == b"content-length:":
                    clen = int(ln[15:].strip() or 0)
            self.need = i + 4 + clen
        return len(self.buf) >= self.need


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def ask_healthz(sel, socks, host, port, timeout):
    """Send GET /healthz on every socket of socks, read every answer.
    -> (count of 200, count of other status, count failed/closed, seconds)."""
    req = request_bytes(host, port)
    t0 = time.monotonic()
    pending = {}
    failed = 0
    for s in socks:
        try:
            n = s.send(req)
        except OSError:
            n = -1
        if n != len(req):  # a fresh socket's send buffer takes 60 bytes, else it failed
            failed += 1
            continue
        pending[s.fileno()] = (s, Resp())
        sel.register(s, selectors.EVENT_READ)
    ok = other = 0
    deadline = t0 + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s, r = pending[key.fd]
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            done = bool(data) and r.feed(data)
            if not data or done:
                sel.unregister(s)
                del pending[key.fd]
                if not data:
                    failed += 1
                elif r.status == 200:
                    ok += 1
                else:
                    other += 1
    for s, _ in pending.values():
        sel.unregister(s)
    failed += len(pending)
    return ok, other, failed, time.monotonic() - t0


def connect_all(sel, host, port, n, timeout, batch=64):
    """Non-blocking connects, completions polled every `batch` connects.
    -> (list of connected sockets, per-connection seconds, failures {errno: count},
        t_first, t_last_done, issue seconds)."""
    conns = []
    starts = {}
    durs = []
    fails = {}
    t_first = None
    t_last = None

    def complete(events):
        nonlocal t_last
        now = time.monotonic()
        for key, _ in events:
            s = key.fileobj
            sel.unregister(s)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                durs.append(now - starts.pop(key.fd))
                conns.append(s)
                t_last = now
            else:
                starts.pop(key.fd, None)
                fails[err] = fails.get(err, 0) + 1
                s.close()

    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        t = time.monotonic()
        if t_first is None:
            t_first = t
        rc = s.connect_ex((host, port))
        if rc in (0, errno.EINPROGRESS):
            starts[s.fileno()] = t
            sel.register(s, selectors.EVENT_WRITE)
        else:
            fails[rc] = fails.get(rc, 0) + 1
            s.close()
        if i % batch == batch - 1:
            complete(sel.select(timeout=0))
    t_issued = time.monotonic()
    deadline = t_issued + timeout
    while starts and time.monotonic() < deadline:
        complete(sel.select(timeout=0.05))
    for fd in list(starts):
        key = sel.get_map()[fd]
        sel.unregister(key.fileobj)
        key.fileobj.close()
        fails[errno.ETIMEDOUT] = fails.get(errno.ETIMEDOUT, 0) + 1
    return conns, durs, fails, t_first, t_last, t_issued - (t_first or t_issued)


def fmt_fails(fails):
    return ",".join(f"{errno.errorcode.get(k, k)}:{v}" for k, v in sorted(fails.items())) or "none"


def cmd_idle(host, port, n, pid, statusfile, releasefile, sample_s, hold_max_s):
    n, pid, sample_s, hold_max_s = int(n), int(pid), int(sample_s), float(hold_max_s)
    port = int(port)
    sel = selectors.DefaultSelector()
    rss_start = rss_kb(pid)
    conns, durs, fails, t_first, t_last, _ = connect_all(sel, host, port, n, 120, batch=256)
    ok, other, failed, http_s = ask_healthz(sel, conns, host, port, 120)
    open_s = time.monotonic() - t_first
    time.sleep(1.0)
    rss_open = rss_kb(pid)
    with open(statusfile, "w", encoding="ascii") as f:
        f.write(f"READY n={n} connected={len(conns)} connect_fail={fmt_fails(fails)} ok200={ok} "
                f"other={other} http_fail={failed} open_s={open_s:.2f} rss_start_kb={rss_start} "
                f"rss_open_kb={rss_open}\n")
    deadline = time.monotonic() + hold_max_s
    while not os.path.exists(releasefile) and time.monotonic() < deadline:
        time.sleep(0.1)
    # connections the server closed during the hold (EOF pending) or that got unexpected data
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
    closed_by_server = len(sel.select(timeout=0))
    for s in conns:
        sel.unregister(s)
    rss_before_close = rss_kb(pid)
    t_c = time.monotonic()
    for s in conns:
        s.close()
    t_closed = time.monotonic()
    samples = []
    for i in range(1, sample_s + 1):
        time.sleep(max(0.0, t_closed + i - time.monotonic()))
        samples.append((i, rss_kb(pid)))
    back = next((t for t, v in samples if 0 <= v <= rss_start + RSS_BACK_MB * 1024), -1)
    line = (f"DONE closed_by_server={closed_by_server} rss_before_close_kb={rss_before_close} "
            f"close_ms={(t_closed - t_c) * 1000:.0f} back_s={back} "
            f"samples={','.join(f'{t}:{v}' for t, v in samples)}")
    with open(statusfile, "a", encoding="ascii") as f:
        f.write(line + "\n")
    print(line)


def cmd_burst(host, port, n, timeout):
    n, port, timeout = int(n), int(port), float(timeout)
    sel = selectors.DefaultSelector()
    conns, durs, fails, t_first, t_last, issue_s = connect_all(sel, host, port, n, timeout)
    total_ms = ((t_last - t_first) * 1000) if (t_last and t_first) else -1
    d = sorted(x * 1000 for x in durs)
    slow = sum(1 for x in d if x >= 1000)
    ok, other, failed, http_s = ask_healthz(sel, conns, host, port, timeout)
    for s in conns:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()
    print(f"BURST n={n} established={len(conns)} connect_fail={fmt_fails(fails)} "
          f"total_ms={total_ms:.1f} issue_ms={issue_s * 1000:.1f} "
          f"p50_ms={pct(d, 50):.2f} p99_ms={pct(d, 99):.2f} max_ms={(d[-1] if d else float('nan')):.2f} "
          f"mean_ms={(statistics.fmean(d) if d else float('nan')):.2f} slow1s={slow} "
          f"ok200={ok} other={other} http_fail={failed} http_ms={http_s * 1000:.0f}")


def main():
    cmds = {"idle": (cmd_idle, 8), "burst": (cmd_burst, 4)}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) - 2 != cmds[sys.argv[1]][1]:
        sys.exit(__doc__)
    cmds[sys.argv[1]][0](*sys.argv[2:])


if __name__ == "__main__":
    main()
