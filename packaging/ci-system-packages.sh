#!/usr/bin/env bash
# Debian packages the test suite uses: wrk for benchmarks, systemd-analyze for the unit check.
set -euo pipefail
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
