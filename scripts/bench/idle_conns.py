#!/usr/bin/env python3
"""Open N keep-alive HTTP/1.1 client connections and hold them idle.

Each connection sends one complete GET, reads the complete response
(Content-Length or chunked), then stays open and idle.  When all
connections are done the script prints one line

    READY opened=<n> ok=<n> failed=<n>

to stdout and holds the connections until it gets SIGTERM/SIGINT, --hold
seconds pass, or (with --stdin) stdin reaches EOF.  Standard library only.

Used by scripts/bench.sh to measure a proxy's RSS with 1,000 idle clients.
"""

import argparse
import resource
import select
import signal
import socket
import sys
import time


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def response_complete(buf):
    """Return True once buf holds one complete HTTP/1.1 response."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = buf[:head_end].decode("latin-1").lower()
    body = buf[head_end + 4:]
    status_line = head.split("\r\n", 1)[0]
    parts = status_line.split()
    if len(parts) >= 2 and (parts[1].startswith("1") or parts[1] in ("204", "304")):
        return True
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        name = name.strip()
        value = value.strip()
        if name == "content-length":
            return len(body) >= int(value)
        if name == "transfer-encoding" and "chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return False  # close-delimited: not keep-alive, never "complete"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--path", default="/small")
    ap.add_argument("--hold", type=float, default=120.0,
                    help="maximum seconds to hold the connections (default 120)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds allowed for opening + first request (default 30)")
    ap.add_argument("--stdin", action="store_true",
                    help="also stop holding when stdin reaches EOF")
    args = ap.parse_args()

    limit = raise_nofile(args.count + 64)
    if limit < args.count + 16:
        print(f"idle_conns: RLIMIT_NOFILE {limit} too low for {args.count} connections",
              file=sys.stderr)

    stop = {"now": False}

    def on_signal(_sig, _frm):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               "User-Agent: ficus-bench-idle\r\n\r\n").encode()
    deadline = time.monotonic() + args.timeout
    socks, failed = [], 0
    # Open and send in batches so the listen backlog is never overrun.
    batch = 100
    for start in range(0, args.count, batch):
        pending = {}
        for _ in range(start, min(args.count, start + batch)):
            try:
                s = socket.create_connection((args.host, args.port), timeout=5)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(request)
                s.setblocking(False)
                pending[s.fileno()] = (s, bytearray())
            except OSError:
                failed += 1
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLIN)
        while pending and time.monotonic() < deadline:
            for fd, _ev in poller.poll(200):
                s, buf = pending[fd]
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    poller.unregister(fd)
                    del pending[fd]
                    s.close()
                    failed += 1
                    continue
                buf += chunk
                if response_complete(buf):
                    poller.unregister(fd)
                    del pending[fd]
                    socks.append(s)
        for s, _buf in pending.values():  # timed out
            s.close()
            failed += 1

    print(f"READY opened={len(socks) + failed} ok={len(socks)} failed={failed}", flush=True)

    # Hold until a signal, --hold elapses or (--stdin) stdin EOF.  Count connections the
    # server closed meanwhile (an idle timeout shorter than the hold).
    end = time.monotonic() + args.hold
    poller = select.poll()
    stdin_open = args.stdin
    if stdin_open:
        poller.register(sys.stdin.fileno(), select.POLLIN)
    closed = 0
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while not stop["now"] and time.monotonic() < end:
        for fd, _ev in poller.poll(500):
            if stdin_open and fd == sys.stdin.fileno():
                if not sys.stdin.buffer.read1(4096):
                    stop["now"] = True
                continue
            s = by_fd.pop(fd, None)
            if s is not None:
                poller.unregister(fd)
                s.close()
                closed += 1
    for s in by_fd.values():
        s.close()
    print(f"DONE server_closed={closed}", flush=True)


if __name__ == "__main__":
    main()
