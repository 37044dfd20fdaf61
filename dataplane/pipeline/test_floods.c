/* Floods (issue 7): memory stays bounded and legitimate traffic keeps flowing. An STT
 * segment flood against a node with capped reassembly memory while the other node
 * sends it a tunnelled TCP stream; a SYN flood past a connection limit, through the
 * tracker's API and through a worker's flows; and every test gives back every mbuf.
 * The STT nodes are test_tunnel.c's: worker A owns ports 0 (its VM) and 1 (its
 * underlay), B ports 2 and 3, each with its own tables; the test carries A's underlay
 * output to B's underlay rx. Time is the test's (now): timeouts pass without sleeping. */
#include <string.h>
#include <rte_byteorder.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "../common/mbuf_bytes.h"
#include "../conntrack/test_ct_packets.h"
#include "../ports/ports.h"
#include "actions.h"
#include "worker.h"

#define N_PORTS 4
#define RING 1024
#define MAX_FLOWS 64
#define TUNNEL_PORT 4 /* the first port number after the ethdevs, on both nodes */
#define VNI 0x10
#define UNDERLAY_A IP4(192, 168, 1, 1)
#define UNDERLAY_B IP4(192, 168, 1, 2)
#define ATTACKER IP4(192, 168, 1, 66)
#define UNDERLAY_MTU 1500
#define UNDERLAY_MSS (UNDERLAY_MTU - 40) /* STT bytes per segment */
#define MSEC 1000000ull
#define USEC 1000ull

/* ---- the STT flood ---- */
#define REASM_CAP (1u << 20)                     /* B's reassembly memory cap */
#define STT_FLOOD 50000u                         /* bogus first segments */
#define LEGIT_FRAMES 40u                         /* inner TCP frames A sends B meanwhile */
#define LEGIT_MIN 20000u                         /* their lengths: LEGIT_MIN .. + LEGIT_SPAN */
#define LEGIT_SPAN 40000u
#define LEGIT_HDRS (14u + 20u + 20u)
#define FLOOD_PAYLOAD 1024u                      /* STT bytes in a flood segment */
#define FLOOD_PKT_LEN (14u + 20u + 20u + FLOOD_PAYLOAD)
/* flood segments after the last legitimate one: the table ends full of flood only */
#define FLOOD_TAIL (STT_FLOOD / 10)
/* a burst every 20 us (~13 Gb/s of flood): the run (~32 ms) is shorter than the
 * reassembly timeout, so the flood meets evictions only until time moves on */
#define STT_BURST_NS (20 * USEC)
/* a crowded hash bucket (8 ways, random seed; ~1.8 frames a bucket here) may rarely
 * lose a frame besides the cap's victim: the table may end a few frames short of full */
#define CROWDED_SLACK 8u

/* ---- the SYN floods ---- */
#define CT_CAPACITY 4096u                        /* entries reserved: the limit, not this, binds */
#define CT_LIMIT 1000u                           /* global limit */
#define CT_ESTABLISHED 100u
#define CT_SYN_FLOOD 100000u
#define CLIENT IP4(10, 0, 0, 1)
#define SERVER IP4(10, 0, 0, 2)
#define SERVER_PORT 80
#define CLIENT_PORT0 20000u
#define ISN_CLIENT 1000u
#define ISN_SERVER 5000u
#define PL_ZONE 5                                /* the pipeline test: a zone limit */
#define PL_LIMIT 200u
#define PL_ESTABLISHED 20u
#define PL_SYN_FLOOD 5000u
#define PL_CLIENT_PORT 0                         /* the pipeline test's worker C: clients on 0, */
#define PL_SERVER_PORT 2                         /* servers on 2 */
#define DATA_LEN 100

enum {
	NEW = FERRY_CT_STATE_BIT_NEW, EST = FERRY_CT_STATE_BIT_EST, RPL = FERRY_CT_STATE_BIT_RPL,
	TRK = FERRY_CT_STATE_BIT_TRK, SRPL = FERRY_CT_STATE_BIT_SRPL,
};

#include "test_node.h"

static uint64_t next_id;

/* A Ferry node: one worker and its tables. A and B have tunnels; C has a tracker. */
static struct node A, B, C;

static const uint8_t VM_MAC1[6] = { 2, 0xfe, 0, 0, 0, 1 }, VM_MAC2[6] = { 2, 0xfe, 0, 0, 0, 2 };

/* ---------------------------------------------------------------- pools */

/* Every pool the tests take mbufs from (one per socket with ports). */
struct pools { unsigned avail[FERRY_MAX_SOCKETS]; };

static struct pools pools_mark(void)
{
	struct pools p;
	for (int s = 0; s < FERRY_MAX_SOCKETS; s++)
		p.avail[s] = ports.pool[s] ? rte_mempool_avail_count(ports.pool[s]) : 0;
	return p;
}

static void pools_check(const struct pools *p)
{
	for (int s = 0; s < FERRY_MAX_SOCKETS; s++)
		if (ports.pool[s])
			CHECK_EQ(rte_mempool_avail_count(ports.pool[s]), p->avail[s]);
}

