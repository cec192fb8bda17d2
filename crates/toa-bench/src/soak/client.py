# Soak client: TCP with TOA, TCP with PROXY v2 and UDP with SPP through toa
# proxy, each checked end to end by sha256 and by the client address the
# origin reports. Prints cumulative counters as one JSON line every 5 s and a
# last one ("final": true) when SECONDS are over.
# Usage: client.py EDGE TOA_PORT PPV2_PORT UDP_PORT CLIENT_IP SECONDS
import hashlib, json, os, random, socket, sys, threading, time
edge, toa_port, pp_port, udp_port, me, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
TCP_THREADS, UDP_THREADS, PAUSE = 4, 2, 0.05
SIZES = [1024, 16384, 65536, 262144]
end = time.time() + seconds
lock = threading.Lock()
c = {'tcp_ok': 0, 'ppv2_ok': 0, 'udp_ok': 0, 'bytes_checked': 0, 'bytes_corrupt': 0,
     'wrong_client': 0, 'udp_late': 0, 'errors': {}}
def count(**kw):
    with lock:
        for k, v in kw.items():
            c[k] += v
def error(kind):
    with lock:
        c['errors'][kind] = c['errors'].get(kind, 0) + 1
def tcp(port, ok_key):
    while time.time() < end:
        data = os.urandom(random.choice(SIZES))
        try:
            with socket.create_connection((edge, port), timeout=10) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                reply = s.makefile().readline().split()
            if len(reply) != 4:
                error('tcp_no_reply')
                continue
            ip, _, n, digest = reply
            if int(n) != len(data) or digest != hashlib.sha256(data).hexdigest():
                count(bytes_corrupt=len(data))
            else:
                count(**{ok_key: 1, 'bytes_checked': len(data)})
            if ip != me:
                count(wrong_client=1)
        except socket.timeout:
            error('tcp_timeout')
        except OSError as e:
            error('tcp_' + (os.strerror(e.errno).lower().replace(' ', '_') if e.errno else 'oserror'))
        time.sleep(PAUSE)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((edge, udp_port))
    s.settimeout(2)
    seq = 0
    while time.time() < end:
        seq += 1
        data = seq.to_bytes(4, 'big') + os.urandom(random.randint(1, 1200))
        try:
            s.send(data)
            while True:
                got = s.recv(2048)
                if got[:4] == data[:4]:
                    break
                count(udp_late=1)
            if hashlib.sha256(got).digest() == hashlib.sha256(data).digest():
                count(udp_ok=1, bytes_checked=len(data))
            else:
                count(bytes_corrupt=len(data))
        except socket.timeout:
            error('udp_timeout')
        except OSError as e:
            error('udp_' + (os.strerror(e.errno).lower().replace(' ', '_') if e.errno else 'oserror'))
        time.sleep(PAUSE)
threads = [threading.Thread(target=tcp, args=(toa_port, 'tcp_ok'), daemon=True) for _ in range(TCP_THREADS)]
threads += [threading.Thread(target=tcp, args=(pp_port, 'ppv2_ok'), daemon=True) for _ in range(TCP_THREADS)]
threads += [threading.Thread(target=udp, daemon=True) for _ in range(UDP_THREADS)]
[t.start() for t in threads]
def report(final):
    with lock:
        print(json.dumps(dict(c, t=time.time(), final=final)), flush=True)
while time.time() < end:
    time.sleep(min(5, max(0, end - time.time())))
    report(False)
[t.join(timeout=15) for t in threads]
report(True)
