/* NORMAL over STT tunnels: three Ferry "hypervisors" A, B, C in one process, a full
 * mesh of fixed-remote tunnels (each node has one to each peer), the flow
 * priority=0,actions=normal on each, as OVS users build a mesh of per-peer tunnel ports
 * on one bridge.
 *
 * Every node has ethdev 0 (its VM), 1 (its underlay) and 2 (a second local VM); the
 * nodes take turns on those three ethdevs (the test runs one node at a time and takes
 * what it sent right after), so each has its own worker, flow table, tunnel table,
 * neighbour cache and MAC table as separate ferryds would. The underlays hang off one
 * switch: what a node's underlay sends goes to the node with that destination MAC, a
 * broadcast to every other node. ARP for the tunnel endpoints, encapsulation,
 * reassembly and tunnel port matching run as in production. */
#include <string.h>
#include <rte_byteorder.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_ring.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "test_ring_ports.h"
#include "../common/mbuf_bytes.h"
#include "../ports/ports.h"
#include "actions.h"
#include "worker.h"

#define N_ETH 3
#define VM 0
#define UL 1
#define VM2 2
#define N_NODES 3
#define RING 1024
#define MAX_FLOWS 16
#define LEN 100
#define VNI 0x10
/* the tunnel port on node self to peer: the first numbers after the ethdevs */
#define TUN(self, peer) ((uint32_t)(N_ETH + ((peer) < (self) ? (peer) : (peer) - 1)))
#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static struct rte_ring *rx_ring[N_ETH], *tx_ring[N_ETH];
static struct ferry_ports ports;
static uint64_t now = 1000000000000ull;
static uint64_t next_id;
static unsigned mbufs_at_start;

struct node {
	unsigned idx;
	struct ferry_flow_table ft;
	struct ferry_tunnel_table tt;
	struct ferry_worker w;
	struct ferry_worker_stats ws __rte_cache_aligned;
	struct ferry_flow_stats fs[MAX_FLOWS];
	struct ferry_table_stats ts[FERRY_N_TABLES];
	struct rte_ether_addr ul_mac;       /* its underlay port's */
	uint8_t vm_mac[6], vm2_mac[6];
	struct rte_mbuf *got[N_ETH][RING];  /* what it sent out of each ethdev, not yet looked at */
	unsigned n_got[N_ETH];
	unsigned plain;                     /* frames on its underlay that are neither ARP nor STT from it */
};
static struct node nodes[N_NODES];
#define A (&nodes[0])
#define B (&nodes[1])
#define C (&nodes[2])

static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint32_t underlay_ip(const struct node *n)
{
	return IP4(192, 168, 1, n->idx + 1);
}

/* ---------------------------------------------------------------- packets */

/* An Ethernet/IPv4/UDP frame of LEN bytes from src to dst; tag marks its payload. */
static struct rte_mbuf *frame(const uint8_t *dst, const uint8_t *src, uint8_t tag, uint8_t *ref)
{
	uint8_t buf[LEN];
	memset(buf, 0, sizeof(buf));
	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	buf[12] = 0x08;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + 14);
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16(LEN - 14);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(IP4(10, 0, 0, src[5]));
	ip->dst_addr = rte_cpu_to_be_32(dst[0] & 1 ? IP4(10, 0, 0, 255) : IP4(10, 0, 0, dst[5]));
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	uint8_t *l4 = buf + 34;
	l4[0] = 0x30, l4[1] = 0x39, l4[2] = 0x30, l4[3] = 0x39;
	l4[5] = LEN - 34;
	for (unsigned i = 42; i < LEN; i++)
		buf[i] = (uint8_t)(tag + i);
	if (ref)
		memcpy(ref, buf, LEN);
	struct rte_mbuf *m = ferry_mbuf_from_bytes(ports.pool[0], buf, LEN, 0);
	if (m == NULL) {
		fprintf(stderr, "out of mbufs\n");
		exit(1);
	}
	return m;
}

/* ---------------------------------------------------------------- nodes and the wire */

