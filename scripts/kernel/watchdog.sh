# shellcheck shell=bash
# Role: the guests' hang detector, sourced by scripts/kernel/boot.sh and
# scripts/kernel/arm64. A guest under software emulation on a busy host can be
# many times slower than on an idle one, so a fixed wall-clock budget failed
# guests that were still making progress (issue 25). What counts as a hang is
# silence instead: no new console output for a number of seconds.

# kt_watch PID LOG SILENCE MARK: waits while PID runs; once LOG has not grown
# for SILENCE seconds, creates MARK and stops PID (TERM, KILL 10 s later).
kt_watch() {
  local pid=$1 log=$2 silence=$3 mark=$4 size last=-1 quiet_since=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    if [ "$size" != "$last" ]; then
      last=$size quiet_since=$SECONDS
    elif [ $((SECONDS - quiet_since)) -ge "$silence" ]; then
      : >"$mark"
      kill "$pid" 2>/dev/null
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
      kill -9 "$pid" 2>/dev/null
      return 0
    fi
    sleep 2
  done
}
