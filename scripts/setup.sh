#!/usr/bin/env bash
# Installs what Parley needs on Debian 12 when it is missing. Idempotent; quiet when all is there.
#   scripts/setup.sh          build dependencies (C libraries Swift links against)
#   scripts/setup.sh --test   plus the real third-party peers the test suite runs against
set -euo pipefail

build_pkgs=(zlib1g-dev libopus-dev libsoxr-dev libsqlite3-dev openssl)
test_pkgs=(coturn stun-client iproute2 nftables iptables conntrack python3 python3-pip tcpdump iputils-ping gcc sox tshark)

want=("${build_pkgs[@]}")
[[ "${1:-}" == "--test" ]] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    # coturn's package would start a system-wide turnserver where systemd runs; forbid service starts
    # during the install unless the machine already has a policy.
    added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    trap '[[ $added_policy == 1 ]] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
    # aioice: STUN/TURN/ICE peer (tests/interop, tests/turn); aiortc: WebRTC peers for the relay-only
    # audio call in tests/turn (brings PyAV and numpy as wheels).
    for mod in aioice aiortc; do
        python3 -c "import $mod" 2>/dev/null || {
            echo "setup: installing $mod (PyPI)" >&2
            python3 -m pip install -q "$mod" 2>/dev/null || python3 -m pip install -q --break-system-packages "$mod"
        }
    done
fi