static void add_normal(struct node *n, bool set_vni)
{
	struct ferry_rule r;
	memset(&r, 0, sizeof(r)); /* matches everything */
	r.id = ++next_id;
	if (set_vni) {
		uint64_t vni = VNI;
		struct ferry_act_set_field a = { .hdr = { .type = FERRY_ACTION_TYPE_SET_FIELD, .len = sizeof(a) },
						 .field = FERRY_FIELD_ID_TUN_ID };
		memcpy(a.value, &vni, 8);
		memset(a.mask, 0xff, 8);
		memcpy(r.actions, &a, sizeof(a));
		r.actions_len = sizeof(a);
	}
	struct ferry_act_hdr h = { .type = FERRY_ACTION_TYPE_NORMAL, .len = sizeof(h) };
	memcpy(r.actions + r.actions_len, &h, sizeof(h));
	r.actions_len = (uint16_t)(r.actions_len + sizeof(h));
	char why[FERRY_ERR_MSG_LEN] = "";
	uint32_t slot = 0;
	uint64_t mask = ferry_ports_mask_first(N_ETH) | ferry_tunnel_ports_mask(&n->tt);
	int st = ferry_actions_validate(r.actions, r.actions_len, 0, mask, why, sizeof(why));
	if (st == FERRY_STATUS_OK)
		st = ferry_flow_table_add(&n->ft, &r, false, &slot, why, sizeof(why));
	if (st != FERRY_STATUS_OK)
		fprintf(stderr, "  flow refused: %s\n", why);
	CHECK_EQ(st, FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_commit_batch(&n->ft), FERRY_STATUS_OK);
}

/* n's tunnel to peer: fixed remote, key VNI (or flow-based key); peer NULL: a
 * flow-based remote on port FLOW_TUN */
#define FLOW_TUN 20u
static void tunnel(struct node *n, const struct node *peer, uint32_t flags)
{
	struct ferry_tunnel_config c = {
		.port = peer ? TUN(n->idx, peer->idx) : FLOW_TUN, .flags = flags, .key = VNI, .local_plen = 24, .ttl = 64,
		.dst_port = FERRY_STT_PORT, .underlay_port = UL, .underlay_mtu = 1500 };
	uint32_t l = rte_cpu_to_be_32(underlay_ip(n)), rm = peer ? rte_cpu_to_be_32(underlay_ip(peer)) : 0;
	memcpy(c.local_ip, &l, 4);
	memcpy(c.remote_ip, &rm, 4);
	char why[FERRY_ERR_MSG_LEN] = "";
	int st = ferry_tunnel_set(&n->tt, &c, why, sizeof(why));
	if (st != FERRY_STATUS_OK)
		fprintf(stderr, "  tunnel refused: %s\n", why);
	CHECK_EQ(st, FERRY_STATUS_OK);
}

/* Takes what n just sent: its VM ports' frames are kept for the test, its underlay's
 * (checked: ARP or STT from its own address) for the wire. */
static void collect(struct node *n)
{
	for (uint16_t p = 0; p < N_ETH; p++) {
		unsigned k = rte_ring_dequeue_burst(tx_ring[p], (void **)&n->got[p][n->n_got[p]], RING - n->n_got[p], NULL);
		if (p == UL) {
			for (unsigned i = n->n_got[p]; i < n->n_got[p] + k; i++) {
				const struct rte_mbuf *m = n->got[p][i];
				const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
				bool from_us = memcmp(d + 6, &n->ul_mac, 6) == 0;
				bool arp = d[12] == 0x08 && d[13] == 0x06;
				bool stt = d[12] == 0x08 && d[13] == 0x00 && m->data_len >= 38 && d[23] == IPPROTO_TCP &&
					   (d[36] << 8 | d[37]) == FERRY_STT_PORT;
				n->plain += !(from_us && (arp || stt));
			}
		}
		n->n_got[p] += k;
	}
}

static void run(struct node *n, uint16_t in_port, struct rte_mbuf **pkts, uint16_t cnt)
{
	n->w.now_ns = now;
	n->w.version = ferry_flow_table_version(&n->ft);
	n->w.headers_needed = n->ft.headers_needed;
	n->w.tn = n->w.tunnels ? ferry_tunnels_read(&n->tt) : NULL;
	for (uint16_t i = 0; i < cnt; i += FERRY_BURST)
		ferry_worker_process_burst(&n->w, in_port, pkts + i, (uint16_t)RTE_MIN(FERRY_BURST, cnt - i));
	if (n->w.tn != NULL)
		ferry_tunnel_io_poll(&n->w);
	collect(n);
}

