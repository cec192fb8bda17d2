# shellcheck shell=bash
# Role: find and unpack Debian's generic -amd64 kernels for scripts/kernel-test,
# through a private apt state so the host's apt configuration stays untouched.
# Sourced by scripts/kernel-test; uses $cache and harness_fail from there.

# The suites the default kernels come from: 5.10 is bullseye's, 6.1 and 6.12
# are bookworm's. They are added next to the host's own suites, on the host's
# own mirrors, so no mirror name is ever written here.
KT_EXTRA_CODENAMES=(bullseye bookworm)
# Lists older than this are refreshed before a series ("6.1") is resolved.
KT_LISTS_MAX_AGE_MIN=1440

kt_apt() {
  local cmd=$1
  shift
  "$cmd" -q -o Dir::Etc::SourceList="$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$cache/apt/lists" -o Dir::Cache="$cache/apt/cache" \
    -o Dir::State::status=/dev/null -o APT::Sandbox::User=root "$@"
}

# Prints the host's deb sources as one-line entries, from both the deb822
# *.sources files and the legacy sources.list format.
kt_host_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "") {
          n = split(uris, u, " "); m = split(suites, s, " ")
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
            printf "deb %s%s %s %s\n", (signed != "" ? "[signed-by=" signed "] " : ""), u[i], s[j], comps
        }
        types = uris = suites = comps = signed = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0
        else if (key == "uris") uris = $0
        else if (key == "suites") suites = $0
        else if (key == "components") comps = $0
        else if (key == "signed-by") signed = $0
        else if (key == "enabled") enabled = tolower($0)
      }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E '^[[:space:]]*deb[[:space:]]' "$f" || true
  done
}

# Writes the private sources.list: the host's entries, plus the same entries
# with the host's codename swapped for each of KT_EXTRA_CODENAMES.
kt_write_sources() {
  local codename host extra line
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || harness_fail "cannot read VERSION_CODENAME from /etc/os-release"
  host=$(kt_host_sources)
  [ -n "$host" ] || harness_fail "no deb entries in /etc/apt/sources.list{,.d}: cannot find a Debian mirror"
  {
    echo "$host"
    for extra in "${KT_EXTRA_CODENAMES[@]}"; do
      while read -r line; do
        # Only suites named after the host's release (bookworm, bookworm-updates,
        # bookworm-security) have a counterpart in another release.
        echo "$line" | sed -E "s/([[:space:]])$codename(-[a-z]+)?([[:space:]])/\1$extra\2\3/"
      done <<<"$host"
    done
  } | awk '!seen[$0]++' >"$cache/apt/sources.list.new"
  mv "$cache/apt/sources.list.new" "$cache/apt/sources.list"
}

# Refreshes the private package lists when missing or stale. Offline with
# lists already present, it warns and uses them.
kt_update_lists() {
  mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
  kt_write_sources
  local stamp="$cache/apt/lists/.updated"
  if [ -f "$stamp" ] && [ -z "$(find "$stamp" -mmin +"$KT_LISTS_MAX_AGE_MIN")" ]; then
    return 0
  fi
  if kt_apt apt-get update -qq >"$cache/apt/update.log" 2>&1; then
    touch "$stamp"
  elif [ -f "$stamp" ]; then
    echo "kernel-test: apt-get update failed (see $cache/apt/update.log); using the lists from $(date -r "$stamp" +%F)" >&2
  else
    harness_fail "apt-get update with the private sources failed: $(tail -1 "$cache/apt/update.log")"
  fi
}

# Maps a version argument to a kernel release (the uname -r string):
#   5.10, 6.1, 6.12          the newest generic kernel of that series
#   5.10.0-46, 6.12.117+deb12, 6.1.0-57-amd64   exactly that kernel
kt_resolve() {
  local want=${1%-amd64} names
  if [ -f "$cache/kernels/$want-amd64/ready" ]; then
    echo "$want-amd64"
    return 0
  fi
  kt_update_lists
  names=$(kt_apt apt-cache pkgnames linux-image- 2>/dev/null |
    sed -nE 's/^linux-image-([0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9]+|\+deb[0-9]+)-amd64)$/\1/p' | sort -uV)
  [ -n "$names" ] || harness_fail "the private apt lists name no linux-image-*-amd64 package (see $cache/apt/sources.list)"
  if [[ $want =~ ^[0-9]+\.[0-9]+$ ]]; then
    local esc=${want//./\\.} found
    found=$(grep -E "^$esc(\.[0-9]+)?(-[0-9]+|\+deb[0-9]+)-amd64$" <<<"$names" | tail -1)
    [ -n "$found" ] || harness_fail "no such kernel: no Debian generic $want kernel (linux-image-$want*-amd64) in $(kt_series "$names")"
    echo "$found"
  elif grep -qxF "$want-amd64" <<<"$names"; then
    echo "$want-amd64"
  else
    harness_fail "no such kernel: linux-image-$want-amd64 is not in the Debian archive (series there: $(kt_series "$names"))"
  fi
}

kt_series() {
  sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$1" | sort -uV | tr '\n' ' ' | sed 's/ $//'
}

# Downloads and unpacks linux-image-<release> into $cache/kernels/<release>,
# with its modules indexed by depmod. Idempotent; the caller holds the lock.
kt_fetch_kernel() {
  local release=$1 dir="$cache/kernels/$1"
  [ -f "$dir/ready" ] && return 0
  local tmp="$dir.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp/deb" "$tmp/root"
  echo "kernel-test: downloading linux-image-$release" >&2
  (cd "$tmp/deb" && kt_apt apt-get download -qq "linux-image-$release") >"$tmp/download.log" 2>&1 ||
    harness_fail "apt-get download linux-image-$release failed: $(tail -1 "$tmp/download.log")"
  dpkg-deb -x "$tmp"/deb/*.deb "$tmp/root" || harness_fail "dpkg-deb -x of linux-image-$release failed"
  rm -rf "$tmp/deb"
  # Newer packages ship /usr/lib/modules; depmod -b and the guest both look in /lib/modules.
  if [ ! -d "$tmp/root/lib/modules/$release" ] && [ -d "$tmp/root/usr/lib/modules/$release" ]; then
    mkdir -p "$tmp/root/lib" && ln -s ../usr/lib/modules "$tmp/root/lib/modules"
  fi
  [ -f "$tmp/root/boot/vmlinuz-$release" ] || harness_fail "linux-image-$release has no /boot/vmlinuz-$release"
  depmod -b "$tmp/root" "$release" || harness_fail "depmod -b for $release failed"
  touch "$tmp/ready"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}
