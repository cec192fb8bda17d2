#!/usr/bin/env python3
"""Test peer for the proxy end-to-end tests: a data origin and a data client.

Each connection moves N seeded-random bytes each way and reports the sha256 of
what it sent and what it received, one JSON line per connection, so a test can
compare both ends. `order` decides half-close: "together" (both send at once),
"client-first" (the origin replies only after the client's EOF), "origin-first"
(the client sends only after the origin's EOF).

  peer.py serve HOST PORT BYTES ORDER        # origin, runs until killed
  peer.py client HOST PORT BYTES ORDER CONNS # client, CONNS connections at once
  peer.py hammer HOST PORT COUNT             # COUNT sequential HTTP GETs; prints failures
  peer.py hold HOST PORT CONNS SECONDS       # opens CONNS idle connections, reports how many
                                             # the proxy kept open, holds them SECONDS
  peer.py capture HOST PORT                  # origin: per connection, prints the hex of the
                                             # bytes that arrive before the client sends "END"
  peer.py idle HOST PORT CONNS SECONDS       # opens CONNS connections at once, sends nothing,
                                             # reports how many opened, holds them SECONDS
  peer.py trickle HOST PORT LIMIT            # sends one byte a second until the peer closes
                                             # (or LIMIT seconds); reports the seconds it took
  peer.py push HOST PORT CONNS BYTES SECS    # CONNS connections each try to send BYTES within SECS
                                             # (the far end may never read); reports bytes sent
  peer.py stall HOST PORT                    # origin: accepts and never reads
  peer.py reset HOST PORT CONNS              # CONNS connections send 1 MiB, then close with RST
  peer.py reset-origin HOST PORT             # origin: per connection reads 64 KiB, then RST
  peer.py sequential HOST PORT COUNT         # COUNT connections one after another, each sends
                                             # "x", closes first and reads to EOF; reports ok/failed
  peer.py blast HOST PORT BYTES PAUSE        # origin: sends each connection BYTES as fast as it
                                             # can, waits PAUSE seconds, then EOF; closes when
                                             # the peer does
  peer.py probe-ports HOST P1,P2,...         # connects to each port in turn, prints "PORT REPLY"
                                             # ("PORT ERR errno" on failure)
  peer.py connect-until HOST PORT STOPFILE   # connects again and again until STOPFILE exists, then
                                             # prints how many replies began with "origin"
  peer.py drain HOST PORT FAST RATE SECS     # reads FAST bytes as fast as it can, prints "fast
                                             # part done", then at most RATE bytes a second (0:
                                             # no limit; no catching up after a stall), until
                                             # EOF or SECS; reports bytes read and eof
"""
import hashlib, json, random, socket, sys, threading

CHUNK = 1 << 20
lock = threading.Lock()


def send(sock, nbytes, seed):
    rng = random.Random(seed)
    h = hashlib.sha256()
    left = nbytes
    while left:
        data = rng.randbytes(min(CHUNK, left))
        sock.sendall(data)
        h.update(data)
        left -= len(data)
    sock.shutdown(socket.SHUT_WR)
    return h.hexdigest()


def recv(sock):
    h = hashlib.sha256()
    n = 0
    while True:
        data = sock.recv(CHUNK)
        if not data:
            return n, h.hexdigest()
        h.update(data)
        n += len(data)


def exchange(sock, nbytes, order, seed, i_am_origin):
    """Runs both directions; an OSError in either lands in result["error"]."""
    result = {"recv": 0}
    def guarded(fn):
        try:
            fn()
        except OSError as e:
            result.setdefault("error", str(e))
    def do_send():
        result["sent"] = nbytes
        result["sent_sha"] = send(sock, nbytes, seed)
    def do_recv():
        result["recv"], result["recv_sha"] = recv(sock)
    first_sender = "origin-first" if i_am_origin else "client-first"
    if order == "together":
        t = threading.Thread(target=guarded, args=(do_send,))
        t.start()
        guarded(do_recv)
        t.join()
    elif order == first_sender:
        guarded(do_send)
        guarded(do_recv)
    else:
        guarded(do_recv)
        guarded(do_send)
    return result


def emit(obj):
    with lock:
        print(json.dumps(obj), flush=True)


def listen(host, port, backlog):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(backlog)
    return srv


def serve(host, port, nbytes, order):
    srv = listen(host, port, 1024)
    seq = 0
    while True:
        conn, peer = srv.accept()
        seq += 1
        def run(conn=conn, peer=peer, seed=f"origin-{seq}"):
            r = exchange(conn, int(nbytes), order, seed, True)
            conn.close()
            # A health check connects and closes without sending: not a client connection.
            if r["recv"] > 0:
                r["peer"] = peer[0]
                emit(r)
        threading.Thread(target=run, daemon=True).start()


