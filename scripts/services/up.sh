#!/usr/bin/env bash
# `marketpulse services up [redis|kafka|connect]` from the project's venv (ports and run dir from the config;
# override with MARKETPULSE__SERVICES__... environment variables, see docs/services.md).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
bash "$repo/scripts/services/install-deps.sh"
mp_services up "$@"