/* The underlay switch: carries what the nodes put on their underlays until nothing
 * moves (ARP, replies, the held frames they release, the STT segments). */
static void settle(void)
{
	for (int round = 0; round < 16; round++) {
		static struct rte_mbuf *in[N_NODES][RING];
		unsigned n_in[N_NODES] = { 0 }, moved = 0;
		for (unsigned s = 0; s < N_NODES; s++) {
			struct node *from = &nodes[s];
			for (unsigned i = 0; i < from->n_got[UL]; i++) {
				struct rte_mbuf *m = from->got[UL][i];
				/* a NIC's rx hands over plain single packets with no offload flags */
				if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
					struct rte_mbuf *c = rte_pktmbuf_copy(m, ports.pool[0], 0, UINT32_MAX);
					rte_pktmbuf_free(m);
					m = c;
				}
				m->ol_flags = 0;
				const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
				for (unsigned t = 0; t < N_NODES; t++) {
					if (t == s || (!(d[0] & 1) && memcmp(d, &nodes[t].ul_mac, 6) != 0))
						continue;
					struct rte_mbuf *c = (d[0] & 1) ? rte_pktmbuf_copy(m, ports.pool[0], 0, UINT32_MAX) : m;
					if (c == NULL || n_in[t] == RING) { /* a storm: the test has failed */
						CHECK(!"the wire overflowed");
						if (c != m)
							rte_pktmbuf_free(c);
						continue;
					}
					in[t][n_in[t]++] = c;
					if (c == m)
						m = NULL;
				}
				rte_pktmbuf_free(m); /* a broadcast's original, or nobody's */
				moved++;
			}
			from->n_got[UL] = 0;
		}
		if (moved == 0)
			return;
		for (unsigned t = 0; t < N_NODES; t++)
			run(&nodes[t], UL, in[t], (uint16_t)n_in[t]); /* and held frames whose next hop answered */
	}
	CHECK(!"the underlay never settled");
}

/* Of what n sent out of port since it was last looked at: how many there were
 * (*total) and how many equal ref. They are freed. */
static unsigned got(struct node *n, uint16_t port, const uint8_t *ref, unsigned *total)
{
	unsigned same = 0;
	for (unsigned i = 0; i < n->n_got[port]; i++) {
		struct rte_mbuf *m = n->got[port][i];
		uint8_t buf[LEN];
		const uint8_t *d = m->pkt_len == LEN ? rte_pktmbuf_read(m, 0, LEN, buf) : NULL;
		same += ref != NULL && d != NULL && memcmp(d, ref, LEN) == 0;
	}
	rte_pktmbuf_free_bulk(n->got[port], n->n_got[port]);
	if (total)
		*total = n->n_got[port];
	n->n_got[port] = 0;
	return same;
}

/* how many frames every VM port of every node received since last looked at (freed) */
static unsigned vm_frames_everywhere(void)
{
	unsigned sum = 0, t;
	for (unsigned i = 0; i < N_NODES; i++) {
		got(&nodes[i], VM, NULL, &t), sum += t;
		got(&nodes[i], VM2, NULL, &t), sum += t;
	}
	return sum;
}

static void node_init(struct node *n, unsigned idx)
{
	n->idx = idx;
	n->ul_mac = (struct rte_ether_addr){ { 0x02, 0xf0, 0, 0, (uint8_t)idx, 1 } };
	const uint8_t vm[6] = { 2, 0xfe, 0, 0, (uint8_t)idx, (uint8_t)(10 * idx + 1) };
	memcpy(n->vm_mac, vm, 6);
	memcpy(n->vm2_mac, vm, 6);
	n->vm2_mac[5]++;
	if (ferry_flow_table_init(&n->ft, MAX_FLOWS, N_ETH, NULL, NULL, NULL) != 0 ||
	    ferry_tunnel_table_init(&n->tt, N_ETH, NULL) != 0)
		exit(1);
	n->tt.underlay[UL].mac = n->ul_mac;
	struct ferry_worker *w = &n->w;
	w->id = (uint16_t)idx, w->txq = 0, w->n_ports = N_ETH, w->qsv = NULL;
	w->stats = &n->ws, w->flow_stats = n->fs, w->table_stats = n->ts;
	w->flows = &n->ft, w->version = ferry_flow_table_version(&n->ft);
	w->pool = ports.pool[0];
	w->tunnels = &n->tt;
	w->neigh = ferry_neigh_create(0);
	w->l2 = rte_zmalloc("test_l2", sizeof(struct ferry_l2), RTE_CACHE_LINE_SIZE);
	if (w->neigh == NULL || w->l2 == NULL || ferry_worker_init(w, 0) != 0)
		exit(1);
}

