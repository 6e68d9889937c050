#!/usr/bin/env bash
# Refresh requirements.lock: every package the build and CI install (runtime, test and build
# extras), pinned with the sha256 of each file the index offers, for every platform
# (`--universal`). Existing pins are kept unless you pass --upgrade (all) or
# --upgrade-package NAME; `.ci/run` installs with `pip install --require-hashes`.
#   pip install uv            (or: pip install -e '.[lock]')
#   packaging/lock.sh [--upgrade | --upgrade-package NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml --extra test --extra build --generate-hashes --universal \
  --python-version 3.11 --custom-compile-command "packaging/lock.sh" \
  -o requirements.lock "$@"
