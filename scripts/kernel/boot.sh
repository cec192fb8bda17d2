# shellcheck shell=bash
# Role: boot one kernel under QEMU with the host's userland (scripts/kernel/init,
# then scripts/kernel/stage2) and turn what came back into an exit status.
# Sourced by scripts/kernel-test; uses $cache, $here and kt_initramfs.

# Guest size: what the issue measured the demo and the origin suite with.
KT_SMP=2
KT_MEM=2G

# KVM only where it is an ordinary one: this machine kind's /dev/kvm is
# kvm_pvm, which runs PVM guests only and fails stock kernels ("KVM internal
# error"), so anything but kvm_intel/kvm_amd means software emulation.
kt_accel() {
  if [ -n "${TOA_KERNEL_TEST_ACCEL:-}" ]; then
    echo "$TOA_KERNEL_TEST_ACCEL"
  elif [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] &&
    { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
    echo "-accel kvm -cpu host"
  else
    # One host thread for all vCPUs: under multi-threaded TCG a vCPU could run a
    # stale translation of kernel text the other vCPU had just patched (static
    # keys flip when cgroup BPF programs attach and detach), and Debian's 6.12
    # guest died twice in CI with "Oops: int3" in do_sock_getsockopt.
    echo "-accel tcg,thread=single -cpu max"
  fi
}

# The caller's environment the guest command sees (PATH for cargo's tools,
# CI=true so tests fail rather than skip, and the toa/Rust knobs).
kt_write_env() {
  local v
  # Minus pyenv's shims: each is a bash script forking dozens of processes,
  # which over 9p under TCG took 27 s per python3 start (1.3 s for
  # /usr/bin/python3), so every test server missed its 10 s start-up wait.
  printf 'PATH=%q\n' "$(tr ':' '\n' <<<"$PATH" | grep -v '/\.pyenv/' | paste -sd:)"
  for v in HOME LANG CI RUST_BACKTRACE RUST_LOG $(compgen -e | grep -E '^TOA_' || true); do
    [ -n "${!v+x}" ] && printf '%s=%q\n' "$v" "${!v}"
  done
  echo "TERM=dumb"
  # The tests' start-up waits are sized for real hardware; under TCG a python3
  # start alone took 1.3–3 s on an idle host, and ten times that on a busy one.
  # The guest measures its own speed and stretches the waits to match (stage2).
  if [ -z "${TOA_TEST_TIME_SCALE:-}" ] && [[ $(kt_accel) == *tcg* ]]; then
    echo "KT_CALIBRATE_TIME_SCALE=1"
  fi
}

# kt_boot RELEASE RUNDIR SILENCE STREAM: RUNDIR/share/cmd must hold the
# command. Sets kt_status (the command's, 124 when the guest printed nothing
# for SILENCE seconds, 125 when the
# harness failed) and kt_reason (empty, or why the harness failed).
kt_boot() {
  local release=$1 run=$2 secs=$3 stream=$4 kdir="$cache/kernels/$1" initrd rc
  initrd=$(kt_initramfs "$release") || exit 125
  cp "$here/kernel/stage2" "$run/share/stage2"
  readlink -f "$kdir/root/lib/modules/$release" >"$run/share/modules"
  readlink -f "$kdir/root/boot/config-$release" >"$run/share/config"
  pwd >"$run/share/cwd"
  kt_write_env >"$run/share/env"
  rm -f "$run/share/status" "$run/share/dmesg" "$run/qemu.pid" "$run/silent"
  : >"$run/console.log"
  # The pipeline fails whenever QEMU does; its status is read below instead.
  set +e
  # shellcheck disable=SC2046 # kt_accel prints separate QEMU arguments
  # In the background, so that kt_watch can stop a guest that went silent;
  # the subshell exits with QEMU's own status.
  (
  qemu-system-x86_64 $(kt_accel) -smp "$KT_SMP" -m "$KT_MEM" -pidfile "$run/qemu.pid" \
    -nodefaults -no-reboot -display none -serial stdio \
    -kernel "$kdir/root/boot/vmlinuz-$release" -initrd "$initrd" \
    -append "console=ttyS0 loglevel=3 panic=-1" \
    -fsdev local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=ktout,path="$run/share",security_model=passthrough,multidevs=remap \
    -device virtio-9p-pci,fsdev=ktout,mount_tag=ktout \
    </dev/null 2>"$run/qemu.err" | sed -uE -e 's/\r//g' -e '/^\[ *[0-9.]+\] (sysrq: Power Off|reboot: Power down)$/d' |
    if [ "$stream" = 1 ]; then tee -a "$run/console.log"; else cat >>"$run/console.log"; fi
  exit "${PIPESTATUS[0]}"
  ) &
  local pipeline=$!
  while [ ! -s "$run/qemu.pid" ] && kill -0 "$pipeline" 2>/dev/null; do sleep 0.2; done
  [ ! -s "$run/qemu.pid" ] || kt_watch "$(cat "$run/qemu.pid")" "$run/console.log" "$secs" "$run/silent"
  wait "$pipeline"
  rc=$?
  set -e
  kt_reason=
  if [ -f "$run/share/status" ]; then
    kt_status=$(cat "$run/share/status")
  elif [ -f "$run/silent" ]; then
    kt_status=124 kt_reason="the guest printed nothing for ${secs}s (hung)"
  elif grep -q '^kernel-test: harness:' "$run/console.log"; then
    kt_status=125 kt_reason=$(grep -m1 '^kernel-test: harness:' "$run/console.log" | sed 's/^kernel-test: harness: //')
  elif grep -q 'Kernel panic' "$run/console.log"; then
    kt_status=125 kt_reason="guest panic: $(grep -m1 'Kernel panic' "$run/console.log" | sed 's/^\[[^]]*\] //')"
  elif [ "$rc" != 0 ]; then
    kt_status=125 kt_reason="qemu-system-x86_64 failed (exit $rc): $(tail -1 "$run/qemu.err")"
  else
    kt_status=125 kt_reason="the guest powered off without an exit status"
  fi
}
