#!/usr/bin/env bash
# make demo: two "VM" namespaces joined through ferryd's af_packet ports, programmed
# over REST by ferry-control. Ctrl-C tears down everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

P=fdemo
SHM=ferry-demo
LISTEN=${FERRY_LISTEN:-127.0.0.1:8080}
API="http://$LISTEN"
RUN=.ferry-run/demo
mkdir -p "$RUN"
ferryd_pid=""; control_pid=""

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "demo: tearing down"
  [ -n "$control_pid" ] && kill "$control_pid" 2>/dev/null || true
  [ -n "$ferryd_pid" ] && kill "$ferryd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  scripts/topology.sh down "$P" 2
  rm -f "/dev/shm/$SHM"
  rm -rf "/var/run/dpdk/$SHM"
  echo "demo: processes, namespaces, veths and shared memory removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/topology.sh down "$P" 2
scripts/topology.sh up "$P" 2 --ip

echo "demo: starting ferryd in namespace $P-sw on $P-s1 (port 0) and $P-s2 (port 1)"
ip netns exec "$P-sw" dataplane/build/ferryd --no-huge -m 256 --no-pci --file-prefix "$SHM" -l 0,1 \
  --vdev "net_af_packet0,iface=$P-s1" --vdev "net_af_packet1,iface=$P-s2" --log-level=error \
  -- --shm-name "$SHM" --pmd-sleep-us 100 >"$RUN/ferryd.log" 2>&1 &
ferryd_pid=$!

echo "demo: starting ferry-control on $LISTEN"
node control/bin/ferry-control.js --shm-name "$SHM" --listen "$LISTEN" >"$RUN/control.log" 2>&1 &
control_pid=$!

for _ in $(seq 1 100); do
  curl -sf "$API/health" >/dev/null 2>&1 && break
  if ! kill -0 "$ferryd_pid" 2>/dev/null; then echo "demo: ferryd failed:"; cat "$RUN/ferryd.log"; exit 1; fi
  if ! kill -0 "$control_pid" 2>/dev/null; then echo "demo: ferry-control failed:"; cat "$RUN/control.log"; exit 1; fi
  sleep 0.1
done
curl -sf "$API/health" >/dev/null || { echo "demo: not healthy:"; curl -s "$API/health"; exit 1; }

echo "demo: ports:"
curl -s "$API/v1/ports" | node -e '
  const b = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const p of b.items) console.log(`  port ${p.port_id} ${p.name} ${p.driver} mac ${p.mac} link ${p.link.up ? "up" : "down"}`);'

echo "demo: before any flow, ferryd drops everything (table miss):"
ip netns exec "$P-vm1" ping -c 1 -W 1 10.250.0.2 >/dev/null 2>&1 && echo "  ping crossed?!" || echo "  ping 10.250.0.1 -> 10.250.0.2: no answer, as expected"

# that failed ARP left vm1's neighbour entry INCOMPLETE; start afresh so the next ping
# does not wait out the kernel's 1 s ARP retransmit
ip -n "$P-vm1" neigh flush all

echo "demo: installing flows over REST"
for f in '{"priority":100,"match":{"in_port":0},"actions":[{"type":"output","port":1}]}' \
         '{"priority":100,"match":{"in_port":1},"actions":[{"type":"output","port":0}]}'; do
  echo "  POST /v1/flows $f"
  curl -sf -X POST -H 'content-type: application/json' -d "$f" "$API/v1/flows" >/dev/null
done

echo "demo: ping vm1 -> vm2 through ferryd:"
ip netns exec "$P-vm1" ping -c 3 -i 0.2 10.250.0.2 | sed 's/^/  /'

echo "demo: a bad request gets a problem+json naming the field:"
curl -s -X POST -H 'content-type: application/json' \
  -d '{"match":{"in_port":7},"actions":[{"type":"output","port":1}]}' "$API/v1/flows" | sed 's/^/  /'
echo

echo "demo: counters in /metrics:"
curl -s "$API/metrics" | grep -E '^ferry_port_(rx|tx)_packets_total' | sed 's/^/  /'

cat <<TXT

Ferry is running. Try:
  curl $API/health
  curl $API/v1/ports
  curl $API/v1/flows
  curl $API/metrics
  ip netns exec $P-vm1 ping 10.250.0.2
Logs: $RUN/ferryd.log, $RUN/control.log.  Ctrl-C tears everything down.
TXT
wait "$ferryd_pid" "$control_pid"
