# Sourced by the scripts of scripts/services: the repository root, the venv, and `mp_services ARGS` which runs
# `marketpulse services ARGS` from the venv (or the same sub-app as a module when the CLI does not list it).
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "error: no virtualenv at $venv; run \`make dev\` first" >&2
  exit 1
fi

mp_services() {
  if "$venv/bin/python" -c 'import sys, marketpulse.cli as c; sys.exit(all(g.name != "services" for g in c.app.registered_groups))' 2>/dev/null; then
    "$venv/bin/marketpulse" services "$@"
  else
    "$venv/bin/python" -m marketpulse.services.cli "$@"
  fi
}
