# socat: one listener per port, a child process per connection.
socat TCP4-LISTEN:14000,bind=198.18.1.1,reuseaddr,fork,backlog=8192 TCP4:198.18.2.2:10000 &
socat TCP4-LISTEN:14001,bind=198.18.1.1,reuseaddr,fork,backlog=8192 TCP4:198.18.2.2:10001 &