static struct rte_mbuf *must(struct rte_mbuf *m)
{
	if (m == NULL) {
		fprintf(stderr, "out of mbufs\n");
		exit(1);
	}
	return m;
}

/* ---------------------------------------------------------------- flows */

static struct ferry_rule rule(uint8_t table, uint16_t priority, uint32_t in_port)
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

/* Appends an action TLV: ACT(rule, struct, type, body initialisers...) */
#define ACT(r, T, TYPE, ...) do { \
	T a_ = { .hdr = { .type = (TYPE), .len = sizeof(T) }, __VA_ARGS__ }; \
	memcpy((r).actions + (r).actions_len, &a_, sizeof(a_)); \
	(r).actions_len = (uint16_t)((r).actions_len + sizeof(a_)); \
} while (0)
#define OUTPUT(r, p) ACT(r, struct ferry_act_output, FERRY_ACTION_TYPE_OUTPUT, .port = (p))

static void set_tun_id(struct ferry_rule *r, uint64_t id)
{
	struct ferry_act_set_field a = { .hdr = { .type = FERRY_ACTION_TYPE_SET_FIELD, .len = sizeof(a) },
					 .field = FERRY_FIELD_ID_TUN_ID };
	memcpy(a.value, &id, sizeof(id));
	memset(a.mask, 0xff, sizeof(id));
	memcpy(r->actions + r->actions_len, &a, sizeof(a));
	r->actions_len = (uint16_t)(r->actions_len + sizeof(a));
}

/* Validates r as a flow_mod would and commits it; its stats slot. */
static uint32_t add(struct ferry_flow_table *ft, const struct ferry_rule *r, uint64_t ports_mask)
{
	char why[FERRY_ERR_MSG_LEN] = "";
	uint32_t slot = 0;
	int st = ferry_actions_validate(r->actions, r->actions_len, r->table_id, ports_mask, why, sizeof(why));
	if (st == FERRY_STATUS_OK)
		st = ferry_flow_table_add(ft, r, false, &slot, why, sizeof(why));
	if (st != FERRY_STATUS_OK)
		fprintf(stderr, "  flow refused: %s\n", why);
	CHECK_EQ(st, FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_commit_batch(ft), FERRY_STATUS_OK);
	return slot;
}

/* ---------------------------------------------------------------- nodes */

/* STT_SET_OPTIONS: the worker takes new limits at its next poll */
static void set_reasm_mem_max(struct node *n, uint32_t bytes)
{
	n->settings.reasm_mem_max = bytes;
	__atomic_store_n(&n->settings.version, n->settings.version + 1, __ATOMIC_RELEASE);
	poll_node(n);
}

/* A's VM traffic goes into its tunnel with VNI; B delivers tunnel traffic with that
 * VNI from A to its VM. A knows B's MAC (no ARP: not what this test is about). */
static void tunnel_pair(void)
{
	struct node *nodes[2] = { &A, &B };
	const uint32_t local[2] = { UNDERLAY_A, UNDERLAY_B };
	for (int i = 0; i < 2; i++) {
		struct node *n = nodes[i];
		ferry_flow_table_clear(&n->ft);
		ferry_flow_table_commit_batch(&n->ft);
		memset(&n->ws, 0, sizeof(n->ws));
		memset(n->w.stt_own, 0, sizeof(n->w.stt_own));
		struct ferry_tunnel_config c = {
			.port = TUNNEL_PORT, .flags = FERRY_TUNNEL_FLAG_KEY_FLOW, .local_plen = 24, .ttl = 64,
			.dst_port = FERRY_STT_PORT, .underlay_port = n->underlay_port, .underlay_mtu = UNDERLAY_MTU };
		uint32_t l = rte_cpu_to_be_32(local[i]), rm = rte_cpu_to_be_32(local[1 - i]);
		memcpy(c.local_ip, &l, 4);
		memcpy(c.remote_ip, &rm, 4);
		char why[FERRY_ERR_MSG_LEN] = "";
		int st = ferry_tunnel_set(&n->tt, &c, why, sizeof(why));
		if (st != FERRY_STATUS_OK)
			fprintf(stderr, "  tunnel refused: %s\n", why);
		CHECK_EQ(st, FERRY_STATUS_OK);
	}
	uint64_t ports_a = ferry_ports_mask_first(N_PORTS) | ferry_tunnel_ports_mask(&A.tt);
	uint64_t ports_b = ferry_ports_mask_first(N_PORTS) | ferry_tunnel_ports_mask(&B.tt);
	struct ferry_rule r = rule(0, 100, A.vm_port);
	set_tun_id(&r, VNI);
	OUTPUT(r, TUNNEL_PORT);
	add(&A.ft, &r, ports_a);
	r = rule(0, 100, TUNNEL_PORT);
	r.key.tun_id = VNI;
	r.mask.tun_id = UINT64_MAX;
	uint32_t src = rte_cpu_to_be_32(UNDERLAY_A);
	memcpy(r.key.tun_src, &src, 4);
	memset(r.mask.tun_src, 0xff, 4);
	OUTPUT(r, B.vm_port);
	add(&B.ft, &r, ports_b);
	struct rte_ether_addr b_mac;
	port_mac(B.underlay_port, &b_mac);
	CHECK_EQ(ferry_neigh_set_static(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B), &b_mac), 0);
}

