# shellcheck shell=bash
# Role: build the tiny initramfs scripts/kernel-test boots each kernel with:
# busybox-static, scripts/kernel/init, and that kernel's modules for virtio,
# 9p and overlayfs, decompressed (busybox insmod reads plain .ko only).
# Sourced by scripts/kernel-test; uses $cache, $here and harness_fail.

# What stage 1 needs before it can mount the host's root; their dependencies
# (netfs, 9pnet, virtio_ring, …) come from modules.dep.
KT_INITRD_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

# Prints the path of the initramfs for <release>, building it if missing. Its
# name carries a hash of the init script, so editing init rebuilds it.
kt_initramfs() {
  local release=$1 root="$cache/kernels/$1/root" sum out
  sum=$(cat "$here/kernel/init" /bin/busybox | sha256sum | cut -c1-12)
  out="$cache/kernels/$release/initrd-$sum.cpio"
  if [ ! -f "$out" ]; then
    kt_build_initramfs "$release" "$root" "$out" >&2
  fi
  echo "$out"
}

kt_build_initramfs() {
  local release=$1 root=$2 out=$3 m line path n=0 base
  local stage="$out.d"
  rm -rf "$stage" "$out.tmp"
  mkdir -p "$stage"/{bin,dev,proc,sys,modules}
  cp /bin/busybox "$stage/bin/busybox"
  # The kernel opens /dev/console for init before anything is mounted.
  mknod -m 600 "$stage/dev/console" c 5 1
  cp "$here/kernel/init" "$stage/init"
  chmod 755 "$stage/init"
  for m in "${KT_INITRD_MODULES[@]}"; do
    line=$(modprobe -d "$root" -S "$release" --show-depends "$m" 2>&1) ||
      kt_no_module "$release" "$m" "$line"
  done
  # --show-depends lists dependencies first; keep the first mention of each.
  local -a paths
  mapfile -t paths < <(for m in "${KT_INITRD_MODULES[@]}"; do
    modprobe -d "$root" -S "$release" --show-depends "$m"
  done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
  for path in "${paths[@]}"; do
    n=$((n + 1))
    base=$(basename "$path")
    base=${base%%.ko*}
    kt_decompress "$path" >"$stage/modules/$(printf %02d "$n")-$base.ko" ||
      harness_fail "cannot decompress $path"
  done
  (cd "$stage" && find . | cpio -o -H newc --quiet) >"$out.tmp" || harness_fail "cpio of the initramfs failed"
  rm -rf "$stage"
  mv "$out.tmp" "$out"
}

kt_no_module() {
  case $2 in
    9p | 9pnet_virtio)
      harness_fail "kernel $1 has no 9p ($2: $3); use a generic -amd64 kernel, the -cloud-amd64 flavour lacks 9p" ;;
    *) harness_fail "kernel $1 has no $2 module: $3" ;;
  esac
}

kt_decompress() {
  case $1 in
    *.ko) cat "$1" ;;
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -qdc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) return 1 ;;
  esac
}
