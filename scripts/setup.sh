#!/usr/bin/env bash
# Installs what Retort needs to build and test, idempotently:
#   1. Debian packages (compilers' libraries, ninja, ccache; Go for the Ollama template oracle) when any is missing;
#   2. the project venv .venv with the pinned requirements.txt (LibTorch + test oracles),
#      rebuilt only when requirements.txt changes.
# Takes a second or two when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential ninja-build ccache libyaml-cpp-dev libsentencepiece-dev nlohmann-json3-dev
          libpcre2-dev libicu-dev libzstd-dev
          libgtest-dev git golang-go)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: creating .venv from requirements.txt (torch 2.11.0 is a few GB; pip caches it)"
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --progress-bar off -r requirements.txt
  echo "$wanted" > "$stamp"
fi