/* ---------------------------------------------------------------- STT packets */

static uint32_t legit_len(unsigned k)
{
	return LEGIT_MIN + (k * 7919u) % (LEGIT_SPAN + 1);
}

static unsigned legit_segments(unsigned k)
{
	return (legit_len(k) + FERRY_STT_HDR_LEN + UNDERLAY_MSS - 1) / UNDERLAY_MSS;
}

/* Ethernet, IPv4 (DF, checksum written) and TCP (ACK|PSH, window 65535, checksum 0)
 * headers of a packet of len bytes, into buf. Both STT segments and the inner TCP
 * stream look like this. */
static struct rte_tcp_hdr *eth_ip_tcp(uint8_t *buf, uint32_t len, const uint8_t *dst_mac, const uint8_t *src_mac,
				      uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq)
{
	memset(buf, 0, LEGIT_HDRS);
	memcpy(buf, dst_mac, 6);
	memcpy(buf + 6, src_mac, 6);
	buf[12] = 0x08;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + 14);
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(len - 14));
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = rte_cpu_to_be_32(src);
	ip->dst_addr = rte_cpu_to_be_32(dst);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(buf + 34);
	tcp->src_port = rte_cpu_to_be_16(sport);
	tcp->dst_port = rte_cpu_to_be_16(dport);
	tcp->sent_seq = rte_cpu_to_be_32(seq);
	tcp->data_off = 0x50;
	tcp->tcp_flags = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG;
	tcp->rx_win = rte_cpu_to_be_16(65535);
	return tcp;
}

/* Inner frame k of the legitimate stream into buf: from VM 1 to VM 2, its sequence
 * number following the frames before it, a payload of its own so no frame passes
 * for another. Returns its length. */
static uint32_t legit_frame(unsigned k, uint8_t *buf)
{
	uint32_t len = legit_len(k), seq = ISN_CLIENT;
	for (unsigned j = 0; j < k; j++)
		seq += legit_len(j) - LEGIT_HDRS;
	struct rte_tcp_hdr *tcp = eth_ip_tcp(buf, len, VM_MAC2, VM_MAC1, CLIENT, SERVER, 40001, 5001, seq);
	for (uint32_t i = LEGIT_HDRS; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + k);
	tcp->cksum = rte_ipv4_udptcp_cksum((const struct rte_ipv4_hdr *)(buf + 14), tcp);
	return len;
}

/* A encapsulates legitimate frame k; its segments, as B's NIC would hand them over
 * (one buffer each, no offload flags), go to seg[]. Returns how many. */
static unsigned legit_encap(unsigned k, struct rte_mbuf **seg, unsigned max)
{
	static uint8_t buf[65536] __rte_aligned(8);
	uint32_t len = legit_frame(k, buf);
	struct rte_mbuf *m = must(ferry_mbuf_from_bytes(ports.pool[0], buf, len, 0));
	run(&A, A.vm_port, &m, 1);
	unsigned n = rte_ring_dequeue_burst(tx_ring[A.underlay_port], (void **)seg, max, NULL);
	for (unsigned i = 0; i < n; i++) {
		if (seg[i]->nb_segs > 1 && rte_pktmbuf_linearize(seg[i]) != 0) {
			struct rte_mbuf *c = rte_pktmbuf_copy(seg[i], ports.pool[0], 0, UINT32_MAX);
			rte_pktmbuf_free(seg[i]);
			seg[i] = c;
		}
		seg[i]->ol_flags = 0;
	}
	return n;
}

static uint8_t flood_tmpl[FLOOD_PKT_LEN] __rte_aligned(8);

/* A bogus STT first segment to B: right outer IPv4 and TCP checksums and STT header,
 * so it is taken for reassembly; it claims a frame of the largest length and nothing
 * else of that frame ever comes. */
static void flood_template(void)
{
	static const uint8_t attacker_mac[6] = { 2, 0, 0, 0, 0, 0x66 };
	struct rte_ether_addr b_mac;
	port_mac(B.underlay_port, &b_mac);
	uint8_t *d = flood_tmpl;
	/* not from A's address: a forged id of A's could splice into a legitimate frame,
	 * and this test is about memory, not about guessing ids. Offset 0 of the longest
	 * frame there is. */
	eth_ip_tcp(d, FLOOD_PKT_LEN, b_mac.addr_bytes, attacker_mac, ATTACKER, UNDERLAY_B, 40000, FERRY_STT_PORT,
		   (uint32_t)FERRY_STT_FRAME_MAX << FERRY_STT_SEQ_LEN_SHIFT);
	struct ferry_stt_hdr *h = (struct ferry_stt_hdr *)(d + LEGIT_HDRS);
	h->version = FERRY_STT_VERSION;
	h->context = rte_cpu_to_be_64(VNI);
	for (uint32_t i = LEGIT_HDRS + FERRY_STT_HDR_LEN; i < FLOOD_PKT_LEN; i++)
		d[i] = (uint8_t)i;
}