static void node_fini(struct node *n)
{
	ferry_worker_fini(&n->w);
	rte_free(n->w.l2);
	ferry_neigh_destroy(n->w.neigh);
	ferry_tunnel_table_fini(&n->tt);
	ferry_flow_table_fini(&n->ft);
}

/* Every node with no flows but normal, no tunnels (mesh: the full mesh), empty MAC
 * tables and neighbour caches, zeroed counters. */
static void fresh(bool mesh, uint32_t flags)
{
	now += 10ull * 1000000000ull;
	for (unsigned i = 0; i < N_NODES; i++) {
		struct node *n = &nodes[i];
		n->w.tunnels = &n->tt;
		ferry_flow_table_clear(&n->ft);
		ferry_flow_table_commit_batch(&n->ft);
		for (uint32_t p = N_ETH; p < FERRY_MAX_PORTS; p++)
			ferry_tunnel_del(&n->tt, p);
		ferry_neigh_destroy(n->w.neigh);
		n->w.neigh = ferry_neigh_create(0);
		memset(n->w.l2, 0, sizeof(*n->w.l2));
		memset(&n->ws, 0, sizeof(n->ws));
		memset(n->w.stt_own, 0, sizeof(n->w.stt_own));
		n->plain = 0;
		for (unsigned j = 0; mesh && j < N_NODES; j++)
			if (j != i)
				tunnel(n, &nodes[j], flags);
		add_normal(n, false);
	}
}

/* nothing held or half-reassembled, nothing left on a port, every mbuf back */
static void check_pool(void)
{
	for (unsigned i = 0; i < N_NODES; i++) {
		struct node *n = &nodes[i];
		for (uint16_t p = 0; p < N_ETH; p++)
			got(n, p, NULL, NULL);
		CHECK_EQ(n->w.n_held, 0);
		CHECK_EQ(ferry_stt_reasm_frames(n->w.reasm), 0);
		CHECK_EQ(n->plain, 0);
	}
	CHECK_EQ(ferry_ports_mbufs_available(&ports), mbufs_at_start);
}

static uint32_t learned(struct node *n, const uint8_t *mac)
{
	return ferry_l2_lookup(n->w.l2, mac, 0, now);
}

/* ---------------------------------------------------------------- tests */

/* A broadcast from A's VM: to A's other VM and through both tunnels (not the one
 * with a flow-based remote); B and C each deliver it to their two VMs once, relay
 * nothing (split horizon), and nothing goes onto an underlay unencapsulated. What the
 * underlay carries that is not for a tunnel (here the ARP for the other node's
 * endpoint) is not switched to the VMs. */
