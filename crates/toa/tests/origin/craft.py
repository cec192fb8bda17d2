# Raw-socket TCP client for tests/origin (crafted.rs, fault_parser.rs): handshake
# with hand-made options on the ACK, one "q" line, prints the probe server's
# reply, then RST.
# Usage: craft.py IFACE SRC DST DPORT SPORT ACK_OPTIONS_HEX   (one case)
#        craft.py IFACE SRC DST @CASES    (CASES: lines "DPORT SPORT HEX"; one
#                                          reply line per case, in order)
# SRC must be an address nobody owns, routed to IFACE, so no kernel resets the
# handshake; the replies are read from IFACE with a packet socket.
import random, socket, struct, sys

iface, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
if sys.argv[4].startswith('@'):
    with open(sys.argv[4][1:]) as f:
        cases = [(int(d), int(s), bytes.fromhex(h) if h != '-' else b'') for d, s, h in (l.split() for l in f if l.strip())]
else:
    cases = [(int(sys.argv[4]), int(sys.argv[5]), bytes.fromhex(sys.argv[6]))]
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def packet(dport, sport, seq, ack, flags, options=b'', payload=b''):
    options += b'\0' * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0) + options + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), random.randint(0, 65535), 0x4000, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    return ip + tcp
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
rx.bind((iface, 0))
rx.settimeout(5)
def send(p): tx.sendto(p, (dst, 0))
def receive(dport, sport, want):
    while True:
        frame = rx.recv(65535)
        ip = frame[14:]
        if ip[9] != 6 or ip[12:16] != socket.inet_aton(dst): continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        sp, dp, seq, ack, off, flags = struct.unpack('!HHIIBB', tcp[:14])
        if sp != dport or dp != sport: continue
        payload = ip[ihl + (off >> 4) * 4:struct.unpack('!H', ip[2:4])[0]]
        if want(flags, payload): return seq, payload
for dport, sport, opts in cases:
    iss = random.randint(0, 2**31)
    try:
        send(packet(dport, sport, iss, 0, 0x02, bytes([2, 4, 5, 0xb4])))
        y, _ = receive(dport, sport, lambda f, p: f & 0x12 == 0x12)
        send(packet(dport, sport, iss + 1, y + 1, 0x10, opts))
        send(packet(dport, sport, iss + 1, y + 1, 0x18, b'', b'q\n'))
        _, reply = receive(dport, sport, lambda f, p: len(p) > 0)
        print(reply.decode().strip(), flush=True)
    except socket.timeout:
        print('error=timeout', flush=True)
    send(packet(dport, sport, iss + 3, 0, 0x04))
