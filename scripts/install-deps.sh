#!/usr/bin/env bash
# Installs what Ferry needs and is missing, on Debian as root: apt packages, then the
# npm dependencies. Quiet when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  dpdk dpdk-dev libdpdk-dev meson ninja-build pkg-config gcc g++ make python3
  iproute2 ethtool iputils-ping procps libpcap-dev curl
  prometheus docker-compose clang-14 libclang-rt-14-dev tshark iperf3 etcd-server etcd-client
  vsftpd tftpd-hpa
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${missing[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's prometheus package would start its service (listening on 0.0.0.0:9090) at
  # install; a policy-rc.d that exits 101 forbids that. The tests run their own on loopback.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "install-deps: Node $node_major found; Ferry's control service needs Node 20" >&2
  exit 1
fi

# The FFI forks compile at install; with Debian's nodejs the headers are in /usr/include/node
# and node-gyp must not try to download them.
if [ -d /usr/include/node ]; then
  export npm_config_nodedir=/usr
fi
stamp=node_modules/.ferry-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "install-deps: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
