#!/usr/bin/env bash
# Sets up whatever is missing, builds Parley (release) and runs the server in the foreground with the
# embedded defaults. Extra arguments go to `parley serve` (e.g. --config parley.conf, --stun-port 3478).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product parley
exec .build/release/parley serve --foreground "$@"
