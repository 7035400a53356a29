#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser test (tests/e2e/test_dashboard_browser.py).
# Idempotent: silent and exit 0 when `chromium` is already on PATH. Uses sudo when not root.
# Exit 1 with one line on stderr when it cannot be installed (no apt-get, no root/sudo, apt failure).
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: chromium is missing and there is no apt-get here; install Chromium yourself" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to install chromium" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "installing chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "error: chromium still missing after apt-get install" >&2; exit 1; }
