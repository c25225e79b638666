#!/bin/bash
# Installs the Debian packages the project's tests, demo and harness need. Idempotent; needs root.
# The mirror comes from apt's own configuration: no registry host is named here.
set -euo pipefail
PKGS=(
  sanlock python3-sanlock          # interop: the real sanlock is the judge of our on-disk format
  util-linux                       # losetup, blockdev
  systemd-container debootstrap    # test hosts (systemd-nspawn) and their image
  openssh-client openssh-server    # ansible and paramiko reach the test hosts over ssh
  iproute2 procps kmod
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