static struct rte_mbuf *flood_segment(uint32_t packet_id)
{
	struct rte_mbuf *m = must(rte_pktmbuf_alloc(ports.pool[0]));
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(m, FLOOD_PKT_LEN);
	memcpy(d, flood_tmpl, FLOOD_PKT_LEN);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(d + 14);
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(d + 34);
	tcp->recv_ack = rte_cpu_to_be_32(packet_id);
	tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
	return m;
}

/* ---------------------------------------------------------------- STT flood */

/* Legitimate segments are spread evenly through the flood, one in ~40 packets, so
 * each legitimate frame (14..42 segments) spans more than a cap's worth (455) of
 * flood frames. It survives because eviction takes the least recently *touched*
 * frame and each of its segments touches it: between two of them only ~39 flood
 * frames come, against the 400-odd the cap holds besides it. (Oldest-first eviction
 * would lose every legitimate frame here.) */
static void test_stt_flood_keeps_reassembly_under_cap(void)
{
	struct pools pools = pools_mark();
	tunnel_pair();
	set_reasm_mem_max(&B, REASM_CAP);
	struct ferry_stt_reasm *r = B.w.reasm;
	const uint64_t *ctr = ferry_stt_reasm_counters(r);
	uint64_t ctr0[FERRY_STT_REASONS];
	memcpy(ctr0, ctr, sizeof(ctr0));
	/* what one held mbuf costs (stt.h): each flood frame is one */
	const uint64_t cost = rte_pktmbuf_data_room_size(ports.pool[0]) + sizeof(struct rte_mbuf);
	const uint64_t full = REASM_CAP / cost;
	flood_template();

	unsigned legit_total = 0;
	for (unsigned k = 0; k < LEGIT_FRAMES; k++)
		legit_total += legit_segments(k);
	/* positions [0, spread) hold every legitimate segment and STT_FLOOD - FLOOD_TAIL
	 * flood segments; position i is legitimate when floor(i * L / spread) steps */
	const uint64_t spread = STT_FLOOD - FLOOD_TAIL + legit_total;
	struct rte_mbuf *q[FERRY_STT_MAX_SEGS];
	unsigned q_n = 0, q_next = 0, next_frame = 0, legit_fed = 0, flooded = 0, bad_encap = 0;
	unsigned delivered = 0, intact = 0, over_cap = 0, gauge_wrong = 0, miscounted = 0;
	uint64_t pos = 0, bytes_sent = 0, bytes_delivered = 0, max_mem = 0;
	static uint8_t ref[65536] __rte_aligned(8), got[65536];

	while (flooded < STT_FLOOD || legit_fed < legit_total) {
		struct rte_mbuf *burst[FERRY_BURST];
		uint16_t n = 0;
		for (; n < FERRY_BURST && (flooded < STT_FLOOD || legit_fed < legit_total); pos++) {
			bool legit = pos < spread && (pos + 1) * legit_total / spread > pos * legit_total / spread;
			if (!legit) {
				burst[n++] = flood_segment(++flooded); /* ids 1.. : unique */
				continue;
			}
			if (q_next == q_n) {
				q_n = legit_encap(next_frame, q, RTE_DIM(q));
				bad_encap += q_n != legit_segments(next_frame);
				bytes_sent += legit_len(next_frame++);
				q_next = 0;
			}
			burst[n++] = q[q_next++];
			legit_fed++;
		}
		now += STT_BURST_NS;
		run(&B, B.underlay_port, burst, n);

		/* B's VM port: the legitimate frames, whole and in order */
		struct rte_mbuf *out[RING];
		unsigned n_out = rte_ring_dequeue_burst(tx_ring[B.vm_port], (void **)out, RING, NULL);
		for (unsigned i = 0; i < n_out; i++, delivered++) {
			uint32_t len = legit_frame(delivered, ref);
			const uint8_t *d = rte_pktmbuf_read(out[i], 0, out[i]->pkt_len, got);
			intact += out[i]->pkt_len == len && d != NULL && memcmp(d, ref, len) == 0;
			bytes_delivered += out[i]->pkt_len;
		}
		rte_pktmbuf_free_bulk(out, n_out);

		/* the cap, the published gauge, and every flood frame accounted for: held,
		 * or dropped once under its reason (a legitimate frame in progress is held
		 * too, and was never counted) */
		uint64_t mem = ferry_stt_reasm_mem(r);
		max_mem = RTE_MAX(max_mem, mem);
		over_cap += mem > REASM_CAP;
		gauge_wrong += B.ws.stt_reasm_bytes != mem || B.ws.stt_reasm_frames != ferry_stt_reasm_frames(r);
		unsigned in_progress = q_next < q_n;
		uint64_t gone = ctr[FERRY_STT_REASON_EVICTED] - ctr0[FERRY_STT_REASON_EVICTED] +
				ctr[FERRY_STT_REASON_TIMEOUT] - ctr0[FERRY_STT_REASON_TIMEOUT];
		if (gone != flooded - (ferry_stt_reasm_frames(r) - in_progress) && miscounted++ == 0)
			fprintf(stderr, "  after %u flood segments: %llu evicted or timed out, %u frames held\n",
				flooded, (unsigned long long)gone, ferry_stt_reasm_frames(r));
	}
	CHECK_EQ(bad_encap, 0);
	CHECK_EQ(over_cap, 0);
	CHECK(max_mem > REASM_CAP - cost); /* the flood did fill it */
	CHECK_EQ(gauge_wrong, 0);
	CHECK_EQ(miscounted, 0);
	CHECK_EQ(delivered, LEGIT_FRAMES);
	CHECK_EQ(intact, LEGIT_FRAMES);
	CHECK_EQ(bytes_delivered, bytes_sent);
	CHECK_EQ(B.ws.stt_rx_frames, LEGIT_FRAMES);
	CHECK_EQ(B.ws.stt_rx_segments, STT_FLOOD + legit_total);
	CHECK_EQ(B.ws.ports[B.vm_port].tx_packets, LEGIT_FRAMES);
	for (unsigned i = 0; i < FERRY_STT_REASONS; i++)
		if (i != FERRY_STT_REASON_EVICTED)
			CHECK_EQ(ctr[i] - ctr0[i], 0); /* TIMEOUT too: the run is shorter than the timeout */

	/* the flood's tail leaves only flood frames, one mbuf each, as many as fit */
	uint32_t held = ferry_stt_reasm_frames(r);
	CHECK(held <= full && held + CROWDED_SLACK >= full);
	CHECK_EQ(ferry_stt_reasm_mem(r), held * cost);
	printf("  STT flood: %u segments with %u legitimate ones (%u frames); at most %llu of %u bytes held; "
	       "%u of %llu frames left\n", STT_FLOOD, legit_total, LEGIT_FRAMES, (unsigned long long)max_mem,
	       REASM_CAP, held, (unsigned long long)full);
	CHECK_EQ(ctr[FERRY_STT_REASON_EVICTED] - ctr0[FERRY_STT_REASON_EVICTED], STT_FLOOD - held);
	CHECK_EQ(B.ws.stt[FERRY_STT_REASON_EVICTED], ctr[FERRY_STT_REASON_EVICTED]);

	/* past the timeout the rest goes, counted as timed out */
	now += (uint64_t)B.settings.reasm_timeout_ms * MSEC + MSEC;
	poll_node(&B);
	CHECK_EQ(ctr[FERRY_STT_REASON_TIMEOUT] - ctr0[FERRY_STT_REASON_TIMEOUT], held);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	CHECK_EQ(ferry_stt_reasm_mem(r), 0);
	CHECK_EQ(B.ws.stt_reasm_bytes, 0);
	CHECK_EQ(B.ws.stt_reasm_frames, 0);

	set_reasm_mem_max(&B, FERRY_STT_DEFAULT_MEM_MAX);
	ferry_neigh_del(A.neigh, A.underlay_port, rte_cpu_to_be_32(UNDERLAY_B));
	for (uint16_t p = 0; p < N_PORTS; p++)
		CHECK_EQ(drain(p), 0);
	CHECK_EQ(A.w.n_held + B.w.n_held, 0);
	pools_check(&pools);
}

