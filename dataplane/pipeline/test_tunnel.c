/* Two Ferry "hypervisors" in one process, joined by an STT tunnel: worker A owns
 * ports 0 (its VM) and 1 (its underlay), worker B ports 2 (its VM) and 3 (its
 * underlay); the test carries what one underlay sends to the other's rx. Each has its
 * own flow table, tunnel table and neighbour cache, as two ferryds would, so ARP
 * resolution, encapsulation, reassembly, tunnel port matching and the tunnel
 * metadata all run as in production. */
#include <string.h>
#include <rte_byteorder.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_ring.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "../common/mbuf_bytes.h"
#include "../ports/ports.h"
#include "../underlay/arp.h"
#include "actions.h"
#include "worker.h"

#define N_PORTS 4
#define RING 1024
#define MAX_FLOWS 64
#define TUNNEL_PORT 4 /* the first port number after the ethdevs, on both nodes */
#define VNI 0x10
#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define UNDERLAY_A IP4(192, 168, 1, 1)
#define UNDERLAY_B IP4(192, 168, 1, 2)
#define SILENT_PEER IP4(192, 168, 1, 9)
#include "test_node.h"

static uint64_t next_id;

static struct node A, B;

static const uint8_t VM_MAC1[6] = { 2, 0xfe, 0, 0, 0, 1 }, VM_MAC2[6] = { 2, 0xfe, 0, 0, 0, 2 };

/* ---------------------------------------------------------------- packets */

/* An Ethernet/IPv4/UDP frame of len bytes (>= 42), checksums right, payload a
 * pattern; as a chain of mbufs when it does not fit one. */
static struct rte_mbuf *frame(uint16_t len, uint8_t tos)
{
	static uint8_t buf[65536];
	memset(buf, 0, len);
	memcpy(buf, VM_MAC2, 6);
	memcpy(buf + 6, VM_MAC1, 6);
	buf[12] = 0x08;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + 14);
	ip->version_ihl = 0x45;
	ip->type_of_service = tos;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(len - 14));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(IP4(10, 0, 0, 1));
	ip->dst_addr = rte_cpu_to_be_32(IP4(10, 0, 0, 2));
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	uint8_t *l4 = buf + 34;
	l4[0] = 0x30, l4[1] = 0x39, l4[2] = 0, l4[3] = 53;
	l4[4] = (uint8_t)((len - 34) >> 8), l4[5] = (uint8_t)(len - 34);
	for (unsigned i = 42; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	struct rte_mbuf *m = ferry_mbuf_from_bytes(ports.pool[0], buf, len, 0);
	if (m == NULL) {
		fprintf(stderr, "out of mbufs\n");
		exit(1);
	}
	return m;
}

/* ---------------------------------------------------------------- nodes */

static struct ferry_rule flow(uint8_t table, uint16_t priority, uint32_t in_port)
{
	struct ferry_rule r;
	memset(&r, 0, sizeof(r));
	r.id = ++next_id;
	r.table_id = table;
	r.priority = priority;
	r.key.in_port = in_port;
	r.mask.in_port = UINT32_MAX;
	return r;
}

static void output(struct ferry_rule *r, uint32_t port)
{
	struct ferry_act_output a = { .hdr = { .type = FERRY_ACTION_TYPE_OUTPUT, .len = sizeof(a) }, .port = port };
	memcpy(r->actions + r->actions_len, &a, sizeof(a));
	r->actions_len = (uint16_t)(r->actions_len + sizeof(a));
}

static void set_tun(struct ferry_rule *r, uint16_t field, const void *value, unsigned len)
{
	struct ferry_act_set_field a = { .hdr = { .type = FERRY_ACTION_TYPE_SET_FIELD, .len = sizeof(a) }, .field = field };
	memcpy(a.value, value, len);
	memset(a.mask, 0xff, len);
	memcpy(r->actions + r->actions_len, &a, sizeof(a));
	r->actions_len = (uint16_t)(r->actions_len + sizeof(a));
}

