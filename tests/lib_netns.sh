# tests/lib_netns.sh - sourced by tests/interop/run.sh and tests/turn/run.sh, which run in a network
# namespace of their own (every port free, nothing reaches the machine's network).
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