static void test_broadcast_reaches_every_vm_once(void)
{
	fresh(true, 0);
	tunnel(A, NULL, FERRY_TUNNEL_FLAG_REMOTE_FLOW | FERRY_TUNNEL_FLAG_KEY_FLOW);
	uint8_t ref[LEN];
	struct rte_mbuf *m = frame(BCAST, A->vm_mac, 1, ref);
	run(A, VM, &m, 1);
	CHECK_EQ(A->ws.arp_tx_requests, 2); /* one for each peer's endpoint, the frames held */
	settle();
	unsigned total;
	CHECK_EQ(got(A, VM, NULL, &total), 0);
	CHECK_EQ(total, 0);                 /* not back to where it came from */
	CHECK_EQ(got(A, VM2, ref, &total), 1);
	CHECK_EQ(total, 1);
	for (unsigned i = 1; i < N_NODES; i++) {
		struct node *n = &nodes[i];
		CHECK_EQ(got(n, VM, ref, &total), 1);
		CHECK_EQ(total, 1);
		CHECK_EQ(got(n, VM2, ref, &total), 1);
		CHECK_EQ(total, 1);
		CHECK_EQ(n->ws.stt_rx_frames, 1);
		CHECK_EQ(n->ws.ports[TUN(n->idx, 0)].rx_packets, 1); /* from A */
		CHECK_EQ(n->ws.stt_tx_frames, 0);                    /* no relay */
		CHECK_EQ(n->ws.drops[FERRY_DROP_REASON_NO_ACTIONS], 1); /* A's ARP for the other peer */
		CHECK_EQ(learned(n, A->vm_mac), TUN(n->idx, 0));
	}
	CHECK_EQ(C->ws.ports[TUN(C->idx, B->idx)].rx_packets, 0);
	CHECK_EQ(A->ws.stt_tx_frames, 2);
	CHECK_EQ(A->ws.ports[TUN(0, 1)].tx_packets, 1);
	CHECK_EQ(A->ws.ports[TUN(0, 2)].tx_packets, 1);
	CHECK_EQ(A->ws.ports[UL].tx_packets, 2 + 2); /* ARP requests, STT segments: nothing plain */
	for (unsigned i = 0; i < FERRY_DROP_REASON_COUNT; i++)
		CHECK_EQ(A->ws.drops[i], 0);
	CHECK_EQ(A->ws.ports[FLOW_TUN].tx_packets + A->ws.ports[FLOW_TUN].tx_dropped, 0);
	check_pool();
}

/* B's VM answers A's VM: the reply goes only to A, which learns B's VM on its tunnel
 * to B; from then on A's unicast to B's VM takes that tunnel alone. */
static void test_reply_learned_on_the_tunnel(void)
{
	fresh(true, 0);
	struct rte_mbuf *m = frame(BCAST, A->vm_mac, 1, NULL);
	run(A, VM, &m, 1);
	settle();
	CHECK_EQ(vm_frames_everywhere(), 5);
	uint64_t c_rx = C->ws.stt_rx_segments;

	uint8_t ref[LEN];
	m = frame(A->vm_mac, B->vm_mac, 2, ref);
	run(B, VM, &m, 1);
	settle();
	CHECK_EQ(B->ws.ports[TUN(1, 0)].tx_packets, 1);
	CHECK_EQ(B->ws.ports[TUN(1, 2)].tx_packets, 0);
	CHECK_EQ(got(A, VM, ref, NULL), 1);
	CHECK_EQ(vm_frames_everywhere(), 0); /* A's VM2, B's VM2, C: nothing */
	CHECK_EQ(C->ws.stt_rx_segments, c_rx);
	CHECK_EQ(learned(A, B->vm_mac), TUN(0, 1));

	m = frame(B->vm_mac, A->vm_mac, 3, ref);
	run(A, VM, &m, 1);
	settle();
	CHECK_EQ(A->ws.ports[TUN(0, 1)].tx_packets, 2);
	CHECK_EQ(A->ws.ports[TUN(0, 2)].tx_packets, 1); /* the broadcast only */
	CHECK_EQ(got(B, VM, ref, NULL), 1);
	CHECK_EQ(vm_frames_everywhere(), 0);
	CHECK_EQ(C->ws.stt_rx_segments, c_rx);
	check_pool();
}

/* A deletes its tunnel to B: B's VM, learned on that port, is unknown again, so A
 * floods to what is left (its VM2 and the tunnel to C); nothing goes to a dead port. */
static void test_deleted_tunnel_floods_again(void)
{
	fresh(true, 0);
	struct rte_mbuf *m = frame(BCAST, A->vm_mac, 1, NULL);
	run(A, VM, &m, 1);
	settle();
	m = frame(A->vm_mac, B->vm_mac, 2, NULL);
	run(B, VM, &m, 1);
	settle();
	CHECK_EQ(vm_frames_everywhere(), 6);
	CHECK_EQ(learned(A, B->vm_mac), TUN(0, 1));
	uint64_t b_rx = B->ws.stt_rx_segments, a_ab = A->ws.ports[TUN(0, 1)].tx_packets;

	CHECK_EQ(ferry_tunnel_del(&A->tt, TUN(0, 1)), FERRY_STATUS_OK);
	uint8_t ref[LEN];
	m = frame(B->vm_mac, A->vm_mac, 3, ref);
	run(A, VM, &m, 1);
	settle();
	CHECK_EQ(A->ws.ports[TUN(0, 1)].tx_packets, a_ab);
	CHECK_EQ(A->ws.ports[TUN(0, 2)].tx_packets, 2);
	CHECK_EQ(A->ws.drops[FERRY_DROP_REASON_BAD_OUT_PORT], 0);
	CHECK_EQ(A->ws.stt[FERRY_STT_REASON_NO_TUNNEL], 0);
	CHECK_EQ(got(A, VM2, ref, NULL), 1);
	CHECK_EQ(got(C, VM, ref, NULL), 1);  /* C does not know B's VM either: its VMs, not B */
	CHECK_EQ(got(C, VM2, ref, NULL), 1);
	CHECK_EQ(C->ws.stt_tx_frames, 0);
	CHECK_EQ(B->ws.stt_rx_segments, b_rx);
	CHECK_EQ(vm_frames_everywhere(), 0);
	check_pool();
}

