#!/usr/bin/env bash
# make demo: two "hypervisors", each a ferryd with one "VM" namespace on its port 0, joined
# by an STT tunnel over an underlay veth (port 1), all programmed over REST by one
# ferry-control per node. Ctrl-C tears down everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

P=fdemo
LISTEN1=${FERRY_LISTEN:-127.0.0.1:8080}
LISTEN2=${FERRY_LISTEN2:-127.0.0.1:8081}
API1="http://$LISTEN1"
API2="http://$LISTEN2"
RUN=.ferry-run/demo
mkdir -p "$RUN"
pids=()

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "demo: tearing down"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/topology2.sh down "$P"
  for k in 1 2; do
    rm -f "/dev/shm/ferry-demo-hv$k" "/dev/shm/ferry-demo-hv$k.doorbell"
    rm -rf "/var/run/dpdk/ferry-demo-hv$k"
  done
  echo "demo: processes, namespaces, veths and shared memory removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

api() { [ "$1" = 1 ] && echo "$API1" || echo "$API2"; }
# runs curl, printing the command first, quoted for a shell (the demo is also a how-to)
show_curl() {
  local line="  \$ curl" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+-]+$ ]]; then line+=" $a"; else line+=" '$a'"; fi # (no ' in any)
  done
  echo "$line" >&2
  curl -sS "$@"
}

scripts/topology2.sh down "$P"
scripts/topology2.sh up "$P"
echo "demo: namespaces $P-hv1, $P-hv2 (one ferryd each), $P-vm1 (10.251.0.1), $P-vm2 (10.251.0.2);"
echo "      underlay veth $P-u1 <-> $P-u2; the tunnel endpoints 192.168.251.1/.2 live in ferryd, not Linux"

for k in 1 2; do
  listen=$LISTEN1; [ "$k" = 2 ] && listen=$LISTEN2
  shm="ferry-demo-hv$k"
  echo "demo: hv$k: ferryd on $P-v$k (port 0, its VM) and $P-u$k (port 1, the underlay); ferry-control on $listen"
  ip netns exec "$P-hv$k" dataplane/build/ferryd --no-huge -m 256 --no-pci --file-prefix "$shm" -l 0,1 \
    --vdev "net_af_packet0,iface=$P-v$k" --vdev "net_af_packet1,iface=$P-u$k" --log-level=error \
    -- --shm-name "$shm" --pmd-sleep-us 50 >"$RUN/ferryd-hv$k.log" 2>&1 &
  pids+=($!)
  # the demo starts from an empty desired state each time (a real host keeps /var/lib/ferry/NAME)
  rm -rf "$RUN/state-hv$k"
  control/bin/ferry-control.js --shm-name "$shm" --listen "$listen" --state-dir "$RUN/state-hv$k" >"$RUN/control-hv$k.log" 2>&1 &
  pids+=($!)
done

