#!/usr/bin/env python3
"""Load helpers of scripts/bench-protocols.sh (standard library only).

  proto_clients.py ws-echo --port P
      WebSocket echo backend: answers an opening handshake with 101 and then
      echoes raw bytes (one thread, non-blocking sockets; it stops reading a
      connection while its echo has not been written, so it never buffers
      more than one read per connection).  After the handshake a proxy's
      tunnel only passes bytes, so the echoed (still masked) client frames are
      what the client counts.

  proto_clients.py ws-client --port P --conns C --duration S
                             [--payload 32] [--batch 512] [--window 4] [--path /ws]
      Opens C WebSocket connections (opening handshake, 101 checked), then on
      each keeps up to WINDOW batches of BATCH pre-built masked text frames of
      PAYLOAD bytes in flight, counting the bytes echoed back.  --batch 1
      --window 1 is ping-pong: one message in flight per connection.
      Prints: messages=N seconds=S rate=R errors=E p99_ms=X (p99 of the
      round trip of a batch).

  proto_clients.py tls-new --port P --cafile CA --duration S [--procs 2] [--path /small]
      New TLS connection per request, never resuming a session (every
      handshake is a full one): connect, handshake, GET with
      `Connection: close`, read the answer to EOF, close.  PROCS processes.
      Prints: requests=N seconds=S rate=R errors=E p99_ms=X

Every client prints one result line on stdout and diagnostics on stderr.
"""

import argparse
import base64
import hashlib
import multiprocessing
import os
import selectors
import socket
import ssl
import sys
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def p99(samples):
    if not samples:
        return None
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def fmt_ms(v):
    return "" if v is None else f"{v * 1000:.3f}"


# ---------------------------------------------------------------- WebSocket echo backend
def ws_echo(args):
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    # per connection: {"head": bytes or None once upgraded, "out": pending bytes}
    state = {}

    def close(s):
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        state.pop(s, None)
        s.close()

    def flush(s, st):
        try:
            n = s.send(st["out"])
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:  # the peer left (reset, broken pipe)
            close(s)
            return
        st["out"] = st["out"][n:]
        # backpressure: read again only when everything read was written
        sel.modify(s, selectors.EVENT_WRITE if st["out"] else selectors.EVENT_READ, None)

    while True:
        for key, mask in sel.select():
            s = key.fileobj
            if s is lsock:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                state[c] = {"head": b"", "out": b""}
                sel.register(c, selectors.EVENT_READ, None)
                continue
            st = state.get(s)
            if st is None:
                continue
            try:
                if mask & selectors.EVENT_WRITE:
                    flush(s, st)
                    continue
                data = s.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                close(s)
                continue
            if not data:
                close(s)
                continue
            if st["head"] is not None:
                st["head"] += data
                end = st["head"].find(b"\r\n\r\n")
                if end < 0:
                    if len(st["head"]) > 65536:
                        close(s)
                    continue
                head, rest = st["head"][:end].decode("latin-1"), st["head"][end + 4:]
                key_v = ""
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "sec-websocket-key":
                        key_v = value.strip()
                if not key_v:
                    close(s)
                    continue
                accept = base64.b64encode(hashlib.sha1(key_v.encode() + WS_GUID).digest()).decode()
                st["head"] = None
                st["out"] = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode() + rest
            else:
                st["out"] += data
            flush(s, st)


# ---------------------------------------------------------------- WebSocket client
def ws_frame(payload_len, i):
    """One masked text frame (client to server) with a payload of payload_len bytes."""
    assert payload_len <= 125
    mask = os.urandom(4)
    payload = (b"m%07d" % (i % 10_000_000)).ljust(payload_len, b"x")[:payload_len]
    masked = bytes(b ^ mask[j % 4] for j, b in enumerate(payload))
    return bytes([0x81, 0x80 | payload_len]) + mask + masked


