#!/usr/bin/env bash
# Create the project virtualenv with a Python >= 3.11, installing Debian's venv support when it is missing.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "error: $python not found; install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: $python is $("$python" -V 2>&1); MarketPulse needs Python 3.11 or newer" >&2
  exit 1
fi
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if command -v apt-get >/dev/null 2>&1; then
    echo "python venv support is missing: installing python3-venv" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
  else
    echo "error: '$python -m venv' failed; install your system's venv package" >&2
    exit 1
  fi
fi
