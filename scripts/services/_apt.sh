# Sourced by install-deps.sh and install-chromium.sh: `apt_install WHAT PKG...` installs Debian packages
# non-interactively (sudo when not root). Exits 1 with one line on stderr when there is no apt-get or no root/sudo;
# WHAT names what the user should install by hand then.
apt_install() {
  local what="$1"
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing $* and no apt-get here; install $what yourself" >&2
    exit 1
  fi
  local sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to install $*" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  echo "installing $* (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