for k in 1 2; do
  for _ in $(seq 1 200); do
    curl -sf "$(api $k)/health" >/dev/null 2>&1 && break
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then echo "demo: a process failed:"; tail -n 20 "$RUN"/*.log; exit 1; fi
    done
    sleep 0.1
  done
  curl -sf "$(api $k)/health" >/dev/null || { echo "demo: hv$k not healthy:"; curl -s "$(api $k)/health"; exit 1; }
done

echo "demo: before any tunnel or flow, ferryd drops everything (table miss):"
ip netns exec "$P-vm1" ping -c 1 -W 1 10.251.0.2 >/dev/null 2>&1 && echo "  ping crossed?!" || echo "  ping 10.251.0.1 -> 10.251.0.2: no answer, as expected"
# that failed ARP left vm1's neighbour entry INCOMPLETE; start afresh so the next ping
# does not wait out the kernel's 1 s ARP retransmit
ip -n "$P-vm1" neigh flush all

echo "demo: an STT tunnel on each node (tun_id set by the flows: key \"flow\"):"
for k in 1 2; do
  body="{\"name\":\"stt0\",\"local_ip\":\"192.168.251.$k/24\",\"remote_ip\":\"192.168.251.$((3 - k))\",\"key\":\"flow\",\"underlay_port\":1}"
  show_curl -X POST -H 'content-type: application/json' -d "$body" "$(api $k)/v1/tunnels" 2>&1 | sed '2,$s/^/    /'
  echo
done

echo "demo: a bad request gets a problem+json naming the field:"
show_curl -X POST -H 'content-type: application/json' \
  -d '{"name":"bad","local_ip":"192.168.251.300/24","remote_ip":"flow","underlay_port":1}' "$API1/v1/tunnels" 2>&1 | sed '2,$s/^/    /'
echo

# VM (port 0) <-> tunnel (port 2), network 0x10, through the connection tracker (zone 1)
FLOWS=$(cat <<'TXT'
table=0,priority=100,in_port=0,arp,actions=set_field:0x10->tun_id,output:2
table=0,priority=100,in_port=2,tun_id=0x10,arp,actions=output:0
table=0,priority=90,in_port=0,ip,actions=ct(table=1,zone=1)
table=0,priority=90,in_port=2,tun_id=0x10,ip,actions=ct(table=2,zone=1)
table=1,priority=100,ct_state=+trk+new,actions=ct(commit,zone=1),set_field:0x10->tun_id,output:2
table=1,priority=101,ct_state=+trk+est,actions=set_field:0x10->tun_id,output:2
table=1,priority=102,ct_state=+trk+rel,actions=set_field:0x10->tun_id,output:2
table=1,priority=103,ct_state=+trk+inv,actions=drop
table=2,priority=100,ct_state=+trk+new,actions=ct(commit,zone=1),output:0
table=2,priority=101,ct_state=+trk+est,actions=output:0
table=2,priority=102,ct_state=+trk+rel,actions=output:0
table=2,priority=103,ct_state=+trk+inv,actions=drop
TXT
)
echo "$FLOWS" >"$RUN/flows.txt"
echo "demo: the same flows on both nodes (ovs-ofctl text, $RUN/flows.txt):"
sed 's/^/    /' "$RUN/flows.txt"
for k in 1 2; do
  show_curl -X POST -H 'content-type: text/plain' --data-binary "@$RUN/flows.txt" "$(api $k)/v1/flows" -o /dev/null -w '    HTTP %{http_code}\n'
done

echo "demo: ping vm1 -> vm2 across the tunnel (ARP for 10.251.0.2 crosses it too; ferryd ARPs for 192.168.251.2):"
ip netns exec "$P-vm1" ping -c 3 -i 0.2 10.251.0.2 | sed 's/^/  /'
echo "demo: and 1472-byte pings (1514-byte frames: two STT segments each):"
ip netns exec "$P-vm1" ping -c 3 -i 0.2 -s 1472 10.251.0.2 | sed 's/^/  /'

echo "demo: the tunnels:"
for k in 1 2; do
  echo "  \$ curl $(api $k)/v1/tunnels"
  curl -s "$(api $k)/v1/tunnels" | node -e '
    const b = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const t of b.items) console.log(`    ${t.name} port ${t.port} ${t.local_ip} -> ${t.remote_ip} key ${t.key} via port ${t.underlay_port}` +
      ` rx ${t.stats?.rx_packets ?? "?"} tx ${t.stats?.tx_packets ?? "?"} packets`);'
done
echo "  \$ curl $API1/v1/neighbours"
curl -s "$API1/v1/neighbours" | node -e '
  const b = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const n of b.items) console.log(`    port ${n.port} ${n.ip} ${n.mac} ${n.state}`);'

echo "demo: STT counters in hv1's /metrics:"
curl -s "$API1/metrics" | grep -E '^ferry_(stt_(tx|rx)_(frames|segments)_total|tunnel_(rx|tx)_packets_total|arp_packets_total)' | sed 's/^/  /'

cat <<TXT

Ferry is running: hv1 on $API1, hv2 on $API2. Try:
  curl $API1/v1/tunnels
  curl $API1/v1/neighbours
  curl $API1/metrics | grep -E 'ferry_(stt|tunnel|arp)_'
  curl '$API1/v1/conntrack?zone=1'
  ip netns exec $P-vm1 ping 10.251.0.2
  ip netns exec $P-vm2 iperf3 -s -1 & ip netns exec $P-vm1 iperf3 -c 10.251.0.2
Logs: $RUN/ferryd-hv{1,2}.log, $RUN/control-hv{1,2}.log.  Ctrl-C tears everything down.
TXT
wait
