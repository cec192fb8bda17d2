# Probe server for tests/origin: for every line a client sends, answer with
# what accept() returned, what getpeername() returns now, the
# getsockopt(IPPROTO_IP, 4096) lookup (18-byte and too-short 8-byte buffer)
# and an unrelated option (IP_TOS) that must stay untouched.
# Usage: probe_server.py HOST PORT
import errno, socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
srv = socket.socket(fam, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind((host, port))
srv.listen(64)
def lookup(c, size):
    try:
        b = c.getsockopt(socket.IPPROTO_IP, 4096, size)
    except OSError as e:
        return errno.errorcode[e.errno]
    # Linux < 5.18: a getsockopt program cannot fail with ENOENT, so toa answers
    # "no TOA" with 18 zero bytes (toa_common::LOOKUP_NONE); libtoa reads it as ENOENT.
    if len(b) >= 18 and b[:18] == bytes(18):
        return 'ENOENT'
    return socket.inet_ntop(socket.AF_INET6, b[:16]) + ' lookup_port=' + str(int.from_bytes(b[16:18], 'big'))
def serve(c, a):
    with c, c.makefile('rw') as f:
        for _ in f:
            p = c.getpeername()
            tos = c.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)
            f.write(f"accept={a[0]} accept_port={a[1]} peer={p[0]} peer_port={p[1]} lookup={lookup(c, 18)} short={lookup(c, 8)} tos={tos}\n")
            f.flush()
while True:
    c, a = srv.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