/* ---------------------------------------------------------------- SYN flood, tracker API */

static const struct ferry_ct_action COMMIT_ACT = { .flags = FERRY_CT_FLAG_COMMIT };
static const struct ferry_ct_action TRACK_ACT = { 0 };

/* An established connection's packets, in order, and the state each gets. */
enum { STEP_SYN, STEP_SYN_ACK, STEP_ACK, STEP_DATA, STEP_REPLY, STEPS };
static const uint32_t step_state[STEPS] = { NEW | TRK, EST | RPL | TRK | SRPL, EST | TRK | SRPL, EST | TRK | SRPL,
					     EST | RPL | TRK | SRPL };

static bool from_server(unsigned step)
{
	return step == STEP_SYN_ACK || step == STEP_REPLY;
}

static struct tpkt conn_pkt(unsigned i, unsigned step)
{
	const struct flow f = { .a4 = CLIENT, .b4 = SERVER, .sp = (uint16_t)(CLIENT_PORT0 + i), .dp = SERVER_PORT };
	const uint32_t c = ISN_CLIENT + 1, s = ISN_SERVER + 1;
	switch (step) {
	case STEP_SYN: return seg(&f, false, TH_SYN, ISN_CLIENT, 0, 65535, 0);
	case STEP_SYN_ACK: return seg(&f, true, TH_SYN | TH_ACK, ISN_SERVER, c, 65535, 0);
	case STEP_ACK: return seg(&f, false, TH_ACK, c, s, 65535, 0);
	case STEP_DATA: return seg(&f, false, TH_PSH | TH_ACK, c, s, 65535, DATA_LEN);
	default: return seg(&f, true, TH_ACK, s, c + DATA_LEN, 65535, 0);
	}
}

