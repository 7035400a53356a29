#!/usr/bin/env bash
# Kafka, Kafka Connect and Redis for the test suite, on the TEST ports, with their own run dir:
#
#   scripts/services/test-env.sh up     # start (already running ones are kept); prints the exports on stdout
#   scripts/services/test-env.sh down   # stop what `up` started
#   scripts/services/test-env.sh env    # only print the exports
#
#   eval "$(scripts/services/test-env.sh up)" && .venv/bin/pytest   # what `make test` does (and down after)
#
# Test ports (overridable): Kafka 19092 (controller 19093), Connect 18083, Redis 16379; run dir
# <repo>/.cache/test-services. The tests find them through MARKETPULSE_TEST_KAFKA_BOOTSTRAP,
# MARKETPULSE_TEST_CONNECT_URL and MARKETPULSE_TEST_REDIS_URL (tests/realservices.py); the run dir is exported as
# MARKETPULSE_TEST_SERVICES_RUN_DIR.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

kafka_port="${MARKETPULSE_TEST_KAFKA_PORT:-19092}"
controller_port="${MARKETPULSE_TEST_KAFKA_CONTROLLER_PORT:-19093}"
connect_port="${MARKETPULSE_TEST_CONNECT_PORT:-18083}"
redis_port="${MARKETPULSE_TEST_REDIS_PORT:-16379}"

export MARKETPULSE__SERVICES__RUN_DIR="${MARKETPULSE_TEST_RUN_DIR:-$repo/.cache/test-services}"
export MARKETPULSE__SERVICES__KAFKA__PORT="$kafka_port"
export MARKETPULSE__SERVICES__KAFKA__CONTROLLER_PORT="$controller_port"
export MARKETPULSE__SERVICES__CONNECT__PORT="$connect_port"
export MARKETPULSE__SERVICES__REDIS__PORT="$redis_port"

exports() {
  echo "export MARKETPULSE_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port"
  echo "export MARKETPULSE_TEST_KAFKA_CONTROLLER_PORT=$controller_port"
  echo "export MARKETPULSE_TEST_CONNECT_URL=http://127.0.0.1:$connect_port"
  echo "export MARKETPULSE_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0"
  # where the PID files and logs are (a test that restarts a service builds its Settings from this and the ports)
  echo "export MARKETPULSE_TEST_SERVICES_RUN_DIR=$(printf %q "$MARKETPULSE__SERVICES__RUN_DIR")"
}

case "${1:-}" in
  up)
    mp_services up redis kafka connect >&2  # messages on stderr: stdout is only the exports, for eval
    exports
    ;;
  down)
    mp_services down redis kafka connect
    ;;
  env)
    exports
    ;;
  *)
    echo "usage: $0 up|down|env" >&2
    exit 2
    ;;
esac