/* Tunnels with a flow-based key: set_field:VNI->tun_id before normal gives every
 * tunnel output the key, which B's and C's fixed-key tunnels require. */
static void test_flow_key_from_set_field(void)
{
	fresh(false, 0);
	for (unsigned i = 1; i < N_NODES; i++) {
		tunnel(A, &nodes[i], FERRY_TUNNEL_FLAG_KEY_FLOW);
		tunnel(&nodes[i], A, 0);
	}
	ferry_flow_table_clear(&A->ft);
	ferry_flow_table_commit_batch(&A->ft);
	add_normal(A, true);
	uint8_t ref[LEN];
	struct rte_mbuf *m = frame(BCAST, A->vm_mac, 4, ref);
	run(A, VM, &m, 1);
	settle();
	for (unsigned i = 1; i < N_NODES; i++) {
		CHECK_EQ(nodes[i].ws.stt[FERRY_STT_REASON_NO_TUNNEL], 0);
		CHECK_EQ(got(&nodes[i], VM, ref, NULL), 1);
		CHECK_EQ(got(&nodes[i], VM2, ref, NULL), 1);
	}
	CHECK_EQ(got(A, VM2, ref, NULL), 1);
	CHECK_EQ(vm_frames_everywhere(), 0);
	check_pool();
}

/* Split horizon for unicast too: C has A's VM on its tunnel to A (it moved back
 * there), B still has it behind C; what B sends it goes to C, which must not relay
 * it to A. */
static void test_no_relay_between_tunnels(void)
{
	fresh(true, 0);
	struct rte_mbuf *m = frame(BCAST, C->vm2_mac, 5, NULL);
	run(C, VM2, &m, 1);                         /* everyone learns C's VM2 behind C */
	settle();
	m = frame(BCAST, A->vm_mac, 6, NULL);
	run(C, VM, &m, 1);                          /* A's VM speaks from C */
	settle();
	CHECK_EQ(learned(B, A->vm_mac), TUN(1, 2));
	m = frame(C->vm2_mac, A->vm_mac, 7, NULL);
	run(A, VM, &m, 1);                          /* and from A again: only C hears it */
	settle();
	CHECK_EQ(learned(C, A->vm_mac), TUN(2, 0));
	CHECK_EQ(learned(B, A->vm_mac), TUN(1, 2));
	CHECK_EQ(vm_frames_everywhere(), 5 + 5 + 1);
	uint64_t a_rx = A->ws.stt_rx_segments, c_tx = C->ws.stt_tx_frames, c_rx = C->ws.stt_rx_frames;
	uint64_t c_drops = C->ws.drops[FERRY_DROP_REASON_NO_ACTIONS];

	m = frame(A->vm_mac, B->vm_mac, 8, NULL);
	run(B, VM, &m, 1);
	settle();
	CHECK_EQ(C->ws.stt_rx_frames, c_rx + 1);     /* it reached C ... */
	CHECK_EQ(C->ws.stt_tx_frames, c_tx);         /* ... which sent nothing on */
	CHECK_EQ(C->ws.drops[FERRY_DROP_REASON_NO_ACTIONS], c_drops + 1);
	CHECK_EQ(A->ws.stt_rx_segments, a_rx);
	CHECK_EQ(vm_frames_everywhere(), 0);
	check_pool();
}