/* flood SYN i: its own source address (172.16/12) and port */
static struct tpkt flood_syn(unsigned i)
{
	return tcp4(IP4(172, 16 + (i >> 16), (i >> 8) & 0xff, i & 0xff), SERVER, (uint16_t)(1024 + i % 60000),
		    SERVER_PORT, TH_SYN, 7 * i, 0, 65535, 0, NO_WS);
}

static uint32_t ct_one(struct ferry_ct_thread *th, struct tpkt p, const struct ferry_ct_action *a)
{
	struct ferry_ct_pkt k = { .data = p.b, .len = p.len, .l3_ofs = TP_ETH, .eth_type = p.eth_type };
	struct ferry_ct_result res;
	ferry_ct_execute(th, &k, &a, 1, now, &res);
	return res.state;
}

/* Pops every pending event: CT_NEW counted; a CT_DESTROY must be an eviction of an
 * unreplied flood entry (counted in *evicted), anything else counts in *wrong. */
static void pop_events(struct ferry_ct *ct, uint64_t *created, uint64_t *evicted, unsigned *wrong)
{
	uint16_t type;
	struct ferry_ct_event ev;
	while (ferry_ct_events_pop(ct, &type, &ev)) {
		bool flood = ev.entry.src[0] == 172 && (ev.entry.src[1] & 0xf0) == 16; /* flood_syn's */
		if (type == FERRY_EVENT_TYPE_CT_NEW)
			(*created)++;
		else if (type == FERRY_EVENT_TYPE_CT_DESTROY && ev.reason == FERRY_CT_DESTROY_REASON_EVICTED && flood &&
			 !(ev.entry.flags & FERRY_CT_ENTRY_FLAG_SEEN_REPLY))
			(*evicted)++;
		else if ((*wrong)++ == 0)
			fprintf(stderr, "  unexpected event %u reason %u from %u.%u.%u.%u\n", type, ev.reason,
				ev.entry.src[0], ev.entry.src[1], ev.entry.src[2], ev.entry.src[3]);
	}
}

/* 100 connections established through ct(commit), then 100,000 SYNs from unique
 * sources against a global limit of 1000: the table fills to the limit and stays
 * there, early drop takes only unreplied (flood) entries, every flood SYN still gets
 * new|trk, and the established connections stay est both ways. */
