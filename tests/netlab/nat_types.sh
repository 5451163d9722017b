#!/usr/bin/env bash
# tests/netlab/nat_types.sh - `parley nat` (RFC 5780 behaviour discovery) against `parley serve`
# through every NAT type the netlab emulates (/work/shared/netlab, see its README.md).
#
# For each type: `topo.sh up TYPE none` (type on site A) under a private NETLAB_PREFIX, start
# `parley serve` in the srv namespace on 203.0.113.10/203.0.113.11 ports 3478/3479, run
# `parley nat 203.0.113.10` in namespace a, compare mapped address / mapping / filtering / port
# allocation / nat type with what the type is built to do, tear the lab down.
#
# Environment:
#   PARLEY           parley binary (default: $(swift build --show-bin-path)/parley in the repo root)
#   NETLAB_RESULTS   directory for raw outputs (default: a new mktemp -d directory)
#   NETLAB_TOPO      topo.sh (default /work/shared/netlab/topo.sh)
#   NETLAB_PREFIX    namespace prefix (default pl<pid>, private to this run)
#   NAT_TYPES        space-separated subset of the types to run (default: all seven)
#
# Prints one line per type (PASS/FAIL + what was seen), ends with "N passed, M failed"; exit 1 on any
# failure. Needs root. The lab is always torn down (trap), and only processes this script started are
# killed (plus whatever topo.sh down removes from this run's own namespaces).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-pl$$}
NAT_WAN=198.51.100.2      # site A router's public address
A_PUBLIC=198.51.100.66    # site A client's address with type none

NAME=nat_types
source "$HERE/lib_harness.sh"
"$PARLEY" version >"$RESULTS/parley-version.txt" 2>&1
stop_server() { [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"; SERVER_PID=""; }

# type -> expected "mapped-ip|mapping|filtering|port allocation|nat type"
expected() {
  case "$1" in
    none)                 echo "$A_PUBLIC|none (no NAT)|endpoint-independent|preserved|open internet" ;;
    full-cone)            echo "$NAT_WAN|endpoint-independent|endpoint-independent|preserved|full cone" ;;
    restricted-cone)      echo "$NAT_WAN|endpoint-independent|address-dependent|preserved|restricted cone" ;;
    port-restricted)      echo "$NAT_WAN|endpoint-independent|address-and-port-dependent|preserved|port-restricted cone" ;;
    symmetric)            echo "$NAT_WAN|address-and-port-dependent|address-and-port-dependent|random|symmetric" ;;
    symmetric-sequential) echo "$NAT_WAN|address-and-port-dependent|address-and-port-dependent|sequential|symmetric (sequential ports)" ;;
    # stock Linux masquerade: port preservation makes it EIM for one client, conntrack makes it APDF
    masquerade)           echo "$NAT_WAN|endpoint-independent|address-and-port-dependent|preserved|port-restricted cone" ;;
    *) return 1 ;;
  esac
}

# field NAME FILE: the value after "NAME:" in parley nat's report
field() { sed -n "s/^$1:[[:space:]]*//p" "$2" | head -n 1; }

TYPES=${NAT_TYPES:-none full-cone restricted-cone port-restricted symmetric symmetric-sequential masquerade}
start_all=$(date +%s.%N)
echo "# parley nat vs parley serve in netlab (prefix $NETLAB_PREFIX, results in $RESULTS)"

for t in $TYPES; do
  out="$RESULTS/$t"
  mkdir -p "$out"
  t0=$(date +%s.%N)
  why=""
  if ! exp=$(expected "$t"); then
    echo "FAIL $t: unknown NAT type"; failed=$((failed + 1)); continue
  fi
  if ! "$TOPO" up "$t" none >"$out/topo-up.log" 2>&1; then
    why="topo.sh up failed ($(tail -n 1 "$out/topo-up.log"))"
  else
    rm -f "$out/ready"
    # topo.sh exec ends in `exec ip netns exec`, which execs parley: $! is the server's own pid
    "$TOPO" exec srv "$PARLEY" serve --signal-enabled no --stun-listen "$SRV1" --stun-alternate-address "$SRV2" \
      --stun-port 3478 --stun-alternate-port 3479 --stun-tcp no --http-listen 127.0.0.1 --http-port 0 \
      --ready-file "$out/ready" >"$out/serve.stdout" 2>"$out/serve.log" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
      grep -q '^stun_udp=' "$out/ready" 2>/dev/null && break
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if ! grep -q '^stun_udp=' "$out/ready" 2>/dev/null; then
      why="parley serve did not become ready ($(tail -n 1 "$out/serve.log"))"
    else
      n0=$(date +%s.%N)
      "$TOPO" exec a timeout 60 "$PARLEY" nat "$SRV1" >"$out/nat.txt" 2>"$out/nat.stderr"
      rc=$?
      n1=$(date +%s.%N)
      echo "rc=$rc seconds=$(awk -v a="$n0" -v b="$n1" 'BEGIN{printf "%.2f", b-a}')" >"$out/nat.rc"
      [ $rc -eq 0 ] || why="parley nat exit $rc: $(cat "$out/nat.txt" "$out/nat.stderr" 2>/dev/null | tr '\n' ' ' | cut -c1-200)"
    fi
    stop_server
  fi
  "$TOPO" down >/dev/null 2>&1

  mapped=$(field "mapped address" "$out/nat.txt" 2>/dev/null)
  mapping=$(field "mapping" "$out/nat.txt" 2>/dev/null)
  filtering=$(field "filtering" "$out/nat.txt" 2>/dev/null)
  alloc_line=$(field "port allocation" "$out/nat.txt" 2>/dev/null)
  alloc=${alloc_line%% *}
  ports=$(sed -n 's/.*(mapped ports \(.*\))$/\1/p' <<<"$alloc_line")
  natname=$(field "nat type" "$out/nat.txt" 2>/dev/null)
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')

  IFS='|' read -r e_ip e_mapping e_filtering e_alloc e_name <<<"$exp"
  if [ -z "$why" ]; then
    [ "${mapped%:*}" = "$e_ip" ] || why="$why mapped address ${mapped:-?} (want $e_ip:*);"
    [ "$mapping" = "$e_mapping" ] || why="$why mapping '${mapping}' (want '$e_mapping');"
    [ "$filtering" = "$e_filtering" ] || why="$why filtering '${filtering}' (want '$e_filtering');"
    [ "$alloc" = "$e_alloc" ] || why="$why port allocation '${alloc}' (want '$e_alloc');"
    [ "$natname" = "$e_name" ] || why="$why nat type '${natname}' (want '$e_name');"
  fi
  seen="mapped $mapped, mapping $mapping, filtering $filtering, ports $alloc ($ports), nat type \"$natname\" [${secs}s]"
  if [ -z "$why" ]; then
    echo "PASS $t: $seen" | tee "$out/verdict"
    passed=$((passed + 1))
  else
    echo "FAIL $t: ${why% ;}; seen: $seen" | tee "$out/verdict"
    failed=$((failed + 1))
  fi
done

echo "# total $(awk -v a="$start_all" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s; raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