def client(host, port, nbytes, order, conns):
    results = [None] * int(conns)
    def run(i):
        try:
            s = socket.create_connection((host, int(port)), timeout=120)
        except OSError as e:
            results[i] = {"error": f"connect: {e}"}
            return
        results[i] = exchange(s, int(nbytes), order, f"client-{i}", False)
        s.close()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(int(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        emit(r)


def hammer(host, port, count):
    failures = 0
    for _ in range(int(count)):
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
            _, body = b"", b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                body += d
            s.close()
            if not body.startswith(b"HTTP/1.0 200"):
                failures += 1
        except OSError:
            failures += 1
    print(json.dumps({"count": int(count), "failures": failures}), flush=True)


def hold(host, port, conns, seconds):
    import time
    kept, closed = [], 0
    for _ in range(int(conns)):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.settimeout(0.5)
        try:
            if s.recv(1) == b"":
                closed += 1
                continue
        except socket.timeout:
            pass
        except OSError:
            closed += 1
            continue
        kept.append(s)
    print(json.dumps({"open": len(kept), "closed": closed}), flush=True)
    time.sleep(float(seconds))


def capture(host, port):
    srv = listen(host, port, 64)
    while True:
        conn, _ = srv.accept()
        data = b""
        conn.settimeout(5)
        try:
            while not data.endswith(b"END"):
                d = conn.recv(4096)
                if not d:
                    break
                data += d
        except OSError:
            pass
        if data:
            emit({"hex": data.hex()})
        conn.close()


def idle(host, port, conns, seconds):
    import time
    kept = []
    for _ in range(int(conns)):
        try:
            kept.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            pass
    print(json.dumps({"open": len(kept)}), flush=True)
    time.sleep(float(seconds))


def trickle(host, port, limit):
    import time
    s = socket.create_connection((host, int(port)), timeout=5)
    start = time.monotonic()
    s.settimeout(1.0)
    closed = False
    while time.monotonic() - start < float(limit):
        try:
            s.sendall(b"G")
            if s.recv(1024) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    print(json.dumps({"closed": closed, "seconds": round(time.monotonic() - start, 1)}), flush=True)


def push(host, port, conns, nbytes, secs):
    import time
    total = [0] * int(conns)
    def run(i):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.setblocking(False)
        data = b"x" * CHUNK
        deadline = time.monotonic() + float(secs)
        while total[i] < int(nbytes) and time.monotonic() < deadline:
            try:
                total[i] += s.send(data)
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                break
        time.sleep(0.5)
        s.close()
    at_once(conns, run)
    print(json.dumps({"sent": sum(total)}), flush=True)


def stall(host, port):
    srv = listen(host, port, 64)
    held = []
    while True:
        conn, _ = srv.accept()
        held.append(conn)


def linger_reset(sock):
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def at_once(conns, run):
    """Runs run(i) for i in 0..conns, each in its own thread, and waits for all."""
    threads = [threading.Thread(target=run, args=(i,)) for i in range(int(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def reset(host, port, conns):
    def run(i):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"x" * CHUNK)
            linger_reset(s)
        except OSError:
            pass
    at_once(conns, run)
    print(json.dumps({"reset": int(conns)}), flush=True)


def reset_origin(host, port):
    srv = listen(host, port, 64)
    while True:
        conn, _ = srv.accept()
        def run(conn=conn):
            got = 0
            conn.settimeout(5)
            try:
                while got < 65536:
                    d = conn.recv(65536)
                    if not d:
                        break
                    got += len(d)
            except OSError:
                pass
            linger_reset(conn)
        threading.Thread(target=run, daemon=True).start()


def sequential(host, port, count):
    ok, failed = 0, 0
    for _ in range(int(count)):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            s.close()
            if got:
                ok += 1
            else:
                failed += 1
        except OSError:
            failed += 1
    print(json.dumps({"ok": ok, "failed": failed}), flush=True)


def blast(host, port, nbytes, pause):
    import time
    srv = listen(host, port, 64)
    data = b"b" * CHUNK
    while True:
        conn, _ = srv.accept()
        def run(conn=conn):
            try:
                left = int(nbytes)
                while left:
                    left -= conn.send(data[:min(CHUNK, left)])
                time.sleep(float(pause))
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            conn.close()
        threading.Thread(target=run, daemon=True).start()


def drain(host, port, fast, rate, secs):
    # After the fast part, a token bucket that holds at most one read's worth: a reader
    # the scheduler stopped for a while goes on at its rate, it does not catch up in a
    # burst (which would be a fast reader, whose pipe may rightly grow).
    import time
    s = socket.create_connection((host, int(port)), timeout=30)
    fast, rate, start, got, eof = int(fast), int(rate), time.monotonic(), 0, False
    slow_read, credit, last = 65536, 0, None
    while time.monotonic() - start < float(secs):
        want = CHUNK
        if got >= fast:
            want = slow_read
            if last is None:
                last = time.monotonic()
                print("fast part done", flush=True)
            if rate:
                now = time.monotonic()
                credit, last = min(credit + rate * (now - last), slow_read), now
                if credit < slow_read:
                    time.sleep((slow_read - credit) / rate)
                    continue
        d = s.recv(want)
        if not d:
            eof = True
            break
        got += len(d)
        if last is not None:
            credit -= len(d)
    s.close()
    print(json.dumps({"read": got, "eof": eof}), flush=True)


def probe_ports(host, ports):
    for port in ports.split(","):
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
            data = b""
            while True:
                d = s.recv(100)
                if not d:
                    break
                data += d
            s.close()
            print(port, data.decode().strip() or "EMPTY")
        except OSError as e:
            print(port, "ERR", e.errno)


def connect_until(host, port, stop):
    import os
    ok, failed = 0, []
    print('{"started": 1}', flush=True)
    while not os.path.exists(stop):
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
            data = s.recv(100)
            s.close()
            if data.startswith(b"origin"):
                ok += 1
            else:
                failed.append(data.decode())
        except OSError as e:
            failed.append(str(e))
    print("ok %d failed %d %s" % (ok, len(failed), failed[:5]), flush=True)


if __name__ == "__main__":
    {"serve": serve, "client": client, "hammer": hammer, "hold": hold, "capture": capture,
     "idle": idle, "trickle": trickle, "sequential": sequential, "push": push, "stall": stall,
     "reset": reset, "reset-origin": reset_origin, "blast": blast, "drain": drain,
     "probe-ports": probe_ports, "connect-until": connect_until}[sys.argv[1]](*sys.argv[2:])
