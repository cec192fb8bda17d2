# Shared by the tests of what ships (packaging/tests/*): where the artifacts
# are, a temporary directory removed on every exit, and how a test fails.
# Sourced, not run.

cd "$(dirname "$0")/../.."
test_name=$(basename "$0")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
dist=target/dist

fail() { echo "$test_name: FAIL: $*" >&2; exit 1; }
ok() { echo "$test_name: ✓ $*"; }
[ "$(id -u)" = 0 ] || fail "must run as root"

tmp=$(mktemp -d "/tmp/toa-$test_name.XXXXXX")
chmod 0755 "$tmp"
cleanups=()
# Runs the registered cleanups (last first), then removes $tmp.
run_cleanups() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" || true; done
  rm -rf "$tmp"
}
trap run_cleanups EXIT

# artifact NAME: the path of target/dist/NAME, which must exist.
artifact() {
  [ -f "$dist/$1" ] || fail "$dist/$1 missing (run scripts/package)"
  echo "$dist/$1"
}

# own_cgroup: sets cg to a cgroup2 directory of this test's own under the host's cgroup2
# tree (mounted under $tmp where the host has none), removed on exit.
own_cgroup() {
  local cg_root
  cg_root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
  if [ -z "$cg_root" ]; then
    cg_root=$tmp/cgroup2
    mkdir "$cg_root"
    mount -t cgroup2 none "$cg_root"
    cleanups+=("umount '$cg_root'")
  fi
  cg=$cg_root/toa-$test_name-test-$$
  mkdir "$cg"
  cleanups+=("rmdir '$cg'")
}

# The files every package and tarball ships, relative to its root.
shipped_files=(
  usr/bin/toa
  lib/systemd/system/toa-origin.service
  lib/systemd/system/toa-proxy.service
  etc/default/toa-origin
  etc/toa/proxy.toml
  usr/share/man/man1/toa.1.gz
  usr/share/man/man1/toa-origin.1.gz
  usr/share/man/man1/toa-origin-load.1.gz
  usr/share/man/man1/toa-proxy.1.gz
  usr/share/man/man1/toa-proxy-check.1.gz
  usr/share/man/man1/toa-doctor.1.gz
  usr/share/man/man1/toa-demo.1.gz
  usr/share/bash-completion/completions/toa
  usr/share/zsh/vendor-completions/_toa
  usr/share/fish/vendor_completions.d/toa.fish
  usr/share/doc/toa/copyright
)

# expect_files ROOT: every shipped file is under ROOT.
expect_files() {
  local f
  for f in "${shipped_files[@]}"; do [ -e "$1/$f" ] || fail "$f missing from $1"; done
  ! compgen -G "$1/usr/share/man/man1/toa-generate-docs*" >/dev/null || fail "the hidden generate-docs has a man page"
}

# expect_static ELF MACHINE: a statically linked executable for MACHINE
# (readelf's name, e.g. AArch64), with no symbol table left.
expect_static() {
  local h
  h=$(readelf -h "$1") || fail "$1 is not ELF"
  grep -q "Machine:.*$2" <<<"$h" || fail "$1 is not built for $2: $(grep Machine <<<"$h")"
  ! grep -q INTERP <<<"$(readelf -l "$1")" || fail "$1 asks for a dynamic loader: not static"
  ! grep -q NEEDED <<<"$(readelf -d "$1" 2>/dev/null)" || fail "$1 needs shared libraries"
  ! grep -q '\.symtab' <<<"$(readelf -S "$1")" || fail "$1 is not stripped"
}
