#!/usr/bin/env python3
"""Test peers that say which origin answered: an origin that names itself, and its clients.

  echo.py serve HOST PORT NAME         # origin: prints {"accept": PEER} per connection (health
                                       # checks included) and answers each line with "NAME LINE"
  echo.py ask HOST PORT COUNT          # COUNT connections one after another, each sends "who" and
                                       # prints the first word of the answer (EMPTY, or ERR errno)
  echo.py converse HOST PORT GOFILE    # one connection: sends "before", prints {"before": ANSWER};
                                       # once GOFILE exists, sends "after", prints {"after": ANSWER}
"""
import json, os, socket, sys, threading, time


def serve(host, port, name):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(64)
    while True:
        conn, peer = srv.accept()
        print(json.dumps({"accept": peer[0]}), flush=True)
        def run(conn=conn):
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    conn.sendall(name.encode() + b" " + line)
        threading.Thread(target=run, daemon=True).start()


def ask(host, port, count):
    for _ in range(int(count)):
        try:
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(b"who\n")
                words = s.makefile("rb").readline().decode().split()
                print(words[0] if words else "EMPTY", flush=True)
        except OSError as e:
            print("ERR", e.errno, flush=True)


def converse(host, port, go):
    s = socket.create_connection((host, int(port)), timeout=60)
    answers = s.makefile("rb")
    for word in ("before", "after"):
        while word == "after" and not os.path.exists(go):
            time.sleep(0.05)
        s.sendall(word.encode() + b"\n")
        print(json.dumps({word: answers.readline().decode().strip()}), flush=True)


if __name__ == "__main__":
    {"serve": serve, "ask": ask, "converse": converse}[sys.argv[1]](*sys.argv[2:])