static void test_syn_flood_at_ct_limit(void)
{
	struct pools pools = pools_mark();
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = CT_CAPACITY, .events = true,
									 .event_slots = 1024 });
	CHECK(ct != NULL);
	if (ct == NULL)
		return;
	struct ferry_ct_thread th;
	ferry_ct_thread_init(ct, &th);
	struct ferry_ct_limit_req lim = { .target = FERRY_CT_LIMIT_TARGET_GLOBAL, .limit = CT_LIMIT };
	CHECK_EQ(ferry_ct_set_limit(ct, &lim), 0);
	CHECK_EQ(ferry_ct_max_conns(ct), CT_LIMIT);

	unsigned bad_handshakes = 0;
	for (unsigned i = 0; i < CT_ESTABLISHED; i++)
		for (unsigned step = STEP_SYN; step <= STEP_ACK; step++)
			bad_handshakes += ct_one(&th, conn_pkt(i, step), &COMMIT_ACT) != step_state[step];
	CHECK_EQ(bad_handshakes, 0);
	CHECK_EQ(ferry_ct_count(ct), CT_ESTABLISHED);
	uint64_t ev_created = 0, ev_evicted = 0;
	unsigned ev_wrong = 0;
	pop_events(ct, &ev_created, &ev_evicted, &ev_wrong);
	CHECK_EQ(ev_created, CT_ESTABLISHED);
	uint64_t created0 = *th.created;

	static struct tpkt syn[FERRY_CT_BURST_MAX];
	struct ferry_ct_pkt k[FERRY_CT_BURST_MAX];
	struct ferry_ct_result res[FERRY_CT_BURST_MAX];
	const struct ferry_ct_action *acts[FERRY_CT_BURST_MAX];
	unsigned sent = 0, bad_state = 0, bad_count = 0;
	while (sent < CT_SYN_FLOOD) {
		unsigned n = RTE_MIN(FERRY_CT_BURST_MAX, CT_SYN_FLOOD - sent);
		for (unsigned i = 0; i < n; i++) {
			syn[i] = flood_syn(sent + i);
			k[i] = (struct ferry_ct_pkt){ .data = syn[i].b, .len = syn[i].len, .l3_ofs = TP_ETH,
						      .eth_type = syn[i].eth_type };
			acts[i] = &COMMIT_ACT;
		}
		now += 10 * USEC;
		ferry_ct_execute(&th, k, acts, n, now, res);
		/* committed, committed after an early drop, or refused: new|trk all the same */
		for (unsigned i = 0; i < n; i++)
			bad_state += res[i].state != (NEW | TRK) || res[i].tp_src != tp_r16(syn[i].b + syn[i].l4_ofs);
		sent += n;
		/* below the limit every SYN makes an entry; at it, none more */
		if (ferry_ct_count(ct) != RTE_MIN(CT_LIMIT, CT_ESTABLISHED + sent) && bad_count++ == 0)
			fprintf(stderr, "  after %u SYNs: %llu entries\n", sent, (unsigned long long)ferry_ct_count(ct));
		pop_events(ct, &ev_created, &ev_evicted, &ev_wrong);
	}
	CHECK_EQ(bad_state, 0);
	CHECK_EQ(bad_count, 0);
	CHECK_EQ(ev_wrong, 0);
	uint64_t created = *th.created - created0;
	printf("  SYN flood: %u SYNs, %llu committed (%llu after an early drop), %llu refused\n", CT_SYN_FLOOD,
	       (unsigned long long)created, (unsigned long long)*th.early_drops,
	       (unsigned long long)*th.limit_refused);
	CHECK_EQ(created + *th.limit_refused, CT_SYN_FLOOD);
	CHECK_EQ(ferry_ct_count(ct), CT_ESTABLISHED + created - *th.early_drops);
	CHECK_EQ(ferry_ct_count(ct), CT_LIMIT);
	CHECK_EQ(ev_evicted, *th.early_drops);
	CHECK_EQ(ev_created, CT_ESTABLISHED + created);
	CHECK(*th.early_drops > 0);  /* both ways past the limit were taken */
	CHECK(*th.limit_refused > 0);

	/* the established connections never went */
	unsigned lost = 0;
	for (unsigned i = 0; i < CT_ESTABLISHED; i++)
		for (unsigned step = STEP_DATA; step <= STEP_REPLY; step++)
			lost += ct_one(&th, conn_pkt(i, step), &TRACK_ACT) != step_state[step];
	CHECK_EQ(lost, 0);

	/* the flood's entries time out as unanswered SYNs do; the connections stay */
	now += (uint64_t)ferry_ct_timeout(ct, 0, FERRY_CT_TM_TCP_SYN_SENT) * 1000 * MSEC;
	CHECK_EQ(ferry_ct_sweep(&th, now), CT_LIMIT - CT_ESTABLISHED);
	CHECK_EQ(ferry_ct_count(ct), CT_ESTABLISHED);
	ferry_ct_thread_fini(&th);
	ferry_ct_destroy(ct);
	pools_check(&pools);
}

/* ---------------------------------------------------------------- SYN flood, pipeline */

static void c_run(uint16_t in_port, const struct tpkt *p, unsigned n)
{
	struct rte_mbuf *m[FERRY_BURST];
	for (unsigned i = 0; i < n; i++)
		m[i] = must(ferry_mbuf_from_bytes(ports.pool[0], p[i].b, p[i].len, 0));
	run(&C, in_port, m, (uint16_t)n);
}

/* steps first..last of every established connection through C, each from its side */
static void c_conns(unsigned first, unsigned last)
{
	for (unsigned i = 0; i < PL_ESTABLISHED; i++)
		for (unsigned step = first; step <= last; step++) {
			struct tpkt p = conn_pkt(i, step);
			c_run(from_server(step) ? PL_SERVER_PORT : PL_CLIENT_PORT, &p, 1);
		}
}

static uint32_t ct_state_rule(uint16_t priority, uint32_t in_port, uint32_t state, bool commit, uint32_t out)
{
	struct ferry_rule r = rule(1, priority, in_port);
	r.key.ct_state = state;
	r.mask.ct_state = state;
	if (commit)
		ACT(r, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = FERRY_TABLE_NONE, .zone = PL_ZONE,
		    .flags = FERRY_CT_FLAG_COMMIT);
	OUTPUT(r, out);
	return add(&C.ft, &r, ferry_ports_mask_first(N_PORTS));
}

/* The same flood, shorter, through flows: table 0 ct(table=1,zone=5); table 1
 * +new from clients: ct(commit,zone=5),output:2; +est: output to the other side.
 * Zone 5's limit binds here (its own early drop path). A SYN past the limit is still
 * new|trk and so still forwarded, as in OVS: the limit bounds state, not traffic. */
