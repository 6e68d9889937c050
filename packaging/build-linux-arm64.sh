#!/usr/bin/env bash
# Build the aarch64 (ARM64) single binary on an x86-64 Debian machine, under emulation.
#
#   sudo packaging/build-linux-arm64.sh [--reuse] [--test | --smoke | --root-only] [--cache DIR]
#
# PyInstaller cannot cross-build, so the build runs in an arm64 Debian root (debootstrap) through
# qemu-user and binfmt_misc. Steps, each skipped when already done:
#   1. emulation: qemu-user-static and debootstrap from apt, binfmt_misc mounted, aarch64 registered;
#   2. the arm64 Debian root (bookworm, glibc 2.36) in the cache folder, outside the repository;
#   3. a venv inside it with requirements.lock's pinned `[test,build]` set, aarch64 wheels from
#      PyPI checked against the lock's sha256, and the project;
#   4. `pyinstaller build.spec` in the root: dist/modeldepot-linux-aarch64 (one file) and
#      dist/modeldepot-linux-aarch64-dir/ (the onedir build);
#   5. a small sysroot (the root's glibc and zlib, an ARM /proc/cpuinfo) through which the host runs
#      the binary: QEMU_LD_PREFIX=<cache>/sysroot.
# --reuse takes the binary from the cache instead when one was built from the same sources
# (build.spec, pyproject.toml, requirements.lock, packaging/entry.py, app/, assets/). Then --smoke
# serves, pushes and predicts with it (tests/bundle/smoke.py), or --test runs the bundle tests
# against it and compares its predictions with dist/modeldepot's (`pytest -m "bundle or arm64"`),
# waits scaled for emulation. --root-only stops after step 2 (CI's first, network-bound part).
#
# Downloads come only from the Debian mirror in this machine's apt sources and from PyPI through
# this machine's pip settings. The cache is MODELDEPOT_ARM64_CACHE (default
# /var/cache/modeldepot-arm64); delete it to start from scratch. Each step prints its duration.
set -euo pipefail

SUITE=bookworm  # glibc 2.36 and Python 3.11: the oldest Debian whose Python the project accepts
CACHE="${MODELDEPOT_ARM64_CACHE:-/var/cache/modeldepot-arm64}"
# Emulation is several times slower than the machine; the bundle tests' timeouts are scaled by this
# (tests/bundle/conftest.py caps it, so no test passes only because its wait grew without bound).
TIME_FACTOR="${MODELDEPOT_BUNDLE_TIME_FACTOR:-6}"
after=build
reuse=no

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "build-linux-arm64.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --test) after=test; shift ;;
    --smoke) after=smoke; shift ;;
    --reuse) reuse=yes; shift ;;
    --root-only) after=root; shift ;;
    --cache) CACHE="${2:?--cache needs a folder}"; shift 2 ;;
    --cache=*) CACHE="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root: it mounts binfmt_misc and chroots into the arm64 root."
[ "$(uname -m)" = x86_64 ] || die "this script builds on x86-64 (on an aarch64 machine run pyinstaller build.spec)."

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$CACHE" in "$REPO"|"$REPO"/*) die "the cache ($CACHE) must be outside the repository." ;; esac
ROOTFS="$CACHE/root-$SUITE-arm64"
SYSROOT="$CACHE/sysroot-$SUITE-arm64"
VENV=/opt/modeldepot-venv  # inside the root
SRC=/src                    # the repository, bind-mounted into the root
HOST_PYTHON="${HOST_PYTHON:-$REPO/.venv/bin/python}"

timed() {  # timed NAME COMMAND...: run a step and print how long it took
  local name="$1" start=$SECONDS
  shift
  say "$name"
  "$@"
  say "$name: $((SECONDS - start)) s"
}

# -- 1. emulation ------------------------------------------------------------------------------

BINFMT=/proc/sys/fs/binfmt_misc

emulation() {
  local need=()
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || need+=(qemu-user-static)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
  if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    # The F flag opens the emulator now, so it also runs aarch64 programs inside the chroot.
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | head -n 1 > "$BINFMT/register"
  fi
  grep -qx enabled "$BINFMT/qemu-aarch64" || die "binfmt_misc's qemu-aarch64 entry is disabled."
}

# -- 2. the arm64 Debian root ------------------------------------------------------------------

debian_mirror() {  # the first Debian mirror in this machine's apt sources that serves $SUITE
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  local uri
  uri="$(cat "${files[@]}" 2>/dev/null | awk -v suite="$SUITE" '
    /^deb / { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /=/) { u = $i; s = $(i + 1); break }
              if (s == suite && u ~ /debian\/?$/) { print u; exit } }
    /^URIs:/ { u = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && u ~ /debian\/?$/) { print u; exit } }
    /^$/ { u = "" }')"
  [ -n "$uri" ] || die "no Debian mirror for $SUITE in the apt sources."
  echo "$uri"
}