static void set_tun_dst(struct ferry_rule *r, uint32_t ip)
{
	uint32_t be = rte_cpu_to_be_32(ip);
	set_tun(r, FERRY_FIELD_ID_TUN_DST, &be, 4);
}

static void add(struct node *n, const struct ferry_rule *r)
{
	char why[FERRY_ERR_MSG_LEN] = "";
	uint32_t slot = 0;
	uint64_t ports_mask = ferry_ports_mask_first(N_PORTS) | ferry_tunnel_ports_mask(&n->tt);
	int st = ferry_actions_validate(r->actions, r->actions_len, r->table_id, ports_mask, why, sizeof(why));
	if (st == FERRY_STATUS_OK)
		st = ferry_flow_table_add(&n->ft, r, false, &slot, why, sizeof(why));
	if (st != FERRY_STATUS_OK)
		fprintf(stderr, "  flow refused: %s\n", why);
	CHECK_EQ(st, FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_commit_batch(&n->ft), FERRY_STATUS_OK);
}

static int tunnel(struct node *n, uint32_t local, uint32_t remote, uint32_t flags, uint64_t key, uint16_t mtu)
{
	struct ferry_tunnel_config c = {
		.port = TUNNEL_PORT, .flags = flags, .key = key, .local_plen = 24, .ttl = 64,
		.dst_port = FERRY_STT_PORT, .underlay_port = n->underlay_port, .underlay_mtu = mtu };
	uint32_t l = rte_cpu_to_be_32(local), rm = rte_cpu_to_be_32(remote);
	memcpy(c.local_ip, &l, 4);
	memcpy(c.remote_ip, &rm, 4);
	char why[FERRY_ERR_MSG_LEN] = "";
	int st = ferry_tunnel_set(&n->tt, &c, why, sizeof(why));
	if (st != FERRY_STATUS_OK)
		fprintf(stderr, "  tunnel refused: %s\n", why);
	n->w.tn = ferry_tunnels_read(&n->tt);
	return st;
}

/* Everything from's underlay sent, received by to's underlay (the wire). Returns
 * how many packets crossed. */
static unsigned carry(struct node *from, struct node *to)
{
	struct rte_mbuf *m[RING];
	unsigned n = rte_ring_dequeue_burst(tx_ring[from->underlay_port], (void **)m, RING, NULL);
	/* a NIC's rx hands over plain single packets with no offload flags */
	for (unsigned i = 0; i < n; i++) {
		if (m[i]->nb_segs > 1 && rte_pktmbuf_linearize(m[i]) != 0) {
			struct rte_mbuf *c = rte_pktmbuf_copy(m[i], ports.pool[0], 0, UINT32_MAX);
			rte_pktmbuf_free(m[i]);
			m[i] = c;
		}
		m[i]->ol_flags = 0;
	}
	run(to, to->underlay_port, m, (uint16_t)n);
	return n;
}

/* The frames port sent, each compared with ref (len bytes); returns how many were equal. */
static unsigned received(uint16_t port, const uint8_t *ref, unsigned len, unsigned *total)
{
	struct rte_mbuf *m[RING];
	unsigned n = rte_ring_dequeue_burst(tx_ring[port], (void **)m, RING, NULL), same = 0;
	static uint8_t buf[65536];
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *d = rte_pktmbuf_read(m[i], 0, m[i]->pkt_len, buf);
		same += m[i]->pkt_len == len && d != NULL && memcmp(d, ref, len) == 0;
	}
	rte_pktmbuf_free_bulk(m, n);
	if (total)
		*total = n;
	return same;
}

/* A fresh pair: A's VM traffic goes into its tunnel with VNI, B delivers tunnel
 * traffic with that VNI from A to its VM (and the reverse). */
