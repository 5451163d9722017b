# tests/lib_netns.sh - sourced by tests/interop/run.sh and tests/turn/run.sh (after they define note, PY and
# ROOT), which run in a network namespace of their own (every port free, nothing reaches the machine's network).
#
#   run_in_private_netns TAG "$@"
#
# Outside the namespace (PARLEY_<TAG>_NETNS unset): runs the caller's install_deps, finds the parley binary
# (PARLEY, else `swift build --show-bin-path`, building it when missing) and re-executes the calling script
# under `unshare -n` (as root) or `unshare -r -n` (a user namespace grants the netns), with PARLEY,
# PARLEY_<TAG>_NETNS=1 and PARLEY_<TAG>_START (the start time) exported; on failure prints "0 passed,
# 1 failed" and exits 1. Inside: sets START, brings lo up and returns.
run_in_private_netns() {
  local tag=$1 flag start
  shift
  flag="PARLEY_${tag}_NETNS"
  start="PARLEY_${tag}_START"
  if [ -z "${!flag:-}" ]; then
    START=$(date +%s.%N)
    install_deps || { echo "0 passed, 1 failed"; exit 1; }
    if [ -z "${PARLEY:-}" ]; then
      PARLEY="$(cd "$ROOT" && swift build --show-bin-path)/parley"
      if [ ! -x "$PARLEY" ]; then
        note "building parley"
        (cd "$ROOT" && swift build --product parley >&2) || { echo "0 passed, 1 failed"; exit 1; }
      fi
    fi
    [ -x "$PARLEY" ] || { note "no parley binary at $PARLEY"; echo "0 passed, 1 failed"; exit 1; }
    export PARLEY "$flag=1" "$start=$START"
    if [ "$(id -u)" = 0 ]; then
      exec unshare -n -- bash "$0" "$@"
    else
      exec unshare -r -n -- bash "$0" "$@"
    fi
  fi
  START=${!start:-$(date +%s.%N)}
  ip link set lo up
}

# apt_install_missing COMMAND:PACKAGE... - installs the Debian packages whose command is missing (as root
# only; coturn's package would start a TURN server on the host, so service starts are forbidden for the
# install by a temporary policy-rc.d, as shared/netlab/topo.sh does). Returns 1 on failure.
apt_install_missing() {
  local missing="" pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair##*:}"
  done
  missing=$(echo "$missing" | tr ' ' '\n' | sort -u | tr '\n' ' ')
  [ -n "${missing// /}" ] || return 0
  [ "$(id -u)" = 0 ] || { note "missing packages:$missing (run as root to install them)"; return 1; }
  note "installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  local rcd=/usr/sbin/policy-rc.d made_rcd=0 rc=0
  if [ ! -e "$rcd" ]; then printf '#!/bin/sh\nexit 101\n' > "$rcd"; chmod +x "$rcd"; made_rcd=1; fi
  apt-get update -qq >/dev/null 2>&1 || rc=$?
  # shellcheck disable=SC2086
  [ $rc -ne 0 ] || apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || rc=$?
  [ $made_rcd = 0 ] || rm -f "$rcd"
  [ $rc -eq 0 ] || { note "apt-get failed ($rc)"; return 1; }
}

# pip_install_missing MODULE... - installs the Python modules "$PY" cannot import (PyPI). Returns 1 on failure.
pip_install_missing() {
  local mod
  for mod in "$@"; do
    if ! "$PY" -c "import $mod" >/dev/null 2>&1; then
      note "installing $mod (pip)"
      "$PY" -m pip install -q --disable-pip-version-check "$mod" >/dev/null 2>&1 \
        || "$PY" -m pip install -q --disable-pip-version-check --break-system-packages "$mod" >/dev/null 2>&1 \
        || { note "pip install $mod failed"; return 1; }
    fi
  done
}