def ws_handshake(port, path, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError(f"closed during the handshake after {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise OSError(f"handshake answered {status.decode('latin-1')!r}")
    want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest())
    if want not in head:
        raise OSError("wrong Sec-WebSocket-Accept")
    if rest:
        raise OSError("bytes after the 101 before any frame was sent")
    s.setblocking(False)
    return s


def ws_client(args):
    frame_len = 2 + 4 + args.payload
    batch = b"".join(ws_frame(args.payload, i) for i in range(args.batch))
    conns = []
    errors = 0
    for _ in range(args.conns):
        try:
            conns.append(ws_handshake(args.port, args.path))
        except OSError as e:
            errors += 1
            print(f"ws-client: {e}", file=sys.stderr)
    if not conns:
        print(f"messages=0 seconds=0 rate=0 errors={errors} p99_ms=")
        return 1
    sel = selectors.DefaultSelector()
    blen = len(batch)
    window = args.window * blen
    # per connection: [sent, received, offset in batch, send times of batches in flight]
    st = {c: [0, 0, 0, []] for c in conns}
    for c in conns:
        sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE)
    rtts = []
    t0 = time.monotonic()
    deadline = t0 + args.duration
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        for key, mask in sel.select(min(0.1, deadline - now)):
            c = key.fileobj
            s = st[c]
            if mask & selectors.EVENT_READ:
                try:
                    data = c.recv(1 << 18)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError as e:
                    print(f"ws-client: {e}", file=sys.stderr)
                    errors += 1
                    sel.unregister(c)
                    continue
                if data == b"":
                    print("ws-client: connection closed by the proxy", file=sys.stderr)
                    errors += 1
                    sel.unregister(c)
                    continue
                if data:
                    before = s[1] // blen
                    s[1] += len(data)
                    done = s[1] // blen - before
                    if done:
                        t = time.monotonic()
                        for _ in range(done):
                            rtts.append(t - s[3].pop(0))
            if mask & selectors.EVENT_WRITE or s[0] - s[1] < window:
                while s[0] - s[1] < window:
                    try:
                        n = c.send(batch[s[2]:] if s[2] else batch)
                    except (BlockingIOError, InterruptedError):
                        break
                    if s[2] == 0:
                        s[3].append(time.monotonic())
                    s[0] += n
                    s[2] = (s[2] + n) % blen
                    if s[2]:
                        break
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if s[0] - s[1] < window else 0)
                if key.events != want:
                    sel.modify(c, want)
    elapsed = time.monotonic() - t0
    received = sum(s[1] for s in st.values())
    for c in conns:
        c.close()
    messages = received // frame_len
    print(f"messages={messages} seconds={elapsed:.3f} rate={messages / elapsed:.1f} errors={errors} "
          f"p99_ms={fmt_ms(p99(rtts))}")
    return 0


# ---------------------------------------------------------------- new TLS connection per request
def tls_worker(port, cafile, path, duration, q):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    n = errors = 0
    lat = []
    deadline = time.monotonic() + duration
    while True:
        t = time.monotonic()
        if t >= deadline:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # a new SSLSocket without a session: always a full handshake
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(req)
                    buf = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
            if buf.startswith(b"HTTP/1.1 200"):
                n += 1
                lat.append(time.monotonic() - t)
            else:
                errors += 1
        except (OSError, ssl.SSLError) as e:
            errors += 1
            if errors <= 3:
                print(f"tls-new: {e}", file=sys.stderr)
    q.put((n, errors, lat))


def tls_new(args):
    q = multiprocessing.Queue()
    t0 = time.monotonic()
    procs = [multiprocessing.Process(target=tls_worker, args=(args.port, args.cafile, args.path, args.duration, q))
             for _ in range(args.procs)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - t0
    n = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    lat = [x for r in results for x in r[2]]
    print(f"requests={n} seconds={elapsed:.3f} rate={n / elapsed:.1f} errors={errors} p99_ms={fmt_ms(p99(lat))}")
    return 0 if n else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("ws-echo")
    e.add_argument("--port", type=int, required=True)
    c = sub.add_parser("ws-client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--conns", type=int, default=8)
    c.add_argument("--duration", type=float, default=5)
    c.add_argument("--payload", type=int, default=32)
    c.add_argument("--batch", type=int, default=512)
    c.add_argument("--window", type=int, default=4)
    c.add_argument("--path", default="/ws")
    t = sub.add_parser("tls-new")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--cafile", required=True)
    t.add_argument("--duration", type=float, default=5)
    t.add_argument("--procs", type=int, default=2)
    t.add_argument("--path", default="/small")
    args = ap.parse_args()
    return {"ws-echo": ws_echo, "ws-client": ws_client, "tls-new": tls_new}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