# An aarch64 /proc/cpuinfo (a Cortex-A72, the Raspberry Pi 4's core), one entry per host core.
# Under qemu-user the real file is the host's x86 text, on which onnxruntime's CPU detection
# crashes (SIGSEGV at import).
write_cpuinfo() {
  local out="$1" i
  : > "$out"
  for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
    printf 'CPU revision\t: 3\n\n'
  done >> "$out"
}

# The pip settings of this machine without local wheel folders (they hold x86-64 wheels only).
copy_pip_settings() {
  local root="$1"
  [ -f /etc/pip.conf ] && grep -v -i 'find-links' /etc/pip.conf > "$root/etc/pip.conf"
  if [ -d /etc/xdg/pip ]; then
    mkdir -p "$root/etc/xdg/pip"
    cp -a /etc/xdg/pip/. "$root/etc/xdg/pip/"
    [ -f "$root/etc/xdg/pip/pip.conf" ] && sed -i '/find-links/Id' "$root/etc/xdg/pip/pip.conf"
  fi
  # This machine's CA bundle (with its local CAs), which pip.conf's `cert` names: a text file,
  # the same on any architecture, and much quicker than update-ca-certificates under emulation.
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

make_root() {
  if [ -f "$ROOTFS/.complete" ]; then
    say "reusing the arm64 root $ROOTFS"
    copy_pip_settings "$ROOTFS"
    return
  fi
  local partial="$ROOTFS.partial" mirror
  mirror="$(debian_mirror)"
  rm -rf "$partial"
  mkdir -p "$CACHE"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-dev,binutils,ca-certificates \
    "$SUITE" "$partial" "$mirror"
  copy_pip_settings "$partial"
  touch "$partial/.complete"
  mv "$partial" "$ROOTFS"
}

# -- 3 and 4. inside the root --------------------------------------------------------------------

MOUNTS=()
unmount_all() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  MOUNTS=()
}
trap unmount_all EXIT

