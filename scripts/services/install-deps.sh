#!/usr/bin/env bash
# Install what `marketpulse services` needs to run Kafka, Kafka Connect and Redis without Docker:
#   redis-server, Java >= 17 (openjdk-17-jre-headless) and Maven (fetches the Kafka jars), via apt-get.
# Idempotent; silent when everything is present. Uses sudo when not root.
set -euo pipefail

java_major() {  # major version of `java` on PATH (or $JAVA_HOME), 0 when absent
  local java="java" line
  [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && java="$JAVA_HOME/bin/java"
  command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
  line="$("$java" -version 2>&1 | grep -m1 -Eo 'version "[0-9]+(\.[0-9]+)?' || true)"
  line="${line#version \"}"
  case "$line" in
    1.*) echo "${line#1.}" ;;   # 1.8 -> 8
    "") echo 0 ;;
    *) echo "${line%%.*}" ;;
  esac
}

missing=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ "$(java_major)" -ge 17 ] || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

[ "${#missing[@]}" -eq 0 ] && exit 0

# shellcheck source=_apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/_apt.sh"
apt_install "Redis, Java 17+ and Maven" "${missing[@]}"

if [ "$(java_major)" -lt 17 ]; then
  echo "error: openjdk-17 is installed but \`java\` is still $(java_major); set JAVA_HOME to a Java 17+ or run" \
       "\`sudo update-alternatives --config java\`" >&2
  exit 1
fi
for tool in redis-server mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool still missing after apt-get install" >&2; exit 1; }
done