static void fresh(void)
{
	for (uint16_t p = 0; p < N_PORTS; p++)
		drain(p);
	struct node *nodes[2] = { &A, &B };
	for (int i = 0; i < 2; i++) {
		struct node *n = nodes[i];
		ferry_flow_table_clear(&n->ft);
		ferry_flow_table_commit_batch(&n->ft);
		ferry_tunnel_del(&n->tt, TUNNEL_PORT);
		memset(&n->ws, 0, sizeof(n->ws));
		memset(n->w.stt_own, 0, sizeof(n->w.stt_own));
	}
	now += 10ull * 1000000000ull;
	CHECK_EQ(tunnel(&A, UNDERLAY_A, UNDERLAY_B, FERRY_TUNNEL_FLAG_KEY_FLOW, 0, 1500), FERRY_STATUS_OK);
	CHECK_EQ(tunnel(&B, UNDERLAY_B, UNDERLAY_A, FERRY_TUNNEL_FLAG_KEY_FLOW, 0, 1500), FERRY_STATUS_OK);
	uint64_t vni = VNI;
	struct ferry_rule r = flow(0, 100, A.vm_port);
	set_tun(&r, FERRY_FIELD_ID_TUN_ID, &vni, 8);
	output(&r, TUNNEL_PORT);
	add(&A, &r);
	r = flow(0, 100, TUNNEL_PORT);
	r.key.tun_id = VNI;
	r.mask.tun_id = UINT64_MAX;
	uint32_t src = rte_cpu_to_be_32(UNDERLAY_A);
	memcpy(r.key.tun_src, &src, 4);
	memset(r.mask.tun_src, 0xff, 4);
	output(&r, B.vm_port);
	add(&B, &r);
}

/* ---------------------------------------------------------------- tests */

/* The first frame waits for ARP; B answers for its tunnel address; A learns it and
 * sends the frame, which B decapsulates and delivers with the tunnel fields set. */
static void test_arp_then_encap_decap(void)
{
	fresh();
	struct rte_mbuf *m = frame(100, 0);
	uint8_t ref[100];
	memcpy(ref, rte_pktmbuf_mtod(m, void *), 100);
	run(&A, A.vm_port, &m, 1);
	CHECK_EQ(A.ws.neigh_misses, 1);
	CHECK_EQ(A.ws.neigh_held, 1);
	CHECK_EQ(A.ws.arp_tx_requests, 1);
	CHECK_EQ(carry(&A, &B), 1);                /* the request */
	CHECK_EQ(B.ws.arp_rx_requests, 1);
	CHECK_EQ(B.ws.arp_tx_replies, 1);
	CHECK_EQ(carry(&B, &A), 1);                /* the reply */
	CHECK_EQ(A.ws.arp_rx_replies, 1);
	poll_node(&A);                             /* the held frame goes */
	CHECK_EQ(A.ws.neigh_held, 0);
	CHECK_EQ(A.ws.stt_tx_frames, 1);
	CHECK_EQ(A.ws.stt_tx_segments, 1);
	CHECK_EQ(A.ws.ports[TUNNEL_PORT].tx_packets, 1);
	CHECK_EQ(carry(&A, &B), 1);
	CHECK_EQ(B.ws.stt_rx_segments, 1);
	CHECK_EQ(B.ws.stt_rx_frames, 1);
	CHECK_EQ(B.ws.ports[TUNNEL_PORT].rx_packets, 1);
	CHECK_EQ(received(B.vm_port, ref, 100, NULL), 1); /* matched on tun_id and tun_src */
	/* B learned A from its request: the way back needs no ARP */
	struct rte_ether_addr mac;
	bool ask = true;
	CHECK_EQ(ferry_neigh_lookup(B.neigh, B.underlay_port, rte_cpu_to_be_32(UNDERLAY_A), now, &mac, &ask),
		 FERRY_NEIGH_HIT);
	struct rte_ether_addr a_mac;
	port_mac(A.underlay_port, &a_mac);
	CHECK(rte_is_same_ether_addr(&mac, &a_mac));
}

