#!/usr/bin/env bash
# Install ModelDepot as a systemd service on Linux. Safe to run again (upgrades in place).
#
#   sudo ./install-linux.sh [--binary PATH] [--no-start]
#   sudo ./install-linux.sh --uninstall [--purge]
#
# Installs the binary for this machine's architecture (x86-64, or aarch64 as on a Raspberry Pi)
# as /opt/modeldepot/modeldepot (linked from /usr/local/bin), creates the system user
# `modeldepot`, installs and enables packaging/systemd/modeldepot.service and the desktop entry.
# --uninstall removes all of that but keeps the data in /var/lib/modeldepot (and the user that
# owns it) unless --purge is given.
set -euo pipefail

PREFIX=/opt/modeldepot
DATA_DIR=/var/lib/modeldepot
SERVICE_USER=modeldepot
UNIT_DIR=/etc/systemd/system
UNIT=modeldepot.service
LINK=/usr/local/bin/modeldepot
DESKTOP_DIR=/usr/share/applications
ICON_DIR=/usr/share/icons/hicolor/256x256/apps

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary=""
action=install
purge=no
start=yes

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "install-linux.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    --no-start) start=no; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[ "$purge" = yes ] && [ "$action" != uninstall ] && die "--purge only goes with --uninstall."
[ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)."

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# ELF e_machine of the architectures `uname -m` names (x86-64 62, aarch64 183).
machine_of_arch() {
  case "$1" in
    x86_64|amd64) echo 62 ;;
    aarch64|arm64) echo 183 ;;
    *) echo unknown ;;
  esac
}

elf_machine() {  # the e_machine field of an ELF file (bytes 18-19, little-endian), else nothing
  [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
  od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '
}

# The build for this machine's architecture: dist/modeldepot-linux-aarch64 on an ARM64 board
# (packaging/build-linux-arm64.sh), dist/modeldepot from `pyinstaller build.spec` on its own
# architecture; a file built for another architecture is passed over.
find_binary() {
  if [ -n "$binary" ]; then echo "$binary"; return; fi
  local arch want dir name candidate other=""
  arch="$(uname -m)"
  want="$(machine_of_arch "$arch")"
  for dir in "$here" "$here/../dist" "$here/.."; do
    for name in "modeldepot-linux-$arch" modeldepot; do
      candidate="$dir/$name"
      [ -f "$candidate" ] && [ -x "$candidate" ] || continue
      if [ "$(elf_machine "$candidate")" = "$want" ]; then echo "$candidate"; return; fi
      other="$candidate"
    done
  done
  [ -n "$other" ] && die "$other is built for another architecture than this $arch machine;" \
    "pass --binary PATH to the $arch build (on x86-64, packaging/build-linux-arm64.sh makes" \
    "dist/modeldepot-linux-aarch64)."
  die "no modeldepot binary for $arch found next to this script or in dist/; pass --binary PATH."
}

install_all() {
  local src
  src="$(find_binary)"
  [ -x "$src" ] || die "$src is not an executable file."
  "$src" version >/dev/null 2>&1 || die "$src does not run here (wrong architecture?)."

  say "Installing $src as $PREFIX/modeldepot"
  install -d -m 0755 "$PREFIX"
  # Copy then rename: a running service keeps its old inode and the new file appears whole.
  install -m 0755 "$src" "$PREFIX/.modeldepot.new"
  mv -f "$PREFIX/.modeldepot.new" "$PREFIX/modeldepot"
  [ -f "$here/../README.md" ] && install -m 0644 "$here/../README.md" "$PREFIX/README.md"
  ln -sfn "$PREFIX/modeldepot" "$LINK"

  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    say "Creating system user $SERVICE_USER"
    local nologin
    nologin="$(command -v nologin || echo /usr/sbin/nologin)"
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
      --shell "$nologin" --comment "ModelDepot service" "$SERVICE_USER"
  fi

  say "Installing $UNIT_DIR/$UNIT"
  install -m 0644 "$here/systemd/$UNIT" "$UNIT_DIR/$UNIT"
  if [ -f "$here/linux/modeldepot.desktop" ]; then
    install -D -m 0644 "$here/linux/modeldepot.desktop" "$DESKTOP_DIR/modeldepot.desktop"
  fi
  if [ -f "$here/../assets/modeldepot.png" ]; then
    install -D -m 0644 "$here/../assets/modeldepot.png" "$ICON_DIR/modeldepot.png"
  fi

  if have_systemd; then
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null
    if [ "$start" = yes ]; then
      # restart, not start: an upgrade must replace the running binary.
      systemctl restart "$UNIT"
      say "Started. systemctl status modeldepot; journalctl -u modeldepot"
    fi
  else
    say "systemd is not running here: the unit is installed but not enabled."
  fi
  say "Token: sudo -u $SERVICE_USER $PREFIX/modeldepot token --home $DATA_DIR"
}

uninstall_all() {
  if have_systemd && systemctl list-unit-files "$UNIT" >/dev/null 2>&1; then
    systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
  fi
  say "Removing the service, the binary and the desktop entry"
  rm -f "$UNIT_DIR/$UNIT" "$DESKTOP_DIR/modeldepot.desktop" "$ICON_DIR/modeldepot.png"
  [ "$(readlink "$LINK" 2>/dev/null)" = "$PREFIX/modeldepot" ] && rm -f "$LINK"
  rm -rf "$PREFIX"
  have_systemd && systemctl daemon-reload
  if [ "$purge" = yes ]; then
    say "Purging the data in $DATA_DIR and the user $SERVICE_USER"
    rm -rf "$DATA_DIR"
    if getent passwd "$SERVICE_USER" >/dev/null; then userdel "$SERVICE_USER" || true; fi
    if getent group "$SERVICE_USER" >/dev/null; then groupdel "$SERVICE_USER" 2>/dev/null || true; fi
  else
    say "Kept the data in $DATA_DIR (and the user $SERVICE_USER); --purge removes them."
  fi
}

case "$action" in
  install) install_all ;;
  uninstall) uninstall_all ;;
esac
