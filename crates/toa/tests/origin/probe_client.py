# Probe client for tests/origin: connects, sends one line per round and
# prints "local_port=N <server reply>".
# Usage: probe_client.py HOST PORT [ROUNDS PAUSE_SECONDS]
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0
s = socket.create_connection((host, port), timeout=15)
f = s.makefile('rw')
for i in range(rounds):
    if i:
        time.sleep(pause)
    f.write('q\n')
    f.flush()
    print(f"local_port={s.getsockname()[1]} " + f.readline().strip(), flush=True)
s.close()