static void test_syn_flood_through_pipeline(void)
{
	struct pools pools = pools_mark();
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = CT_CAPACITY });
	CHECK(ct != NULL);
	if (ct == NULL)
		return;
	struct ferry_ct_limit_req lim = { .target = FERRY_CT_LIMIT_TARGET_ZONE, .zone = PL_ZONE, .limit = PL_LIMIT };
	CHECK_EQ(ferry_ct_set_limit(ct, &lim), 0);
	node_init(&C, 2, PL_CLIENT_PORT, PL_SERVER_PORT, ct);

	struct ferry_rule r0 = rule(0, 100, 0);
	r0.mask.in_port = 0;
	r0.key.eth_type = 0x0800;
	r0.mask.eth_type = 0xffff;
	ACT(r0, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = 1, .zone = PL_ZONE);
	add(&C.ft, &r0, ferry_ports_mask_first(N_PORTS));
	uint32_t s_new = ct_state_rule(100, PL_CLIENT_PORT, TRK | NEW, true, PL_SERVER_PORT);
	uint32_t s_fwd = ct_state_rule(90, PL_CLIENT_PORT, TRK | EST, false, PL_SERVER_PORT);
	uint32_t s_rev = ct_state_rule(100, PL_SERVER_PORT, TRK | EST, false, PL_CLIENT_PORT);

	c_conns(STEP_SYN, STEP_ACK);
	CHECK_EQ(drain(PL_SERVER_PORT), 2 * PL_ESTABLISHED);
	CHECK_EQ(drain(PL_CLIENT_PORT), PL_ESTABLISHED);
	CHECK_EQ(ferry_ct_zone_count(ct, PL_ZONE), PL_ESTABLISHED);
	CHECK_EQ(C.ws.ct_created, PL_ESTABLISHED);

	static struct tpkt p[FERRY_BURST];
	unsigned sent = 0, bad_count = 0, not_forwarded = 0;
	while (sent < PL_SYN_FLOOD) {
		unsigned n = RTE_MIN((unsigned)FERRY_BURST, PL_SYN_FLOOD - sent);
		for (unsigned i = 0; i < n; i++)
			p[i] = flood_syn(sent + i);
		now += 10 * USEC;
		c_run(PL_CLIENT_PORT, p, n);
		sent += n;
		not_forwarded += n - drain(PL_SERVER_PORT);
		if (ferry_ct_zone_count(ct, PL_ZONE) != RTE_MIN(PL_LIMIT, PL_ESTABLISHED + sent) && bad_count++ == 0)
			fprintf(stderr, "  after %u SYNs: %u entries in zone %u\n", sent,
				ferry_ct_zone_count(ct, PL_ZONE), PL_ZONE);
	}
	CHECK_EQ(not_forwarded, 0);
	CHECK_EQ(bad_count, 0);
	CHECK_EQ(drain(PL_CLIENT_PORT), 0);
	uint64_t created = C.ws.ct_created - PL_ESTABLISHED;
	CHECK_EQ(created + C.ws.ct_limit_refused, PL_SYN_FLOOD);
	CHECK_EQ(ferry_ct_zone_count(ct, PL_ZONE), PL_ESTABLISHED + created - C.ws.ct_early_drops);
	CHECK_EQ(ferry_ct_zone_count(ct, PL_ZONE), PL_LIMIT);
	CHECK_EQ(ferry_ct_count(ct), PL_LIMIT);
	CHECK(C.ws.ct_early_drops > 0);
	CHECK(C.ws.ct_limit_refused > 0);

	/* data both ways on every established connection still matches +est */
	c_conns(STEP_DATA, STEP_REPLY);
	CHECK_EQ(drain(PL_SERVER_PORT), PL_ESTABLISHED);
	CHECK_EQ(drain(PL_CLIENT_PORT), PL_ESTABLISHED);
	CHECK_EQ(C.fs[s_fwd].packets, 2 * PL_ESTABLISHED); /* the handshakes' ACKs, then the data */
	CHECK_EQ(C.fs[s_rev].packets, 2 * PL_ESTABLISHED); /* SYN-ACKs, then the replies */
	CHECK_EQ(C.fs[s_new].packets, PL_ESTABLISHED + PL_SYN_FLOOD); /* every flood SYN was new|trk */
	uint64_t drops = 0;
	for (unsigned i = 0; i < FERRY_DROP_REASONS; i++)
		drops += C.ws.drops[i];
	CHECK_EQ(drops, 0);

	CHECK_EQ(C.w.rq_n, 0);
	node_fini(&C);
	ferry_ct_destroy(ct);
	for (uint16_t port = 0; port < N_PORTS; port++)
		CHECK_EQ(drain(port), 0);
	pools_check(&pools);
}

static void test_no_mbuf_leaked(void)
{
	check_no_mbuf_leaked(&A, &B);
}

int main(void)
{
	ferry_test_eal_init("floods", NULL, 0);
	if (ferry_test_ring_ports("f", N_PORTS, RING, rx_ring, tx_ring, &ports) != 0)
		return 1;
	mbufs_at_start = ferry_ports_mbufs_available(&ports);
	node_init(&A, 0, 0, 1, NULL);
	node_init(&B, 1, 2, 3, NULL);

	RUN(test_stt_flood_keeps_reassembly_under_cap);
	RUN(test_syn_flood_at_ct_limit);
	RUN(test_syn_flood_through_pipeline);
	RUN(test_no_mbuf_leaked); /* last */

	node_fini(&A);
	node_fini(&B);
	ferry_ports_stop(&ports);
	rte_eal_cleanup();
	return ftest_finish();
}
