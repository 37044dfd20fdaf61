#!/usr/bin/env bash
# Creates or removes a two-hypervisor Ferry topology (STT tunnel tests and demo), all
# inside network namespaces it makes; the host's own interfaces are never touched:
#   PREFIX-hv1, PREFIX-hv2  one ferryd each: port 0 = PREFIX-vN (its VM), port 1 = PREFIX-uN
#                           (the underlay). No addresses here: the tunnel endpoints
#                           192.168.251.N/24 live in ferryd, configured over REST.
#   PREFIX-vm1, PREFIX-vm2  a "VM": eth0 (veth peer of PREFIX-vN), MAC 02:fe:01:00:00:0N,
#                           IPv4 10.251.0.N/24, MTU 1500
#   underlay: PREFIX-u1 (in hv1) <-> PREFIX-u2 (in hv2), MTU 1500
# IPv6 is off in every namespace and every veth end has its offloads off, so af_packet
# sees whole frames with real checksums.
# usage: topology2.sh up PREFIX | down PREFIX
# PREFIX is at most 8 characters (interface names are limited to 15).
set -euo pipefail
cmd=${1:?up|down}; P=${2:?prefix}
[ ${#P} -le 8 ] || { echo "topology2: prefix '$P' longer than 8" >&2; exit 2; }

NAMESPACES=("$P-hv1" "$P-hv2" "$P-vm1" "$P-vm2")

new_ns() { # no IPv6: no router solicitations, no MLD, no DAD frames
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$1" link set lo up
}

no_offloads() { # namespace interface
  ip netns exec "$1" ethtool -K "$2" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
}

down() {
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}

case "$cmd" in
up)
  trap 'down' ERR
  for ns in "${NAMESPACES[@]}"; do new_ns "$ns"; done
  for k in 1 2; do
    ip link add "$P-v$k" netns "$P-hv$k" type veth peer name eth0 netns "$P-vm$k"
    ip -n "$P-vm$k" link set eth0 address "02:fe:01:00:00:0$k"
    ip -n "$P-vm$k" link set eth0 mtu 1500
    ip -n "$P-hv$k" link set "$P-v$k" mtu 1500
    no_offloads "$P-vm$k" eth0
    no_offloads "$P-hv$k" "$P-v$k"
    ip -n "$P-vm$k" addr add "10.251.0.$k/24" dev eth0
  done
  ip link add "$P-u1" netns "$P-hv1" type veth peer name "$P-u2" netns "$P-hv2"
  for k in 1 2; do
    ip -n "$P-hv$k" link set "$P-u$k" mtu 1500
    no_offloads "$P-hv$k" "$P-u$k"
    ip -n "$P-hv$k" link set "$P-u$k" up
    ip -n "$P-hv$k" link set "$P-v$k" up
    ip -n "$P-vm$k" link set eth0 up
  done
  trap - ERR
  ;;
down) down ;;
*) echo "topology2: unknown command $cmd" >&2; exit 2 ;;
esac