/* Full-size and jumbo inner frames cross in several segments and come out whole. */
static void test_segmented_frames(void)
{
	fresh();
	struct rte_mbuf *m = frame(60, 0);
	run(&A, A.vm_port, &m, 1);
	carry(&A, &B), carry(&B, &A), poll_node(&A), carry(&A, &B); /* resolve, deliver */
	drain(B.vm_port);
	static const uint16_t sizes[] = { 1514, 9014, 30000 };
	for (unsigned i = 0; i < RTE_DIM(sizes); i++) {
		static uint8_t ref[65536];
		m = frame(sizes[i], 0);
		const void *bytes = rte_pktmbuf_read(m, 0, sizes[i], ref);
		CHECK(bytes != NULL);
		if (bytes != NULL && bytes != ref)
			memcpy(ref, bytes, sizes[i]);
		uint64_t segs = A.ws.stt_tx_segments;
		run(&A, A.vm_port, &m, 1);
		unsigned want = (sizes[i] + FERRY_STT_HDR_LEN + 1459) / 1460;
		CHECK_EQ(A.ws.stt_tx_segments - segs, want);
		CHECK_EQ(carry(&A, &B), want);
		unsigned total = 0;
		CHECK_EQ(received(B.vm_port, ref, sizes[i], &total), 1);
		CHECK_EQ(total, 1);
	}
	CHECK_EQ(B.ws.stt_rx_frames, 4);
	CHECK_EQ(B.ws.stt[FERRY_STT_REASON_BAD_CSUM], 0);
	/* chained frames parse whole: their IP length counts the later segments */
	for (unsigned i = 0; i < FERRY_PARSE_REASONS; i++)
		CHECK_EQ(B.ws.parse_errors[i], 0);
}

/* Flow-based remotes: one packet replicated to two remotes (set_field:tun_dst before
 * each output, as OVS users flood to a mesh). */
static void test_flow_based_remote_replication(void)
{
	fresh();
	CHECK_EQ(tunnel(&A, UNDERLAY_A, 0, FERRY_TUNNEL_FLAG_KEY_FLOW | FERRY_TUNNEL_FLAG_REMOTE_FLOW, 0, 1500),
		 FERRY_STATUS_OK);
	ferry_flow_table_clear(&A.ft);
	ferry_flow_table_commit_batch(&A.ft);
	uint64_t vni = VNI;
	struct ferry_rule r = flow(0, 100, A.vm_port);
	set_tun(&r, FERRY_FIELD_ID_TUN_ID, &vni, 8);
	set_tun_dst(&r, UNDERLAY_B);
	output(&r, TUNNEL_PORT);
	set_tun_dst(&r, SILENT_PEER);
	output(&r, TUNNEL_PORT);
	add(&A, &r);
	struct rte_ether_addr b_mac;
	port_mac(B.underlay_port, &b_mac);
	CHECK_EQ(ferry_neigh_set_static(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B), &b_mac), 0);
	struct rte_ether_addr fake = { { 2, 0, 0, 0, 0, 9 } };
	CHECK_EQ(ferry_neigh_set_static(A.neigh, A.underlay_port, rte_cpu_to_be_32(SILENT_PEER), &fake), 0);
	struct rte_mbuf *m = frame(200, 0);
	run(&A, A.vm_port, &m, 1);
	CHECK_EQ(A.ws.stt_tx_frames, 2);
	struct rte_mbuf *out[4];
	unsigned n = rte_ring_dequeue_burst(tx_ring[A.underlay_port], (void **)out, 4, NULL);
	CHECK_EQ(n, 2);
	uint32_t dsts[2] = { 0, 0 };
	for (unsigned i = 0; i < n && i < 2; i++) {
		const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(out[i], const struct rte_ipv4_hdr *, 14);
		dsts[i] = rte_be_to_cpu_32(ip->dst_addr);
	}
	CHECK((dsts[0] == UNDERLAY_B && dsts[1] == SILENT_PEER) || (dsts[1] == UNDERLAY_B && dsts[0] == SILENT_PEER));
	rte_pktmbuf_free_bulk(out, n);
	ferry_neigh_del(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B));
	ferry_neigh_del(A.neigh, A.underlay_port, rte_cpu_to_be_32(SILENT_PEER));
}

