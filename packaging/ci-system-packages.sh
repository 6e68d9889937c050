#!/usr/bin/env bash
# Debian packages the test suite uses: wrk for benchmarks, systemd-analyze for the unit check,
# chromium and its driver for the dashboard's browser tests (Selenium never downloads a browser).
set -euo pipefail
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
