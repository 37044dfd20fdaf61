#!/usr/bin/env bash
# Creates or removes an N-hypervisor Ferry topology (cluster tests), all inside network
# namespaces it makes; the host's own interfaces are never touched:
#   PREFIX-hvK  one ferryd each: port 0 = PREFIX-vK (its VM), port 1 = PREFIX-uK (the
#               underlay). No addresses here: tunnel endpoints live in ferryd.
#   PREFIX-vmK  a "VM": eth0 (veth peer of PREFIX-vK), MAC 02:fe:02:00:00:0K,
#               IPv4 10.252.0.K/24, MTU 1500
#   PREFIX-ul   the underlay switch: Linux bridge br0 (no STP, no multicast snooping, no
#               netfilter), its ports PREFIX-bK are the veth peers of PREFIX-uK, MTU 1500
# IPv6 is off in every namespace and every veth end has its offloads off, so af_packet
# sees whole frames with real checksums.
# usage: topology-mesh.sh up PREFIX N | down PREFIX [N]      (N = 2..8)
# PREFIX is at most 8 characters (interface names are limited to 15). `up` removes what
# an earlier (crashed) run left first; `down` removes every namespace `up` could have made
# for PREFIX, whatever N was, and never fails.
set -Eeuo pipefail
cmd=${1:?up|down}; P=${2:?prefix}; N=${3:-}
[ ${#P} -le 8 ] || { echo "topology-mesh: prefix '$P' longer than 8" >&2; exit 2; }
MAXN=8

new_ns() { # no IPv6: no router solicitations, no MLD, no DAD frames
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$1" link set lo up
}

no_offloads() { # namespace interface
  ip netns exec "$1" ethtool -K "$2" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
}

down() {
  local k
  for k in $(seq 1 "$MAXN"); do
    ip netns del "$P-vm$k" 2>/dev/null || true
    ip netns del "$P-hv$k" 2>/dev/null || true
  done
  ip netns del "$P-ul" 2>/dev/null || true
  return 0
}

case "$cmd" in
up)
  [[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] && [ "$N" -le "$MAXN" ] ||
    { echo "topology-mesh: N must be 2..$MAXN (got '$N')" >&2; exit 2; }
  down
  trap 'down' ERR
  new_ns "$P-ul"
  # bridged frames stay out of netfilter in this namespace (per-netns sysctls; absent on
  # kernels where they are global, then nothing is changed)
  ip netns exec "$P-ul" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
    net.bridge.bridge-nf-call-arptables=0 >/dev/null 2>&1 || true
  ip -n "$P-ul" link add br0 type bridge stp_state 0 mcast_snooping 0
  ip -n "$P-ul" link set br0 mtu 1500
  for k in $(seq 1 "$N"); do
    new_ns "$P-hv$k"
    new_ns "$P-vm$k"
    # VM side
    ip link add "$P-v$k" netns "$P-hv$k" type veth peer name eth0 netns "$P-vm$k"
    ip -n "$P-vm$k" link set eth0 address "02:fe:02:00:00:0$k"
    ip -n "$P-vm$k" link set eth0 mtu 1500
    ip -n "$P-hv$k" link set "$P-v$k" mtu 1500
    no_offloads "$P-vm$k" eth0
    no_offloads "$P-hv$k" "$P-v$k"
    ip -n "$P-vm$k" addr add "10.252.0.$k/24" dev eth0
    # underlay side
    ip link add "$P-u$k" netns "$P-hv$k" type veth peer name "$P-b$k" netns "$P-ul"
    ip -n "$P-hv$k" link set "$P-u$k" mtu 1500
    ip -n "$P-ul" link set "$P-b$k" mtu 1500
    no_offloads "$P-hv$k" "$P-u$k"
    no_offloads "$P-ul" "$P-b$k"
    ip -n "$P-ul" link set "$P-b$k" master br0
  done
  ip -n "$P-ul" link set br0 up
  for k in $(seq 1 "$N"); do
    ip -n "$P-ul" link set "$P-b$k" up
    ip -n "$P-hv$k" link set "$P-u$k" up
    ip -n "$P-hv$k" link set "$P-v$k" up
    ip -n "$P-vm$k" link set eth0 up
  done
  trap - ERR
  ;;
down) down ;;
*) echo "topology-mesh: unknown command $cmd" >&2; exit 2 ;;
esac
