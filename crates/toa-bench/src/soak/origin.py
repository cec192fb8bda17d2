# Soak origin (TCP): one process per origin address. TOA_PORT: the client is
# what getpeername() says (toa origin rewrites it); PPV2_PORT: a PROXY v2
# header comes first and names the client. Each connection: read until the
# client half-closes, reply "CLIENT_IP CLIENT_PORT BYTES SHA256\n", close.
# Usage: origin.py ADDR TOA_PORT PPV2_PORT
import hashlib, socket, struct, sys, threading
addr, toa_port, pp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
SIG = b'\r\n\r\n\x00\r\nQUIT\n'
def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1024)
    return s
def read_exact(c, n):
    b = b''
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b
def ppv2_source(c):
    h = read_exact(c, 16)
    if h[:12] != SIG:
        raise ValueError('no PROXY v2 signature')
    body = read_exact(c, struct.unpack('!H', h[14:16])[0])
    if h[13] >> 4 == 1:
        return socket.inet_ntop(socket.AF_INET, body[0:4]), struct.unpack('!H', body[8:10])[0]
    return socket.inet_ntop(socket.AF_INET6, body[0:16]), struct.unpack('!H', body[32:34])[0]
def serve(c, pp):
    try:
        with c:
            c.settimeout(60)
            peer = ppv2_source(c) if pp else c.getpeername()[:2]
            h, n = hashlib.sha256(), 0
            while True:
                b = c.recv(65536)
                if not b:
                    break
                h.update(b)
                n += len(b)
            c.sendall(f'{peer[0]} {peer[1]} {n} {h.hexdigest()}\n'.encode())
    except (OSError, EOFError, ValueError):
        pass  # health checks connect and close; resets are the client's to count
def accept_loop(s, pp):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, pp), daemon=True).start()
listeners = [(listener(toa_port), False), (listener(pp_port), True)]
print('ready', flush=True)
threads = [threading.Thread(target=accept_loop, args=l, daemon=True) for l in listeners]
[t.start() for t in threads]
[t.join() for t in threads]
