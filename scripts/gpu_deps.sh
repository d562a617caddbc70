#!/usr/bin/env bash
# On a networked Debian machine: fetch the .deb files of the system libraries Retort
# builds against and unpack them into third_party/prefix (git-ignored), for the GPU
# machine, which has no network. `run` carries the folder there (carry: third_party/prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(libyaml-cpp-dev libyaml-cpp0.7 libsentencepiece-dev libsentencepiece0 nlohmann-json3-dev
          libpcre2-dev libpcre2-8-0 libicu-dev libicu72 libzstd-dev libzstd1
          libgtest-dev)
mkdir -p third_party/debs
rm -rf third_party/prefix && mkdir -p third_party/prefix
(cd third_party/debs && apt-get -o APT::Sandbox::User=root download "${packages[@]}" >/dev/null)
for deb in third_party/debs/*.deb; do
  dpkg -x "$deb" third_party/prefix
done
echo "unpacked ${#packages[@]} packages into third_party/prefix ($(du -sh third_party/prefix | cut -f1))"
