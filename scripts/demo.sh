#!/usr/bin/env bash
# make demo: the lab, the appliance on AF_XDP, all three Service types answering, torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo: needs root (network namespaces, XDP, AF_XDP): run sudo make demo" >&2
  exit 1
fi
exec ./bin/bench demo --appliance bin/appliance --configs configs
