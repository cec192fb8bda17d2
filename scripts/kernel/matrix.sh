# shellcheck shell=bash
# Role: what scripts/kernel-test runs in each kernel by default — `toa doctor`,
# the origin end-to-end test binary and `toa demo` — and the one-line summary
# of how they went. Sourced by scripts/kernel-test.

# Builds toa, the examples the origin tests start (toa-test-relay) and the
# origin test binary, and sets kt_toa and kt_origin to their paths. The guest
# runs these binaries directly: cargo would rebuild inside the guest.
kt_matrix_build() {
  local repo json
  repo=$(cd "$here/.." && pwd)
  (cd "$repo" && cargo build --release -p toa --bins --examples --quiet) ||
    harness_fail "cargo build --release -p toa --bins --examples failed"
  json=$(cd "$repo" && cargo test --release -p toa --test origin --no-run --message-format=json 2>/dev/null) ||
    harness_fail "cargo test --release -p toa --test origin --no-run failed"
  # The test target's own artifact: the JSON also names toa's binary, last when
  # only the binary was rebuilt.
  kt_origin=$(python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "origin" \
            and m["profile"]["test"] and m.get("executable"):
        print(m["executable"])
' <<<"$json" | tail -1)
  [ -x "$kt_origin" ] || harness_fail "cannot find the origin test binary in cargo's JSON output"
  kt_toa="$repo/target/release/toa"
  [ -x "$kt_toa" ] || harness_fail "$kt_toa was not built"
}

# The guest script: every step runs even after one failed, so one boot
# reports all of them; it exits with the first failing step's status.
kt_matrix_cmd() {
  cat <<EOF
status=0
step() {
  local name=\$1 s start=\$SECONDS
  shift
  echo "kernel-test: step \$name"
  "\$@"
  s=\$?
  echo "kernel-test: step \$name exit \$s"
  echo "kernel-test: step \$name took \$((SECONDS - start))s"
  [ "\$s" = 0 ] || [ "\$status" != 0 ] || status=\$s
}
step doctor $(printf %q "$kt_toa") doctor
step origin $(printf %q "$kt_origin")
step demo $(printf %q "$kt_toa") demo
# A failed test keeps its lab (configs, server and proxy logs) in the guest's
# /tmp, which is gone when the guest powers off: copy them into the share.
if [ "\$status" != 0 ] && compgen -G '/tmp/toa-*' >/dev/null; then
  mkdir -p /run/kernel-test/labs
  cp -r /tmp/toa-* /run/kernel-test/labs/ 2>/dev/null
  echo "kernel-test: kept \$(ls /run/kernel-test/labs | wc -l) lab directories"
fi
exit \$status
EOF
}

# kt_matrix_summary CONSOLE STATUS: "ok: doctor, origin (13 tests), demo", or
# "FAIL (exit N): origin: test_a, test_b; demo (exit 1)".
kt_matrix_summary() {
  local log=$1 status=$2 steps failed=() name s tests
  steps=$(sed -nE 's/^kernel-test: step ([a-z]+) exit ([0-9]+)$/\1 \2/p' "$log")
  if [ "$status" = 0 ] && [ "$(wc -l <<<"$steps")" = 3 ] && ! grep -qv ' 0$' <<<"$steps"; then
    tests=$(sed -nE 's/^test result: ok\. ([0-9]+) passed.*/\1/p' "$log" | tail -1)
    echo "ok: doctor, origin (${tests:-?} tests passed), demo"
    return
  fi
  while read -r name s; do
    if [ -z "$name" ] || [ "$s" = 0 ]; then continue; fi
    if [ "$name" = origin ]; then
      tests=$(sed -nE 's/^test (.*) \.\.\. FAILED$/\1/p' "$log" | paste -sd, | sed 's/,/, /g')
      failed+=("origin: ${tests:-exit $s}")
    else
      failed+=("$name (exit $s)")
    fi
  done <<<"$steps"
  [ ${#failed[@]} -gt 0 ] || failed=("the steps did not all run: $(tr '\n' ' ' <<<"$steps")")
  local IFS=';'
  echo "FAIL (exit $status): ${failed[*]}" | sed 's/;/; /g'
}