/* No tunnels: NORMAL floods to every ethdev but in_port and switches known
 * destinations to their port, with an empty tunnel snapshot and with no tunnel
 * table at all. Then a tunnel on ethdev 1 makes it an underlay: a MAC learned there
 * is flooded (to the VM2 and the tunnel), never sent out of it plain, and what
 * arrives on it plain is not switched. */
static void test_no_tunnels_floods_as_before(void)
{
	for (int bare = 0; bare < 2; bare++) {
		fresh(false, 0);
		A->w.tunnels = bare ? NULL : &A->tt;
		uint8_t ref[LEN];
		struct rte_mbuf *m = frame(BCAST, A->vm_mac, 9, ref);
		run(A, VM, &m, 1);
		unsigned total;
		CHECK_EQ(got(A, VM, NULL, &total), 0);
		CHECK_EQ(total, 0);
		CHECK_EQ(got(A, UL, ref, &total), 1);
		CHECK_EQ(total, 1);
		CHECK_EQ(got(A, VM2, ref, &total), 1);
		CHECK_EQ(total, 1);
		const uint8_t peer[6] = { 2, 0xee, 0, 0, 0, 9 };
		m = frame(BCAST, peer, 10, ref);
		run(A, UL, &m, 1);
		CHECK_EQ(got(A, VM, ref, NULL), 1);
		CHECK_EQ(got(A, VM2, ref, NULL), 1);
		m = frame(peer, A->vm_mac, 11, ref);
		run(A, VM, &m, 1);
		CHECK_EQ(got(A, UL, ref, &total), 1);
		CHECK_EQ(total, 1);
		CHECK_EQ(got(A, VM2, NULL, &total), 0);
		CHECK_EQ(total, 0);
		CHECK_EQ(learned(A, peer), UL);
		CHECK_EQ(A->ws.ports[VM2].tx_packets, 2);
		CHECK_EQ(A->ws.ports[UL].tx_packets, 2);
		CHECK_EQ(A->ws.ports[VM].tx_packets, 1);
		A->w.tunnels = &A->tt;
		A->plain = 0; /* the frames out of ethdev 1 were right: it carried no tunnel */
		if (bare)
			break;

		/* ethdev 1 becomes the underlay of a tunnel to B */
		tunnel(A, B, 0);
		tunnel(B, A, 0);
		m = frame(peer, A->vm_mac, 12, ref);
		run(A, VM, &m, 1);
		settle();
		CHECK_EQ(got(A, VM2, ref, NULL), 1);
		CHECK_EQ(got(B, VM, ref, NULL), 1);
		CHECK_EQ(got(B, VM2, ref, NULL), 1);
		CHECK_EQ(A->ws.ports[TUN(0, 1)].tx_packets, 1);
		CHECK_EQ(got(C, VM, NULL, &total), 0); /* C, no tunnels, floods A's ARP request */
		CHECK_EQ(total, 1);
		CHECK_EQ(got(C, VM2, NULL, &total), 0);
		CHECK_EQ(total, 1);
		const uint8_t other[6] = { 2, 0xee, 0, 0, 0, 10 };
		m = frame(BCAST, other, 13, NULL);
		run(A, UL, &m, 1);                   /* plain on the underlay: not the bridge's */
		CHECK_EQ(vm_frames_everywhere(), 0);
		CHECK_EQ(learned(A, other), FERRY_L2_NO_PORT);
		CHECK_EQ(A->ws.drops[FERRY_DROP_REASON_NO_ACTIONS], 1);
		check_pool();
	}
	check_pool();
}

int main(void)
{
	ferry_test_eal_init("mesh", NULL, 0);
	if (ferry_test_ring_ports("m", N_ETH, RING, rx_ring, tx_ring, &ports) != 0)
		return 1;
	mbufs_at_start = ferry_ports_mbufs_available(&ports);
	for (unsigned i = 0; i < N_NODES; i++)
		node_init(&nodes[i], i);

	RUN(test_broadcast_reaches_every_vm_once);
	RUN(test_reply_learned_on_the_tunnel);
	RUN(test_deleted_tunnel_floods_again);
	RUN(test_flow_key_from_set_field);
	RUN(test_no_relay_between_tunnels);
	RUN(test_no_tunnels_floods_as_before);

	for (unsigned i = 0; i < N_NODES; i++)
		node_fini(&nodes[i]);
	ferry_ports_stop(&ports);
	rte_eal_cleanup();
	return ftest_finish();
}