mount_root() {
  [ ${#MOUNTS[@]} -eq 0 ] || return 0
  mkdir -p "$ROOTFS$SRC" "$ROOTFS/proc" "$ROOTFS/dev"
  mount -t proc proc "$ROOTFS/proc"; MOUNTS+=("$ROOTFS/proc")
  write_cpuinfo "$CACHE/cpuinfo"
  mount --bind "$CACHE/cpuinfo" "$ROOTFS/proc/cpuinfo"; MOUNTS+=("$ROOTFS/proc/cpuinfo")
  mount --rbind /dev "$ROOTFS/dev"; mount --make-rslave "$ROOTFS/dev"; MOUNTS+=("$ROOTFS/dev")
  mount --bind "$REPO" "$ROOTFS$SRC"; MOUNTS+=("$ROOTFS$SRC")
}

in_root() {  # a command in the root with a clean environment: the host's PIP_FIND_LINKS stays out
  local env=(PATH="$VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root LANG=C.UTF-8)
  local name
  for name in PIP_DEFAULT_TIMEOUT PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST \
      http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!name:-}" ] && env+=("$name=${!name}")
  done
  env -i "${env[@]}" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    chroot "$ROOTFS" /bin/sh -c 'cd "$0" && exec "$@"' "$SRC" "$@"
}

make_venv() {
  mount_root
  [ -x "$ROOTFS$VENV/bin/python" ] || in_root python3 -m venv "$VENV"
  in_root python -m pip install --quiet --upgrade pip
  # The pinned versions of requirements.lock (every platform's files, with their sha256), so the
  # aarch64 build bundles the same libraries as the x86-64 one; a cached venv is brought up to
  # date by the same command. Then the project itself, editable: it picks up the checkout's
  # current sources.
  in_root python -m pip install --quiet --require-hashes -r requirements.lock
  in_root python -m pip install --quiet --no-deps -e "$SRC"
}

# The build's inputs: a cached binary is reused only for the same build.spec, dependencies,
# entry point and app sources.
build_key() {
  (cd "$REPO" && find build.spec pyproject.toml requirements.lock packaging/entry.py packaging/notices.py app assets \
    -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum \
    | sha256sum | cut -c1-16)
}

reuse_build() {
  local cached="$CACHE/builds/$(build_key)"
  [ -f "$cached/modeldepot-linux-aarch64" ] || return 1
  say "reusing the build of these sources in $cached"
  mkdir -p "$REPO/dist"
  rm -rf "$REPO/dist/modeldepot-linux-aarch64" "$REPO/dist/modeldepot-linux-aarch64-dir"
  cp -a "$cached/modeldepot-linux-aarch64" "$cached/modeldepot-linux-aarch64-dir" "$REPO/dist/"
}

keep_build() {  # only the newest build is kept
  local cached="$CACHE/builds/$(build_key)"
  rm -rf "$CACHE/builds"
  mkdir -p "$cached"
  cp -a "$REPO/dist/modeldepot-linux-aarch64" "$REPO/dist/modeldepot-linux-aarch64-dir" "$cached/"
}

build() {
  mount_root
  local out="$SRC/build/linux-aarch64"
  rm -rf "$REPO/build/linux-aarch64"
  in_root pyinstaller --noconfirm --clean --log-level WARN \
    --distpath "$out/dist" --workpath "$out/work" build.spec
  mkdir -p "$REPO/dist"
  rm -rf "$REPO/dist/modeldepot-linux-aarch64" "$REPO/dist/modeldepot-linux-aarch64-dir"
  mv "$REPO/build/linux-aarch64/dist/modeldepot" "$REPO/dist/modeldepot-linux-aarch64"
  mv "$REPO/build/linux-aarch64/dist/modeldepot-dir" "$REPO/dist/modeldepot-linux-aarch64-dir"
  keep_build
}

# -- 5. the sysroot the host runs the binary with ----------------------------------------------

make_sysroot() {
  [ -d "$SYSROOT" ] && return 0
  local partial="$SYSROOT.partial"
  rm -rf "$partial"
  mkdir -p "$partial/proc"
  # Only glibc and zlib: what the binary needs besides itself, so a missing library shows here.
  local link top
  for link in bin sbin lib lib64; do  # merged /usr: /lib is a link to usr/lib
    [ -L "$ROOTFS/$link" ] && cp -a "$ROOTFS/$link" "$partial/"
  done
  chroot "$ROOTFS" dpkg -L libc6 zlib1g | while read -r path; do
    top="${path#/}"
    top="${top%%/*}"
    [ -L "$ROOTFS/$top" ] && path="/$(readlink "$ROOTFS/$top")/${path#/"$top"/}"
    if [ -f "$ROOTFS$path" ] || [ -L "$ROOTFS$path" ]; then
      (cd "$ROOTFS" && cp -a --parents ".$path" "$partial/")
    fi
  done
  # qemu-user opens $QEMU_LD_PREFIX/<path> in place of any absolute <path> that exists there:
  # this is how the binary's /proc/cpuinfo reads as an ARM one.
  write_cpuinfo "$partial/proc/cpuinfo"
  mv "$partial" "$SYSROOT"
}

report() {  # the size, and the newest glibc symbol version anything in the build asks for
  local binary="$REPO/dist/modeldepot-linux-aarch64" needed
  needed="$(find "$binary" "$REPO/dist/modeldepot-linux-aarch64-dir" -type f \
    \( -name '*.so*' -o -perm -u+x \) -exec readelf -W -V {} + 2>/dev/null \
    | grep -o 'GLIBC_[0-9.]*' | sort -V -u | tail -n 1 || true)"
  say "$binary: $(du -m "$binary" | cut -f1) MB, $(readelf -h "$binary" | sed -n 's/ *Machine: *//p');" \
    "needs glibc ${needed#GLIBC_} or newer"
}

# -- after the build ---------------------------------------------------------------------------

host_python() {
  [ -x "$HOST_PYTHON" ] || die "no Python with the test extras at $HOST_PYTHON (set HOST_PYTHON)."
  echo "$HOST_PYTHON"
}

run_tests() {
  local python
  python="$(host_python)"
  cd "$REPO"
  QEMU_LD_PREFIX="$SYSROOT" MODELDEPOT_BUNDLE_TIME_FACTOR="$TIME_FACTOR" \
    MODELDEPOT_BINARY="$REPO/dist/modeldepot-linux-aarch64" \
    MODELDEPOT_ONEDIR_BINARY="$REPO/dist/modeldepot-linux-aarch64-dir/modeldepot" \
    "$python" -m pytest -m "bundle or arm64" "$@"
}

smoke() {
  local python
  python="$(host_python)"
  cd "$REPO"
  QEMU_LD_PREFIX="$SYSROOT" MODELDEPOT_BUNDLE_TIME_FACTOR="$TIME_FACTOR" \
    "$python" -m tests.bundle.smoke "$REPO/dist/modeldepot-linux-aarch64"
}

timed "emulation (qemu-user-static, binfmt_misc)" emulation
if [ "$after" = root ]; then
  timed "arm64 Debian root ($SUITE)" make_root
  exit 0
fi
if [ "$reuse" = yes ] && [ -d "$SYSROOT" ] && reuse_build; then
  :
else
  timed "arm64 Debian root ($SUITE)" make_root
  timed "venv in the root (project [test,build])" make_venv
  timed "pyinstaller build.spec under emulation" build
  unmount_all
fi
timed "sysroot for running it from the host" make_sysroot
report
case "$after" in
  test) timed "bundle tests under emulation" run_tests ;;
  smoke) timed "smoke test under emulation" smoke ;;
esac
