#!/usr/bin/env python3
"""UDP peers for the proxy UDP end-to-end tests (run inside the lab's namespaces).

  load HOST PORT CLIENTS COUNT [QUIET]   CLIENTS sockets send COUNT datagrams each (at most
                                         WINDOW outstanding per client) and collect replies until
                                         all are back or nothing arrives for QUIET seconds; prints
                                         one JSON line per client: local address, sent, received,
                                         own (replies are exactly its own payloads), foreign.
  send HOST PORT QUIET PAYLOAD...        one socket sends each payload ("@N": N bytes of "x") and
                                         prints "reply <hex>" per reply (or "reply-len N" for replies
                                         over 1 KiB) until QUIET seconds pass silently.
  pulse HOST PORT N INTERVAL             one socket sends N datagrams, one every INTERVAL seconds,
                                         each waiting up to 2 s for its echo; prints one JSON line:
                                         local address, sent, received.
  many-ports HOST TAG P1,P2,...          binds each port; answers each datagram with "TAG PORT PAYLOAD"
                                         (PORT: where it arrived) from that port. Runs until killed.
  probe-ports HOST P1,P2,... WAIT        one unconnected socket sends "probe-PORT" to each port in turn
                                         (again after WAIT seconds without its answer, three times in
                                         all); prints "PORT ANSWER... from SRCPORT" ("PORT TIMEOUT").
  exchange-until HOST PORT STOPFILE WAIT one socket sends and awaits its answer (again after WAIT
                                         seconds, three times in all) until STOPFILE exists; prints
                                         "ok N failed M".
  odd-origin HOST PORT                   an SPP origin that answers "short..." with a truncated SPP
                                         header, "wrong..." with a wrong magic, anything else with
                                         the proper header echoed.
"""
import json
import os
import select
import socket
import sys
import time

# Datagrams in flight per client: 50 clients x 4 stay well inside default socket buffers.
WINDOW = 4
SPP_MAGIC = b"\x56\xec"
SPP_LEN = 38


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def show(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load(host, port, clients, count, quiet=5.0):
    socks = []
    for i in range(clients):
        s = socket.socket(family(host), socket.SOCK_DGRAM)
        # Connected: the kernel drops replies from any address but the one sent to.
        s.connect((host, port))
        s.setblocking(False)
        socks.append({"sock": s, "i": i, "next": 0, "sent": set(), "got": [], "outstanding": 0})
    by_fd = {c["sock"].fileno(): c for c in socks}
    last_progress = time.monotonic()
    while True:
        for c in socks:
            while c["next"] < count and c["outstanding"] < WINDOW:
                payload = b"client%d-seq%d-" % (c["i"], c["next"]) + os.urandom(8).hex().encode()
                c["sock"].send(payload)
                c["sent"].add(payload)
                c["next"] += 1
                c["outstanding"] += 1
        if all(len(c["got"]) >= count for c in socks):
            break
        readable, _, _ = select.select(list(by_fd), [], [], 0.2)
        for fd in readable:
            c = by_fd[fd]
            while True:
                try:
                    data = c["sock"].recv(65536)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    continue
                c["got"].append(data)
                c["outstanding"] = max(0, c["outstanding"] - 1)
                last_progress = time.monotonic()
        if time.monotonic() - last_progress > quiet:
            # Lost datagrams free their window slot so the rest still go out.
            stalled = [c for c in socks if c["outstanding"] and c["next"] < count]
            if not stalled:
                break
            for c in stalled:
                c["outstanding"] = 0
            last_progress = time.monotonic()
    for c in socks:
        got = c["got"]
        print(json.dumps({
            "local": show(c["sock"].getsockname()),
            "sent": len(c["sent"]),
            "received": len(got),
            "own": sorted(got) == sorted(c["sent"]),
            "foreign": sum(1 for g in got if g not in c["sent"]),
        }), flush=True)


def send(host, port, quiet, payloads):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    print(json.dumps({"local": show(s.getsockname())}), flush=True)
    for p in payloads:
        s.send(b"x" * int(p[1:]) if p.startswith("@") else p.encode())
    s.settimeout(quiet)
    while True:
        try:
            data = s.recv(65536)
            print(f"reply-len {len(data)}" if len(data) > 1024 else "reply " + data.hex(), flush=True)
        except (socket.timeout, ConnectionRefusedError):
            break


def pulse(host, port, n, interval):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    s.settimeout(2)
    received = 0
    for i in range(n):
        payload = b"pulse-%d" % i
        s.send(payload)
        try:
            if s.recv(65536) == payload:
                received += 1
        except (socket.timeout, ConnectionRefusedError):
            pass
        time.sleep(interval)
    print(json.dumps({"local": show(s.getsockname()), "sent": n, "received": received}), flush=True)


def many_ports(host, tag, ports):
    sel = {}
    for port in ports.split(","):
        s = socket.socket(family(host), socket.SOCK_DGRAM)
        s.bind((host, int(port)))
        sel[s.fileno()] = s
    print('{"listening": 1}', flush=True)
    while True:
        readable, _, _ = select.select(list(sel), [], [])
        for fd in readable:
            s = sel[fd]
            data, peer = s.recvfrom(65536)
            s.sendto(b"%s %d %s" % (tag.encode(), s.getsockname()[1], data), peer)


def ask(s, dest, payload, wait):
    """Sends payload to dest until an answer ending in it arrives (three tries, WAIT seconds
    each); returns (answer, source port) or None. Stale answers to earlier payloads are skipped."""
    for _ in range(3):
        s.sendto(payload, dest)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                data, src = s.recvfrom(65536)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if data.endswith(b" " + payload):
                return data[: -len(payload) - 1].decode(), src[1]
    return None


def probe_ports(host, ports, wait):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    for port in ports.split(","):
        got = ask(s, (host, int(port)), b"probe-%s" % port.encode(), wait)
        print(port, "TIMEOUT" if got is None else "%s from %d" % got, flush=True)


def exchange_until(host, port, stop, wait):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    ok, failed, i = 0, 0, 0
    print('{"started": 1}', flush=True)
    while not os.path.exists(stop):
        i += 1
        got = ask(s, (host, port), b"x-%d" % i, wait)
        if got is not None and got[0].startswith("origin") and got[1] == port:
            ok += 1
        else:
            failed += 1
    print("ok %d failed %d" % (ok, failed), flush=True)


def odd_origin(host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.bind((host, port))
    while True:
        data, peer = s.recvfrom(65536)
        header, payload = data[:SPP_LEN], data[SPP_LEN:]
        if payload.startswith(b"short"):
            reply = SPP_MAGIC + b"\x00" * 10
        elif payload.startswith(b"wrong"):
            reply = b"\x12\x34" + payload
        else:
            reply = header + payload
        s.sendto(reply, peer)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "load":
        quiet = float(args[4]) if len(args) > 4 else 5.0
        load(args[0], int(args[1]), int(args[2]), int(args[3]), quiet)
    elif cmd == "send":
        send(args[0], int(args[1]), float(args[2]), args[3:])
    elif cmd == "pulse":
        pulse(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif cmd == "many-ports":
        many_ports(args[0], args[1], args[2])
    elif cmd == "probe-ports":
        probe_ports(args[0], args[1], float(args[2]))
    elif cmd == "exchange-until":
        exchange_until(args[0], int(args[1]), args[2], float(args[3]))
    elif cmd == "odd-origin":
        odd_origin(args[0], int(args[1]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
