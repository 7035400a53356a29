#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser test (tests/e2e/test_dashboard_browser.py).
# Idempotent: silent and exit 0 when `chromium` is already on PATH. Uses sudo when not root.
# Exit 1 with one line on stderr when it cannot be installed (no apt-get, no root/sudo, apt failure).
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

# shellcheck source=_apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/_apt.sh"
apt_install "Chromium" chromium
command -v chromium >/dev/null 2>&1 || { echo "error: chromium still missing after apt-get install" >&2; exit 1; }
