#!/usr/bin/env bash
# Installs fnbox for real, upgrades it, or removes everything it put on the host.
#
#   sudo ./install.sh                      build, then install fnbox, fnbox-runc-v1/v2 and the
#                                          fnbox.service unit (enable: systemctl enable --now fnbox)
#   sudo ./install.sh uninstall            stop and remove the unit and the binaries; release
#                                          spare disk layers (loop devices) and dead sandboxes' cgroups
#   sudo ./install.sh uninstall --purge    also delete fnbox's state: functions, code, tokens,
#                                          images (/var/lib/fnbox, /run/fnbox) and its cgroups
#
# Upgrading is installing again: the binary is replaced atomically and a running fnbox.service
# is restarted (functions, tokens and code live in the data directory and are kept).
#
# Variables: PREFIX (/usr/local), SYSTEMD_DIR (/etc/systemd/system), FNBOX_STATE_DIR
# (/var/lib/fnbox), FNBOX_RUN_DIR (/run/fnbox), LISTEN (127.0.0.1:8080, the unit's address),
# FNBOX_BIN (an already built fnbox: skips the build).
set -euo pipefail
cd "$(dirname "$0")"

PREFIX=${PREFIX:-/usr/local}
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
STATE=${FNBOX_STATE_DIR:-/var/lib/fnbox}
RUN=${FNBOX_RUN_DIR:-/run/fnbox}
LISTEN=${LISTEN:-127.0.0.1:8080}
BIN="$PREFIX/bin"
UNIT="$SYSTEMD_DIR/fnbox.service"

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "fnbox installs into $PREFIX and runs as root: run it with sudo"

# Whether systemd manages this machine (not so in most containers): then units are loaded.
systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

unit_text() {
  cat <<UNIT
[Unit]
Description=fnbox: serverless functions in strong sandboxes
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=FNBOX_STATE_DIR=$STATE FNBOX_RUN_DIR=$RUN
ExecStart=$BIN/fnbox serve --listen $LISTEN --data-dir $STATE/serve
Restart=on-failure
RestartSec=2
# SIGTERM lets fnbox stop its instances; sandboxes live in fnbox's own cgroups.
KillMode=mixed
TimeoutStopSec=30
# Every connection, instance socket and log pipe is a descriptor.
LimitNOFILE=65536
TasksMax=infinity

[Install]
WantedBy=multi-user.target
UNIT
}

install_fnbox() {
  local exe=${FNBOX_BIN:-}
  if [ -z "$exe" ]; then
    command -v cargo >/dev/null || die "cargo is missing: install a Rust toolchain (rustup.rs), or give FNBOX_BIN=path/to/fnbox"
    say "building (cargo build --release)"
    cargo build --release -q
    exe="${CARGO_TARGET_DIR:-target}/release/fnbox"
  fi
  [ -x "$exe" ] || die "$exe is not an executable fnbox"
  # What fnbox runs on the host (mkfs.ext4, nft, ip): installed when missing.
  . ./host-commands.sh
  fnbox_install_host_commands || die "install the packages above, then run install.sh again"
  mkdir -p "$BIN" "$SYSTEMD_DIR"
  # Copy then rename: a running fnbox keeps its old binary, the next start gets the new one.
  install -m 0755 "$exe" "$BIN/.fnbox.new"
  mv -f "$BIN/.fnbox.new" "$BIN/fnbox"
  for v in v1 v2; do ln -sfn fnbox "$BIN/fnbox-runc-$v"; done
  unit_text >"$UNIT.new"
  chmod 0644 "$UNIT.new"
  mv -f "$UNIT.new" "$UNIT"
  say "installed $BIN/fnbox, $BIN/fnbox-runc-v1, $BIN/fnbox-runc-v2 and $UNIT"
  if systemd_running; then
    systemctl daemon-reload
    if systemctl is-active --quiet fnbox.service; then
      systemctl restart fnbox.service
      say "fnbox.service restarted on the new version"
    else
      say "start fnbox serve now and at every boot with: systemctl enable --now fnbox"
    fi
  else
    say "systemd is not running here: start the server with $BIN/fnbox serve"
  fi
}

uninstall_fnbox() {
  local purge=$1
  if systemd_running && [ -e "$UNIT" ]; then
    systemctl disable --now fnbox.service 2>/dev/null || true
  fi
  rm -f "$UNIT"
  systemd_running && systemctl daemon-reload || true
  if [ -x "$BIN/fnbox" ]; then
    # Spare disk layers (loop devices) and cgroups of sandboxes that died.
    FNBOX_STATE_DIR=$STATE FNBOX_RUN_DIR=$RUN "$BIN/fnbox" cleanup || true
  fi
  rm -f "$BIN/fnbox" "$BIN/fnbox-runc-v1" "$BIN/fnbox-runc-v2"
  say "removed the binaries and the unit"
  if [ "$purge" = 1 ]; then
    rm -rf "$STATE" "$RUN"
    # The slot locks: shared by every fnbox on the host, so only when none is held (no
    # sandbox runs); flock -n fails on a held one.
    SLOTS=${FNBOX_SLOTS_DIR:-/run/fnbox-slots}
    if [ -d "$SLOTS" ] && ! [ -L "$SLOTS" ]; then
      held=0
      for f in "$SLOTS"/*; do
        [ -f "$f" ] || continue
        flock -n "$f" true || held=1
      done
      [ "$held" = 1 ] || rm -rf "$SLOTS"
    fi
    # fnbox's parent cgroups, innermost first (rmdir only succeeds once no sandbox is left).
    for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
      for d in "$root/fnbox/serve" "$root/fnbox"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
      done
    done
    say "removed fnbox's state ($STATE, $RUN) and its cgroups"
  else
    say "kept fnbox's state in $STATE (functions, code, tokens): add --purge to remove it"
  fi
}

case "${1:-install}" in
  install) install_fnbox ;;
  uninstall)
    case "${2:-}" in
      --purge) uninstall_fnbox 1 ;;
      "") uninstall_fnbox 0 ;;
      *) die "unknown option '$2': use 'uninstall' or 'uninstall --purge'" ;;
    esac ;;
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1': use install (the default), uninstall [--purge] or --help" ;;
esac
