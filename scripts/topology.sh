#!/usr/bin/env bash
# Creates or removes a Ferry test topology, all inside network namespaces it makes:
#   PREFIX-sw   ferryd's namespace, holding the switch ends PREFIX-s1 .. PREFIX-sN
#   PREFIX-vmK  a "VM": interface eth0 (veth peer of PREFIX-sK), MAC 02:fe:00:00:00:0K,
#               IPv4 10.250.0.K/24 when --ip is given; IPv6 off so the kernel stays quiet
# usage: topology.sh up PREFIX N [--ip] | down PREFIX N | addr PREFIX N
# PREFIX is at most 8 characters (interface names are limited to 15).
set -euo pipefail
cmd=${1:?up|down|addr}; P=${2:?prefix}; N=${3:-2}
[ ${#P} -le 8 ] || { echo "topology: prefix '$P' longer than 8" >&2; exit 2; }

quiet_ns() { # no IPv6: no router solicitations, no MLD, no DAD frames
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

addr() {
  for k in $(seq 1 "$N"); do
    ip -n "$P-vm$k" addr replace "10.250.0.$k/24" dev eth0
  done
}

case "$cmd" in
up)
  ip netns add "$P-sw"; quiet_ns "$P-sw"
  ip -n "$P-sw" link set lo up
  for k in $(seq 1 "$N"); do
    ip netns add "$P-vm$k"; quiet_ns "$P-vm$k"
    ip -n "$P-vm$k" link set lo up
    ip link add "$P-s$k" netns "$P-sw" type veth peer name eth0 netns "$P-vm$k"
    ip -n "$P-vm$k" link set eth0 address "02:fe:00:00:00:0$k"
    # the switch end never offloads: af_packet sees whole frames with real checksums
    ip netns exec "$P-vm$k" ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true
    ip netns exec "$P-sw" ethtool -K "$P-s$k" tx off rx off >/dev/null 2>&1 || true
    ip -n "$P-sw" link set "$P-s$k" up
    ip -n "$P-vm$k" link set eth0 up
  done
  if [ "${4:-}" = "--ip" ]; then addr; fi
  ;;
addr) addr ;;
down)
  for k in $(seq 1 "$N"); do ip netns del "$P-vm$k" 2>/dev/null || true; done
  ip netns del "$P-sw" 2>/dev/null || true
  ;;
*) echo "topology: unknown command $cmd" >&2; exit 2 ;;
esac