/* A next hop that never answers: the frame is held through the retries, then
 * dropped and counted. */
static void test_unresolved_next_hop(void)
{
	fresh();
	CHECK_EQ(tunnel(&A, UNDERLAY_A, SILENT_PEER, FERRY_TUNNEL_FLAG_KEY_FLOW, 0, 1500), FERRY_STATUS_OK);
	struct rte_mbuf *m = frame(100, 0);
	run(&A, A.vm_port, &m, 1);
	CHECK_EQ(A.ws.neigh_held, 1);
	unsigned requests = drain(A.underlay_port);
	for (unsigned s = 0; s < FERRY_NEIGH_DEFAULT_RETRIES + 2; s++) {
		now += FERRY_NEIGH_RETRY_NS + 1;
		poll_node(&A);
		requests += drain(A.underlay_port);
	}
	CHECK_EQ(A.ws.neigh_held, 0);
	CHECK_EQ(A.ws.neigh_failures, 1);
	CHECK_EQ(A.ws.drops[FERRY_DROP_REASON_NEIGH_UNRESOLVED], 1);
	CHECK_EQ(requests, FERRY_NEIGH_DEFAULT_RETRIES);
	CHECK_EQ(A.ws.arp_tx_requests, FERRY_NEIGH_DEFAULT_RETRIES);
}

/* A key no tunnel of B takes: the frame is counted and dropped; a tunnel with that
 * key exact wins over the flow-based one. */
static void test_tunnel_port_matching(void)
{
	fresh();
	struct rte_ether_addr b_mac;
	port_mac(B.underlay_port, &b_mac);
	CHECK_EQ(ferry_neigh_set_static(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B), &b_mac), 0);
	CHECK_EQ(tunnel(&B, UNDERLAY_B, UNDERLAY_A, 0, 7, 1500), FERRY_STATUS_OK); /* key 7 only */
	struct rte_mbuf *m = frame(100, 0);
	run(&A, A.vm_port, &m, 1);
	CHECK_EQ(carry(&A, &B), 1);
	CHECK_EQ(B.ws.stt_rx_segments, 1);
	CHECK_EQ(B.ws.stt[FERRY_STT_REASON_NO_TUNNEL], 1);
	CHECK_EQ(drain(B.vm_port), 0);
	ferry_neigh_del(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B));
}

/* Output to a tunnel port and to a VM port from one action list: the encapsulation
 * must not disturb the other copy (they share the packet). */
static void test_tunnel_and_local_output_share_the_packet(void)
{
	fresh();
	struct rte_ether_addr b_mac;
	port_mac(B.underlay_port, &b_mac);
	CHECK_EQ(ferry_neigh_set_static(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B), &b_mac), 0);
	ferry_flow_table_clear(&A.ft);
	ferry_flow_table_commit_batch(&A.ft);
	uint64_t vni = VNI;
	struct ferry_rule r = flow(0, 100, A.vm_port);
	output(&r, 2); /* B's VM port stands in for a second local port of A */
	set_tun(&r, FERRY_FIELD_ID_TUN_ID, &vni, 8);
	output(&r, TUNNEL_PORT);
	add(&A, &r);
	struct rte_mbuf *m = frame(100, 0);
	uint8_t ref[100];
	memcpy(ref, rte_pktmbuf_mtod(m, void *), 100);
	run(&A, A.vm_port, &m, 1);
	CHECK_EQ(received(2, ref, 100, NULL), 1);
	CHECK_EQ(carry(&A, &B), 1);
	CHECK_EQ(received(B.vm_port, ref, 100, NULL), 1);
	ferry_neigh_del(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B));
}

