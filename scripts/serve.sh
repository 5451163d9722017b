#!/usr/bin/env bash
# Sets up whatever is missing, builds Parley (release) and runs the server in the foreground with the
# embedded defaults. Extra arguments go to `parley serve` (e.g. --config parley.conf, --stun-port 3478).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product parley
# The store defaults to /var/lib/parley (operators' location); this script keeps it in the checkout
# unless told otherwise, so it also works without root. PARLEY_DATA or --store-path override it.
args=("$@")
if [[ " $* " != *" --store-path"* ]]; then
    data=${PARLEY_DATA:-$PWD/.parley-data}
    args+=(--store-path "$data/parley.sqlite")
fi
exec .build/release/parley serve --foreground "${args[@]}"