/* An outer datagram fragmented on the way (no DF) is put together before decap. */
static void test_outer_fragments(void)
{
	fresh();
	struct rte_ether_addr b_mac;
	port_mac(B.underlay_port, &b_mac);
	CHECK_EQ(ferry_neigh_set_static(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B), &b_mac), 0);
	struct rte_mbuf *m = frame(1000, 0);
	uint8_t ref[1000];
	memcpy(ref, rte_pktmbuf_mtod(m, void *), 1000);
	run(&A, A.vm_port, &m, 1);
	struct rte_mbuf *seg = NULL;
	CHECK_EQ(rte_ring_dequeue_burst(tx_ring[A.underlay_port], (void **)&seg, 1, NULL), 1);
	if (seg == NULL)
		return;
	CHECK_EQ(rte_pktmbuf_linearize(seg), 0);
	/* split the IP payload at 512 bytes into two fragments */
	const uint8_t *d = rte_pktmbuf_mtod(seg, const uint8_t *);
	uint16_t ip_len = (uint16_t)(seg->pkt_len - 14), first = 512;
	struct rte_mbuf *f[2];
	for (int k = 0; k < 2; k++) {
		uint16_t pay = k == 0 ? first : (uint16_t)(ip_len - 20 - first);
		f[k] = rte_pktmbuf_alloc(ports.pool[0]);
		uint8_t *o = (uint8_t *)rte_pktmbuf_append(f[k], (uint16_t)(14 + 20 + pay));
		memcpy(o, d, 34);
		memcpy(o + 34, d + 34 + (k ? first : 0), pay);
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(o + 14);
		ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + pay));
		ip->fragment_offset = rte_cpu_to_be_16(k == 0 ? RTE_IPV4_HDR_MF_FLAG : (uint16_t)(first / 8));
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	}
	rte_pktmbuf_free(seg);
	struct rte_mbuf *rev[2] = { f[1], f[0] }; /* out of order, too */
	run(&B, B.underlay_port, rev, 2);
	CHECK_EQ(B.ws.stt_rx_frames, 1);
	CHECK_EQ(received(B.vm_port, ref, 1000, NULL), 1);
	ferry_neigh_del(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B));
}

/* ARP for an address that is not ours goes to the pipeline (here: a table miss). */
static void test_foreign_arp_is_not_answered(void)
{
	fresh();
	struct rte_mbuf *m = rte_pktmbuf_alloc(ports.pool[0]);
	struct rte_ether_addr a_mac;
	port_mac(A.underlay_port, &a_mac);
	ferry_arp_build_request(m, &a_mac, rte_cpu_to_be_32(UNDERLAY_A), rte_cpu_to_be_32(SILENT_PEER));
	run(&B, B.underlay_port, &m, 1);
	CHECK_EQ(B.ws.arp_tx_replies, 0);
	CHECK_EQ(B.ws.drops[FERRY_DROP_REASON_TABLE_MISS], 1);
	CHECK_EQ(drain(B.underlay_port), 0);
}

static void test_no_mbuf_leaked(void)
{
	check_no_mbuf_leaked(&A, &B);
}

int main(void)
{
	ferry_test_eal_init("tunnel", NULL, 0);
	if (ferry_test_ring_ports("t", N_PORTS, RING, rx_ring, tx_ring, &ports) != 0)
		return 1;
	mbufs_at_start = ferry_ports_mbufs_available(&ports);
	node_init(&A, 0, 0, 1, NULL);
	node_init(&B, 1, 2, 3, NULL);

	RUN(test_arp_then_encap_decap);
	RUN(test_segmented_frames);
	RUN(test_flow_based_remote_replication);
	RUN(test_unresolved_next_hop);
	RUN(test_tunnel_port_matching);
	RUN(test_tunnel_and_local_output_share_the_packet);
	RUN(test_outer_fragments);
	RUN(test_foreign_arp_is_not_answered);
	RUN(test_no_mbuf_leaked); /* last */

	node_fini(&A);
	node_fini(&B);
	ferry_ports_stop(&ports);
	rte_eal_cleanup();
	return ftest_finish();
}
