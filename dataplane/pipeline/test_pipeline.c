/* The worker's burst path end to end over ring-backed ethdevs: real Ethernet/IPv4/UDP
 * and TCP frames go through parse -> EMC or translation over the OpenFlow tables ->
 * the compiled ops -> tx. Each test checks where packets come out, their bytes
 * (rewrites with checksums recomputed from scratch) and the exact counters. Every
 * test starts from an empty flow table and zeroed counters; no mbuf may leak. */
#include <string.h>
#include <rte_byteorder.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_ring.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "../ports/ports.h"
#include "actions.h"
#include "worker.h"

#define N_PORTS 4
#define SMALL_PORT 3 /* its tx ring holds only SMALL_RING - 1 packets */
#define SMALL_RING 16
#define BIG_RING 256
#define MAX_FLOWS 64
#define PAYLOAD 18
#define UDP_LEN (14 + 20 + 8 + PAYLOAD)  /* 60 */
#define TCP_LEN (14 + 20 + 20 + PAYLOAD) /* 72 */
#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define OK FERRY_STATUS_OK
#define TRK_INV (FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_INV)

static struct rte_ring *rx_ring[N_PORTS], *tx_ring[N_PORTS];
static struct ferry_ports ports;
static struct ferry_flow_table ft;
static struct ferry_worker w;
static struct ferry_worker_stats ws __rte_cache_aligned;
static struct ferry_flow_stats fs[MAX_FLOWS];
static struct ferry_table_stats ts[FERRY_N_TABLES];
static uint64_t now = 1000000000000ull; /* the burst's time; tests move it forward */
static uint64_t next_id;
static unsigned mbufs_at_start;

static const uint8_t MAC_SRC[6] = { 2, 0, 0, 0, 0, 1 }, MAC_DST[6] = { 2, 0, 0, 0, 0, 2 };

/* ---------------------------------------------------------------- packets */

/* Ethernet/IPv4/UDP or TCP from src:sport to dst:dport, with correct checksums. */
static struct rte_mbuf *mk(uint8_t proto, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t ttl)
{
	uint16_t l4len = proto == IPPROTO_TCP ? 20 : 8, len = (uint16_t)(34 + l4len + PAYLOAD);
	struct rte_mbuf *m = rte_pktmbuf_alloc(ports.pool[0]);
	uint8_t *d = m ? (uint8_t *)rte_pktmbuf_append(m, len) : NULL;
	if (d == NULL) {
		fprintf(stderr, "out of mbufs\n");
		exit(1);
	}
	memset(d, 0, len);
	memcpy(d, MAC_DST, 6);
	memcpy(d + 6, MAC_SRC, 6);
	d[12] = 0x08;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(d + 14);
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(len - 14));
	ip->packet_id = rte_cpu_to_be_16(0x1234);
	ip->time_to_live = ttl;
	ip->next_proto_id = proto;
	ip->src_addr = rte_cpu_to_be_32(src);
	ip->dst_addr = rte_cpu_to_be_32(dst);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	uint8_t *l4 = d + 34;
	l4[0] = (uint8_t)(sport >> 8), l4[1] = (uint8_t)sport;
	l4[2] = (uint8_t)(dport >> 8), l4[3] = (uint8_t)dport;
	if (proto == IPPROTO_TCP)
		l4[7] = 1, l4[12] = 0x50, l4[13] = 0x18, l4[14] = 0x20; /* seq 1, 5 words, PSH|ACK, window */
	else
		l4[5] = 8 + PAYLOAD;
	for (int i = 0; i < PAYLOAD; i++)
		l4[l4len + i] = (uint8_t)(0x40 + i);
	uint16_t c = rte_ipv4_udptcp_cksum(ip, l4);
	memcpy(l4 + (proto == IPPROTO_TCP ? 16 : 6), &c, 2);
	return m;
}

static struct rte_mbuf *udp(uint32_t src, uint32_t dst)
{
	return mk(IPPROTO_UDP, src, dst, 1234, 53, 64);
}

static const uint8_t *bytes(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, const uint8_t *);
}

/* m, its frame copied to ref first */
static struct rte_mbuf *keep(struct rte_mbuf *m, uint8_t *ref)
{
	memcpy(ref, bytes(m), m->pkt_len);
	return m;
}

/* The IPv4 header and UDP/TCP checksums recomputed from scratch equal the ones the
 * frame carries (an 802.1Q tag is skipped). */
static int csums_ok(const struct rte_mbuf *m)
{
	uint8_t buf[256] __attribute__((aligned(8)));
	unsigned len = rte_pktmbuf_data_len(m);
	if (len > sizeof(buf))
		return 0;
	memcpy(buf, bytes(m), len);
	unsigned l3 = buf[12] == 0x81 && buf[13] == 0x00 ? 18 : 14;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + l3);
	uint16_t ipc = ip->hdr_checksum, l4c;
	ip->hdr_checksum = 0;
	if (rte_ipv4_cksum(ip) != ipc)
		return 0;
	ip->hdr_checksum = ipc;
	uint8_t *l4c_at = buf + l3 + 20 + (ip->next_proto_id == IPPROTO_TCP ? 16 : 6);
	memcpy(&l4c, l4c_at, 2);
	memset(l4c_at, 0, 2);
	return rte_ipv4_udptcp_cksum(ip, buf + l3 + 20) == l4c;
}

/* ---------------------------------------------------------------- flows */

static struct ferry_rule flow(uint8_t table, uint16_t priority)
{
	struct ferry_rule r;
	memset(&r, 0, sizeof(r));
	r.id = ++next_id;
	r.cookie = 0xc0c0000000000000ull | r.id;
	r.table_id = table;
	r.priority = priority;
	return r;
}

/* key.f = v under mask m (the key stays masked) */
#define MATCH(r, f, v, m) do { (r).key.f = (v) & (m); (r).mask.f = (m); } while (0)

static struct ferry_rule port_flow(uint8_t table, uint16_t priority, uint32_t in_port)
{
	struct ferry_rule r = flow(table, priority);
	MATCH(r, in_port, in_port, UINT32_MAX);
	return r;
}

static void match_nw_src(struct ferry_rule *r, uint32_t ip, unsigned plen)
{
	uint32_t m = plen ? UINT32_MAX << (32 - plen) : 0;
	uint32_t kb = rte_cpu_to_be_32(ip & m), mb = rte_cpu_to_be_32(m);
	MATCH(*r, eth_type, 0x0800, 0xffff);
	memcpy(r->key.nw_src, &kb, 4);
	memcpy(r->mask.nw_src, &mb, 4);
}

static void match_nw_dst(struct ferry_rule *r, uint32_t ip, unsigned plen)
{
	uint32_t m = plen ? UINT32_MAX << (32 - plen) : 0;
	uint32_t kb = rte_cpu_to_be_32(ip & m), mb = rte_cpu_to_be_32(m);
	MATCH(*r, eth_type, 0x0800, 0xffff);
	memcpy(r->key.nw_dst, &kb, 4);
	memcpy(r->mask.nw_dst, &mb, 4);
}

/* Appends an action TLV: ACT(rule, struct, type, body initialisers...) */
#define ACT(r, T, TYPE, ...) do { \
	T a_ = { .hdr = { .type = (TYPE), .len = sizeof(T) }, __VA_ARGS__ }; \
	memcpy((r).actions + (r).actions_len, &a_, sizeof(a_)); \
	(r).actions_len = (uint16_t)((r).actions_len + sizeof(a_)); \
} while (0)
#define BARE(r, TYPE) do { \
	struct ferry_act_hdr h_ = { .type = (TYPE), .len = sizeof(h_) }; \
	memcpy((r).actions + (r).actions_len, &h_, sizeof(h_)); \
	(r).actions_len = (uint16_t)((r).actions_len + sizeof(h_)); \
} while (0)
#define OUTPUT(r, p) ACT(r, struct ferry_act_output, FERRY_ACTION_TYPE_OUTPUT, .port = (p))
#define GOTO(r, t) ACT(r, struct ferry_act_goto_table, FERRY_ACTION_TYPE_GOTO_TABLE, .table_id = (t))
#define RESUBMIT(r, t) ACT(r, struct ferry_act_resubmit, FERRY_ACTION_TYPE_RESUBMIT, \
			   .in_port = FERRY_PORT_IN_PORT, .table_id = (t))
#define PUSH_VLAN(r, tp) ACT(r, struct ferry_act_push_vlan, FERRY_ACTION_TYPE_PUSH_VLAN, .tpid = (tp))
#define CT(r, t, z) ACT(r, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = (t), .zone = (z))
#define CONTROLLER(r, n) ACT(r, struct ferry_act_controller, FERRY_ACTION_TYPE_CONTROLLER, .max_len = (n))

/* set_field with value and mask in the key's representation of the field */
static void set_field(struct ferry_rule *r, uint16_t field, const void *value, const void *mask, unsigned len)
{
	struct ferry_act_set_field a = { .hdr = { .type = FERRY_ACTION_TYPE_SET_FIELD, .len = sizeof(a) }, .field = field };
	memcpy(a.value, value, len);
	memcpy(a.mask, mask, len);
	memcpy(r->actions + r->actions_len, &a, sizeof(a));
	r->actions_len = (uint16_t)(r->actions_len + sizeof(a));
}

static void set_ip(struct ferry_rule *r, uint16_t field, uint32_t ip, uint32_t mask)
{
	uint32_t v = rte_cpu_to_be_32(ip), m = rte_cpu_to_be_32(mask);
	set_field(r, field, &v, &m, 4);
}

static void set_u16(struct ferry_rule *r, uint16_t field, uint16_t v, uint16_t m)
{
	set_field(r, field, &v, &m, 2);
}

/* Validates the actions as a flow_mod would be, stages the flow; its stats slot. */
static uint32_t add(const struct ferry_rule *r)
{
	char why[FERRY_ERR_MSG_LEN] = "";
	uint32_t slot = 0;
	int st = ferry_actions_validate(r->actions, r->actions_len, r->table_id, ferry_ports_mask_first(N_PORTS), why, sizeof(why));
	if (st == OK)
		st = ferry_flow_table_add(&ft, r, false, &slot, why, sizeof(why));
	if (st != OK)
		fprintf(stderr, "  flow %llu refused: %s\n", (unsigned long long)r->id, why);
	CHECK_EQ(st, OK);
	CHECK(slot < MAX_FLOWS);
	return slot;
}

static void commit(void)
{
	CHECK_EQ(ferry_flow_table_commit_batch(&ft), OK);
	w.version = ferry_flow_table_version(&ft); /* as the worker loop does per burst */
	w.headers_needed = ft.headers_needed;
}

/* ---------------------------------------------------------------- running */

static void run(uint16_t in_port, struct rte_mbuf **pkts, uint16_t n)
{
	w.now_ns = now;
	w.version = ferry_flow_table_version(&ft);
	w.headers_needed = ft.headers_needed;
	ferry_worker_process_burst(&w, in_port, pkts, n);
}

static void run1(uint16_t in_port, struct rte_mbuf *m)
{
	run(in_port, &m, 1);
}

/* A burst of n identical UDP frames on in_port (the frame copied to ref if given). */
static void run_udp(uint16_t in_port, uint16_t n, uint8_t *ref)
{
	struct rte_mbuf *in[FERRY_BURST];
	for (uint16_t i = 0; i < n; i++)
		in[i] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	if (ref)
		memcpy(ref, bytes(in[0]), UDP_LEN);
	run(in_port, in, n);
}

/* Drains and frees what port transmitted. Returns how many frames it sent, counting
 * only those equal to ref (len bytes) when ref is given. */
static unsigned out(uint16_t port, const uint8_t *ref, unsigned len)
{
	struct rte_mbuf *m[BIG_RING];
	unsigned n = rte_ring_dequeue_burst(tx_ring[port], (void **)m, BIG_RING, NULL), same = 0;
	for (unsigned i = 0; i < n; i++) {
		same += ref == NULL || (m[i]->pkt_len == len && memcmp(bytes(m[i]), ref, len) == 0);
		rte_pktmbuf_free(m[i]);
	}
	return same;
}

/* The one frame port transmitted (NULL if it sent none or more). */
static struct rte_mbuf *out1(uint16_t port)
{
	struct rte_mbuf *m[2];
	unsigned n = rte_ring_dequeue_burst(tx_ring[port], (void **)m, 2, NULL);
	if (n == 1)
		return m[0];
	for (unsigned i = 0; i < n; i++)
		rte_pktmbuf_free(m[i]);
	return NULL;
}

static unsigned out_all(void)
{
	unsigned n = 0;
	for (uint16_t p = 0; p < N_PORTS; p++)
		n += out(p, NULL, 0);
	return n;
}

static void free_punts(void)
{
	struct ferry_punt p;
	while (rte_ring_dequeue_elem(w.punts, &p, sizeof(p)) == 0)
		rte_pktmbuf_free(p.m);
}

/* Every test: an empty flow table, zeroed counters, a later time. */
static void fresh(void)
{
	out_all();
	free_punts();
	ferry_flow_table_clear(&ft);
	commit();
	memset(&ws, 0, sizeof(ws));
	memset(fs, 0, sizeof(fs));
	memset(ts, 0, sizeof(ts));
	now += 1000000000ull;
}

static uint64_t drops_total(void)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < FERRY_DROP_REASONS; i++)
		t += ws.drops[i];
	return t;
}

#define CHECK_RX(p, pkts, byts, dropped) do { CHECK_EQ(ws.ports[p].rx_packets, pkts); \
	CHECK_EQ(ws.ports[p].rx_bytes, byts); CHECK_EQ(ws.ports[p].rx_dropped, dropped); } while (0)
#define CHECK_TX(p, pkts, byts, dropped) do { CHECK_EQ(ws.ports[p].tx_packets, pkts); \
	CHECK_EQ(ws.ports[p].tx_bytes, byts); CHECK_EQ(ws.ports[p].tx_dropped, dropped); } while (0)
#define CHECK_TABLE(t, lookups_, matches_, misses_) do { CHECK_EQ(ts[t].lookups, lookups_); \
	CHECK_EQ(ts[t].matches, matches_); CHECK_EQ(ts[t].misses, misses_); } while (0)

/* ---------------------------------------------------------------- tests */

static void test_output(void)
{
	fresh();
	struct ferry_rule r = port_flow(0, 100, 0);
	OUTPUT(r, 1);
	uint32_t slot = add(&r);
	commit();

	uint8_t ref[UDP_LEN];
	run_udp(0, 4, ref);

	CHECK_EQ(out(1, ref, UDP_LEN), 4); /* unchanged */
	CHECK_EQ(out_all(), 0);
	CHECK_RX(0, 4, 4 * UDP_LEN, 0);
	CHECK_TX(1, 4, 4 * UDP_LEN, 0);
	CHECK_EQ(fs[slot].packets, 4);
	CHECK_EQ(fs[slot].bytes, 4 * UDP_LEN);
	CHECK_EQ(fs[slot].last_hit_ns, now);
	CHECK_TABLE(0, 4, 4, 0);
	CHECK_EQ(ws.emc_misses, 1); /* four identical packets: one translation */
	CHECK_EQ(ws.emc_hits, 3);
	CHECK_EQ(drops_total(), 0);
}

static void test_drop_and_table_miss(void)
{
	fresh();
	struct ferry_rule r = flow(0, 100); /* in_port=1 actions=drop; nothing for port 2 */
	MATCH(r, in_port, 1, UINT32_MAX);
	uint32_t slot = add(&r);
	commit();

	run_udp(1, 3, NULL);
	run_udp(2, 2, NULL);

	CHECK_EQ(out_all(), 0);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_NO_ACTIONS], 3);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_TABLE_MISS], 2);
	CHECK_EQ(drops_total(), 5);
	CHECK_RX(1, 3, 3 * UDP_LEN, 3);
	CHECK_RX(2, 2, 2 * UDP_LEN, 2);
	CHECK_EQ(fs[slot].packets, 3);
	CHECK_TABLE(0, 5, 3, 2);
	for (int p = 0; p < N_PORTS; p++)
		CHECK_TX(p, 0, 0, 0);
}

static void test_priorities_and_masks(void)
{
	fresh();
	struct ferry_rule wide = flow(0, 10), narrow = flow(0, 20);
	match_nw_src(&wide, IP4(10, 0, 0, 0), 8);
	OUTPUT(wide, 1);
	match_nw_src(&narrow, IP4(10, 1, 0, 0), 16);
	OUTPUT(narrow, 2);
	uint32_t s_wide = add(&wide), s_narrow = add(&narrow);
	commit();

	uint32_t src[5] = { IP4(10, 1, 2, 3), IP4(10, 2, 3, 4), IP4(10, 1, 200, 7), IP4(10, 255, 0, 1),
			    IP4(11, 1, 0, 1) /* neither: a miss */ };
	for (int i = 0; i < 5; i++) {
		struct rte_mbuf *m = udp(src[i], IP4(10, 9, 9, 9));
		uint8_t ref[UDP_LEN];
		memcpy(ref, bytes(m), UDP_LEN);
		run1(0, m);
		CHECK_EQ(out(2, ref, UDP_LEN), i == 0 || i == 2);
		CHECK_EQ(out(1, ref, UDP_LEN), i == 1 || i == 3);
	}
	CHECK_EQ(fs[s_narrow].packets, 2);
	CHECK_EQ(fs[s_wide].packets, 2);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_TABLE_MISS], 1);
	CHECK_EQ(drops_total(), 1);
	CHECK_TABLE(0, 5, 4, 1);
}

static void test_goto_table_and_resubmit(void)
{
	fresh();
	/* port 0: table 0 -> goto_table:1 -> output:1 */
	struct ferry_rule g = flow(0, 100), t1 = flow(1, 100);
	MATCH(g, in_port, 0, UINT32_MAX);
	GOTO(g, 1);
	MATCH(t1, in_port, 0, UINT32_MAX);
	OUTPUT(t1, 1);
	/* port 1: table 0 -> resubmit(,2) (output:2 there), output:1 (its in_port: skipped), output:3 */
	struct ferry_rule rs = flow(0, 100), t2 = flow(2, 100);
	MATCH(rs, in_port, 1, UINT32_MAX);
	RESUBMIT(rs, 2);
	OUTPUT(rs, 1);
	OUTPUT(rs, 3);
	MATCH(t2, in_port, 1, UINT32_MAX);
	OUTPUT(t2, 2);
	uint32_t s_g = add(&g), s_t1 = add(&t1), s_rs = add(&rs), s_t2 = add(&t2);
	commit();

	run_udp(0, 2, NULL);
	uint8_t ref[UDP_LEN];
	run1(1, keep(udp(IP4(10, 0, 0, 7), IP4(10, 0, 0, 8)), ref));

	CHECK_EQ(out(1, NULL, 0), 2);
	CHECK_EQ(out(2, ref, UDP_LEN), 1); /* both outputs of one packet */
	CHECK_EQ(out(3, ref, UDP_LEN), 1);
	CHECK_EQ(out(0, NULL, 0), 0);
	CHECK_TX(1, 2, 2 * UDP_LEN, 0);
	CHECK_TX(2, 1, UDP_LEN, 0);
	CHECK_TX(3, 1, UDP_LEN, 0);
	CHECK_EQ(fs[s_g].packets, 2);
	CHECK_EQ(fs[s_t1].packets, 2);
	CHECK_EQ(fs[s_rs].packets, 1);
	CHECK_EQ(fs[s_t2].packets, 1);
	CHECK_TABLE(0, 3, 3, 0);
	CHECK_TABLE(1, 2, 2, 0);
	CHECK_TABLE(2, 1, 1, 0);
	CHECK_EQ(drops_total(), 0);
}

static void test_set_field_rewrites_with_checksums(void)
{
	fresh();
	static const uint8_t mac[6] = { 2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee }, ones[6] = { 255, 255, 255, 255, 255, 255 };
	for (uint8_t port = 1; port <= 2; port++) { /* TCP to port 1, UDP to port 2 */
		struct ferry_rule r = flow(0, 100);
		MATCH(r, in_port, 0, UINT32_MAX);
		MATCH(r, eth_type, 0x0800, 0xffff);
		MATCH(r, nw_proto, port == 1 ? IPPROTO_TCP : IPPROTO_UDP, 0xff);
		set_ip(&r, FERRY_FIELD_ID_IPV4_SRC, IP4(192, 168, 7, 9), UINT32_MAX);
		set_ip(&r, FERRY_FIELD_ID_IPV4_DST, IP4(0, 0, 0, 77), 0xff); /* the last byte only */
		set_u16(&r, FERRY_FIELD_ID_TP_DST, 5353, 0xffff);
		set_field(&r, FERRY_FIELD_ID_ETH_DST, mac, ones, 6);
		OUTPUT(r, port);
		add(&r);
	}
	commit();

	run1(0, mk(IPPROTO_TCP, IP4(10, 0, 0, 1), IP4(10, 0, 0, 2), 40000, 80, 64));
	run1(0, mk(IPPROTO_UDP, IP4(10, 0, 0, 1), IP4(10, 0, 0, 2), 1234, 53, 64));
	for (uint16_t port = 1; port <= 2; port++) {
		struct rte_mbuf *o = out1(port);
		CHECK(o != NULL);
		if (o == NULL)
			continue;
		const uint8_t *d = bytes(o);
		static const uint8_t src[4] = { 192, 168, 7, 9 }, dst[4] = { 10, 0, 0, 77 }, dport[2] = { 0x14, 0xe9 };
		CHECK_EQ(o->pkt_len, port == 1 ? TCP_LEN : UDP_LEN);
		CHECK(memcmp(d, mac, 6) == 0 && memcmp(d + 6, MAC_SRC, 6) == 0);
		CHECK(memcmp(d + 26, src, 4) == 0);
		CHECK(memcmp(d + 30, dst, 4) == 0);
		CHECK(memcmp(d + 36, dport, 2) == 0);
		CHECK_EQ(d[34] << 8 | d[35], port == 1 ? 40000 : 1234); /* source port untouched */
		CHECK(csums_ok(o));
		rte_pktmbuf_free(o);
	}
	CHECK_EQ(drops_total(), 0);
}

static void test_push_and_pop_vlan(void)
{
	fresh();
	struct ferry_rule push = flow(0, 100), pop = flow(0, 100);
	MATCH(push, in_port, 0, UINT32_MAX);
	PUSH_VLAN(push, 0x8100);
	set_u16(&push, FERRY_FIELD_ID_VLAN_VID, 100, 0x0fff);
	OUTPUT(push, 1);
	MATCH(pop, in_port, 1, UINT32_MAX);
	MATCH(pop, vlan_tci, 0x1000 | 100, 0x1fff);
	BARE(pop, FERRY_ACTION_TYPE_POP_VLAN);
	OUTPUT(pop, 2);
	add(&push);
	uint32_t s_pop = add(&pop);
	commit();

	uint8_t ref[UDP_LEN];
	run1(0, keep(udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2)), ref));
	struct rte_mbuf *t = out1(1);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	static const uint8_t tag[4] = { 0x81, 0x00, 0x00, 100 };
	CHECK_EQ(t->pkt_len, UDP_LEN + 4);
	CHECK(memcmp(bytes(t), ref, 12) == 0);
	CHECK(memcmp(bytes(t) + 12, tag, 4) == 0);
	CHECK(memcmp(bytes(t) + 16, ref + 12, UDP_LEN - 12) == 0);
	CHECK(csums_ok(t));
	CHECK_TX(1, 1, UDP_LEN + 4, 0);

	run1(1, t); /* the tagged frame comes back in on port 1: untagged out of port 2 */
	CHECK_EQ(out(2, ref, UDP_LEN), 1);
	CHECK_RX(1, 1, UDP_LEN + 4, 0);
	CHECK_TX(2, 1, UDP_LEN, 0);
	CHECK_EQ(fs[s_pop].packets, 1);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(drops_total(), 0);
}

static void test_dec_ttl(void)
{
	fresh();
	struct ferry_rule r = port_flow(0, 100, 0);
	BARE(r, FERRY_ACTION_TYPE_DEC_TTL);
	OUTPUT(r, 1);
	add(&r);
	commit();

	run1(0, mk(IPPROTO_TCP, IP4(10, 0, 0, 1), IP4(10, 0, 0, 2), 1000, 22, 64));
	struct rte_mbuf *o = out1(1);
	CHECK(o != NULL);
	if (o) {
		CHECK_EQ(bytes(o)[22], 63);
		CHECK(csums_ok(o));
		rte_pktmbuf_free(o);
	}
	run1(0, mk(IPPROTO_UDP, IP4(10, 0, 0, 1), IP4(10, 0, 0, 2), 1000, 53, 1));
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_TTL_EXCEEDED], 1);
	CHECK_EQ(drops_total(), 1); /* counted once, under its reason */
	CHECK_RX(0, 2, TCP_LEN + UDP_LEN, 1);
	CHECK_TX(1, 1, TCP_LEN, 0);
}

/* ct is a stub: a recirculated packet is trk|inv in the zone of the action. */
static void test_ct_recirculation(void)
{
	fresh();
	struct ferry_rule ct = flow(0, 100), t1 = flow(1, 100);
	MATCH(ct, eth_type, 0x0800, 0xffff);
	CT(ct, 1, 5);
	MATCH(t1, ct_state, TRK_INV, TRK_INV);
	MATCH(t1, ct_zone, 5, 0xffff);
	OUTPUT(t1, 2);
	uint32_t s_ct = add(&ct), s_t1 = add(&t1);
	commit();

	uint8_t ref[UDP_LEN];
	run_udp(0, 3, ref);
	CHECK_EQ(out(2, ref, UDP_LEN), 3);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(ws.recirculations, 3);
	CHECK_EQ(fs[s_ct].packets, 3);
	CHECK_EQ(fs[s_t1].packets, 3);
	CHECK_TABLE(0, 3, 3, 0);
	CHECK_TABLE(1, 3, 3, 0);
	CHECK_TX(2, 3, 3 * UDP_LEN, 0);
	CHECK_EQ(drops_total(), 0);
}

/* One fragment of a UDP datagram 10.0.0.7:4000 -> 10.0.0.8:4001 of 1000 payload
 * bytes (ident 77): the L4 bytes [off, off + len) of it, MF unless it is the end. */
static struct rte_mbuf *udp_fragment(uint32_t off, uint32_t len, bool more)
{
	static uint8_t l4[1008];
	l4[0] = 0x0f, l4[1] = 0xa0, l4[2] = 0x0f, l4[3] = 0xa1;
	l4[4] = (uint8_t)(sizeof(l4) >> 8), l4[5] = (uint8_t)sizeof(l4), l4[6] = l4[7] = 0; /* no checksum */
	for (unsigned i = 8; i < sizeof(l4); i++)
		l4[i] = (uint8_t)i;
	struct rte_mbuf *m = rte_pktmbuf_alloc(ports.pool[0]);
	uint8_t *d = m ? (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(34 + len)) : NULL;
	if (d == NULL) {
		fprintf(stderr, "out of mbufs\n");
		exit(1);
	}
	memset(d, 0, 34);
	memcpy(d, MAC_DST, 6);
	memcpy(d + 6, MAC_SRC, 6);
	d[12] = 0x08;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(d + 14);
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + len));
	ip->packet_id = rte_cpu_to_be_16(77);
	ip->fragment_offset = rte_cpu_to_be_16((uint16_t)((more ? RTE_IPV4_HDR_MF_FLAG : 0) | off / 8));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(IP4(10, 0, 0, 7));
	ip->dst_addr = rte_cpu_to_be_32(IP4(10, 0, 0, 8));
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	memcpy(d + 34, l4 + off, len);
	return m;
}

/* The tracker in the worker: ct(table=1) then +new -> ct(commit),output:2 and
 * +est -> output:3; a fragmented datagram is held until whole, tracked once, and
 * both original fragments go out. */
static void test_ct_with_tracker_and_fragments(void)
{
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1024 });
	CHECK(ct != NULL);
	ferry_worker_fini(&w);
	w.ct = ct;
	CHECK_EQ(ferry_worker_init(&w, 0), 0);
	fresh();
	struct ferry_rule t0 = flow(0, 100), fresh_flow = flow(1, 100), est = flow(1, 90);
	MATCH(t0, eth_type, 0x0800, 0xffff);
	CT(t0, 1, 5);
	MATCH(fresh_flow, ct_state, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW);
	ACT(fresh_flow, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = FERRY_TABLE_NONE, .zone = 5,
	    .flags = FERRY_CT_FLAG_COMMIT);
	OUTPUT(fresh_flow, 2);
	MATCH(est, ct_state, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_EST, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_EST);
	OUTPUT(est, 3);
	add(&t0), add(&fresh_flow), add(&est);
	commit();

	/* a request opens the connection; the reply is est */
	run1(0, udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2)));
	CHECK_EQ(out(2, NULL, 0), 1);
	run1(1, mk(IPPROTO_UDP, IP4(10, 0, 0, 2), IP4(10, 0, 0, 1), 53, 1234, 64));
	CHECK_EQ(out(3, NULL, 0), 1);
	CHECK_EQ(ws.ct_created, 1);

	/* fragments: the first is held, the last completes the datagram */
	uint8_t ref1[34 + 512], ref2[34 + 496];
	run1(0, keep(udp_fragment(0, 512, true), ref1));
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(ws.frag[FERRY_FRAG_REASON_REASSEMBLED], 0);
	run1(0, keep(udp_fragment(512, 496, false), ref2));
	CHECK_EQ(ws.frag[FERRY_FRAG_REASON_REASSEMBLED], 1);
	CHECK_EQ(ws.ct_created, 2); /* the datagram, once */
	/* both went on as they came, with the datagram's verdict (new: committed, port 2) */
	struct rte_mbuf *m[4];
	unsigned n = rte_ring_dequeue_burst(tx_ring[2], (void **)m, 4, NULL), same = 0;
	for (unsigned i = 0; i < n; i++) {
		same += (m[i]->pkt_len == sizeof(ref1) && memcmp(bytes(m[i]), ref1, sizeof(ref1)) == 0) ||
			(m[i]->pkt_len == sizeof(ref2) && memcmp(bytes(m[i]), ref2, sizeof(ref2)) == 0);
		rte_pktmbuf_free(m[i]);
	}
	CHECK_EQ(n, 2);
	CHECK_EQ(same, 2);
	CHECK_EQ(out_all(), 0);

	/* a lone fragment is held, then given back when its datagram times out */
	run1(0, udp_fragment(0, 512, true));
	CHECK_EQ(out_all(), 0);
	w.now_ns = now + 16000000000ull;
	ferry_ipf_expire(w.ipf, w.now_ns);
	CHECK_EQ(ferry_ipf_held(w.ipf), 0);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_FRAG], 1);

	ferry_worker_fini(&w);
	w.ct = NULL;
	CHECK_EQ(ferry_worker_init(&w, 0), 0);
	ferry_ct_destroy(ct);
}

#define UNTRK (FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_UNTRACKED)
#define CT_STATE_ALL 0x3ffu /* every ct_state bit: an exact match */

/* notrack: the packet is trk|untracked from there on. A later ct(table=) recirculates
 * it without a lookup, a commit or an entry; ct(commit) does nothing to it; the state
 * survives a second recirculation, even when its connection exists; ct_clear takes it
 * away; a packet that met no notrack never has it. */
static void test_notrack_gives_the_untracked_state(void)
{
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1024 });
	CHECK(ct != NULL);
	ferry_worker_fini(&w);
	w.ct = ct;
	CHECK_EQ(ferry_worker_init(&w, 0), 0);
	fresh();
	/* port 0: notrack,ct(table=1,zone=5)   port 1: ct(table=1,zone=5)
	 * port 2: notrack,ct_clear,ct(table=1,zone=5) */
	struct ferry_rule nt = port_flow(0, 100, 0), plain = port_flow(0, 100, 1), cleared = port_flow(0, 100, 2);
	BARE(nt, FERRY_ACTION_TYPE_NOTRACK);
	CT(nt, 1, 5);
	CT(plain, 1, 5);
	BARE(cleared, FERRY_ACTION_TYPE_NOTRACK);
	BARE(cleared, FERRY_ACTION_TYPE_CT_CLEAR);
	CT(cleared, 1, 5);
	/* table 1: +untracked -> ct(commit,zone=5),ct(table=3,zone=5)
	 *          +trk+new -> ct(commit,zone=5),output:3; else output:1 */
	struct ferry_rule untrk = flow(1, 100), is_new = flow(1, 90), t1_rest = flow(1, 0);
	MATCH(untrk, ct_state, FERRY_CT_STATE_BIT_UNTRACKED, FERRY_CT_STATE_BIT_UNTRACKED);
	ACT(untrk, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = FERRY_TABLE_NONE, .zone = 5,
	    .flags = FERRY_CT_FLAG_COMMIT);
	CT(untrk, 3, 5);
	MATCH(is_new, ct_state, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW,
	      FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW);
	ACT(is_new, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = FERRY_TABLE_NONE, .zone = 5,
	    .flags = FERRY_CT_FLAG_COMMIT);
	OUTPUT(is_new, 3);
	OUTPUT(t1_rest, 1);
	/* table 3: exactly trk|untracked, outside any zone -> output:2 */
	struct ferry_rule t3 = flow(3, 100);
	MATCH(t3, ct_state, UNTRK, CT_STATE_ALL);
	MATCH(t3, ct_zone, 0, 0xffff);
	OUTPUT(t3, 2);
	uint32_t s_untrk = add(&untrk), s_new = add(&is_new), s_t3 = add(&t3), s_rest = add(&t1_rest);
	add(&nt), add(&plain), add(&cleared);
	commit();

	/* notrack'd: table 1 sees +untracked, table 3 trk|untracked exactly; never new,
	 * never looked up (its ct(commit) included), no entry */
	uint8_t ref[UDP_LEN];
	run_udp(0, 3, ref);
	CHECK_EQ(out(2, ref, UDP_LEN), 3);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(fs[s_untrk].packets, 3);
	CHECK_EQ(fs[s_t3].packets, 3);
	CHECK_EQ(fs[s_new].packets, 0);
	CHECK_EQ(ws.recirculations, 6);
	CHECK_EQ(ws.ct_packets, 0);
	CHECK_EQ(ws.ct_created, 0);
	CHECK_EQ(ferry_ct_count(ct), 0);

	/* no notrack: the same 5-tuple is +trk+new (never +untracked) and committed */
	run1(1, udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2)));
	CHECK_EQ(out(3, NULL, 0), 1);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(fs[s_new].packets, 1);
	CHECK_EQ(fs[s_untrk].packets, 3);
	CHECK_EQ(ws.ct_packets, 2); /* ct(table=1) and ct(commit) */
	CHECK_EQ(ferry_ct_count(ct), 1);

	/* notrack'd again, now that its connection exists: still untracked, not est */
	run1(0, udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2)));
	CHECK_EQ(out(2, NULL, 0), 1);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(fs[s_t3].packets, 4);
	CHECK_EQ(fs[s_rest].packets, 0);
	CHECK_EQ(ws.ct_packets, 2);
	CHECK_EQ(ferry_ct_count(ct), 1);

	/* ct_clear after notrack: tracked as any packet is (+trk+new, committed) */
	run1(2, udp(IP4(10, 0, 0, 3), IP4(10, 0, 0, 2)));
	CHECK_EQ(out(3, NULL, 0), 1);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(fs[s_new].packets, 2);
	CHECK_EQ(fs[s_untrk].packets, 4);
	CHECK_EQ(ws.ct_packets, 4);
	CHECK_EQ(ferry_ct_count(ct), 2);
	CHECK_EQ(drops_total(), 0);

	ferry_worker_fini(&w);
	w.ct = NULL;
	CHECK_EQ(ferry_worker_init(&w, 0), 0);
	ferry_ct_destroy(ct);
}

/* Without a tracker ct(table=) gives trk|inv; an untracked packet still gets
 * trk|untracked (nothing is looked up), and the ct fields an earlier ct() set are
 * gone with notrack. */
/* SNAT through the worker, as an OVS gateway pipeline writes it:
 *   table=0,ip,in_port=0 actions=ct(commit,zone=7,nat(src=203.0.113.1:1000-1999)),output:1
 *   table=0,ip,in_port=1 actions=ct(zone=7,nat,table=2)
 *   table=2,ct_state=+trk+est,ip,nw_dst=10.0.0.1 actions=output:0
 * The request leaves translated with valid checksums; the reply is translated back
 * before table 2, which matches the client's address it now carries. */
static void test_snat_through_the_pipeline(void)
{
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1024 });
	CHECK(ct != NULL);
	ferry_worker_fini(&w);
	w.ct = ct;
	CHECK_EQ(ferry_worker_init(&w, 0), 0);
	fresh();
	struct ferry_rule in = port_flow(0, 100, 0), back = port_flow(0, 100, 1), t2 = flow(2, 100);
	MATCH(in, eth_type, 0x0800, 0xffff);
	ACT(in, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = FERRY_TABLE_NONE, .zone = 7,
	    .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
	    .nat_addr_min = { 203, 0, 113, 1 }, .nat_port_min = 1000, .nat_port_max = 1999);
	OUTPUT(in, 1);
	MATCH(back, eth_type, 0x0800, 0xffff);
	ACT(back, struct ferry_act_ct, FERRY_ACTION_TYPE_CT, .table_id = 2, .zone = 7, .flags = FERRY_CT_FLAG_NAT);
	MATCH(t2, ct_state, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_EST, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_EST);
	match_nw_dst(&t2, IP4(10, 0, 0, 1), 32);
	OUTPUT(t2, 0);
	add(&in), add(&back), add(&t2);
	commit();

	run1(0, mk(IPPROTO_TCP, IP4(10, 0, 0, 1), IP4(192, 0, 2, 7), 1234, 80, 64));
	struct rte_mbuf *m = out1(1);
	CHECK(m != NULL);
	uint16_t xport = 0;
	if (m != NULL) {
		const uint8_t *d = bytes(m);
		CHECK(d[26] == 203 && d[27] == 0 && d[28] == 113 && d[29] == 1);
		xport = (uint16_t)(d[34] << 8 | d[35]);
		CHECK(xport >= 1000 && xport <= 1999);
		CHECK(csums_ok(m));
		rte_pktmbuf_free(m);
	}
	CHECK_EQ(ws.ct_nat_created, 1);
	run1(1, mk(IPPROTO_TCP, IP4(192, 0, 2, 7), IP4(203, 0, 113, 1), 80, xport, 64));
	m = out1(0);
	CHECK(m != NULL);
	if (m != NULL) {
		const uint8_t *d = bytes(m);
		CHECK(d[30] == 10 && d[31] == 0 && d[32] == 0 && d[33] == 1);
		CHECK_EQ(d[36] << 8 | d[37], 1234);
		CHECK(csums_ok(m));
		rte_pktmbuf_free(m);
	}
	CHECK_EQ(ws.ct_nat_rewrites, 2);
	CHECK_EQ(ws.ct_nat_rewrite_errors, 0);
	CHECK_EQ(out_all(), 0);

	ferry_worker_fini(&w);
	w.ct = NULL;
	CHECK_EQ(ferry_worker_init(&w, 0), 0);
	ferry_ct_destroy(ct);
}

static void test_notrack_without_a_tracker(void)
{
	fresh();
	struct ferry_rule t0 = flow(0, 100), t1 = flow(1, 100), t2 = flow(2, 100), t2_inv = flow(2, 90);
	MATCH(t0, eth_type, 0x0800, 0xffff);
	CT(t0, 1, 7); /* trk|inv in zone 7 */
	MATCH(t1, ct_state, TRK_INV, CT_STATE_ALL);
	MATCH(t1, ct_zone, 7, 0xffff);
	BARE(t1, FERRY_ACTION_TYPE_NOTRACK);
	CT(t1, 2, 7);
	MATCH(t2, ct_state, UNTRK, CT_STATE_ALL);
	MATCH(t2, ct_zone, 0, 0xffff);
	OUTPUT(t2, 2);
	MATCH(t2_inv, ct_state, TRK_INV, TRK_INV);
	OUTPUT(t2_inv, 3);
	uint32_t s2 = add(&t2), s2i = add(&t2_inv);
	add(&t0), add(&t1);
	commit();

	run_udp(0, 2, NULL);
	CHECK_EQ(out(2, NULL, 0), 2);
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(fs[s2].packets, 2);
	CHECK_EQ(fs[s2i].packets, 0);
	CHECK_EQ(ws.recirculations, 4);
	CHECK_EQ(drops_total(), 0);
}

static void test_ct_loop_hits_recirc_limit(void)
{
	fresh();
	struct ferry_rule loop = flow(0, 100);
	MATCH(loop, eth_type, 0x0800, 0xffff);
	CT(loop, 0, 0);
	add(&loop);
	commit();

	unsigned avail = ferry_ports_mbufs_available(&ports);
	run_udp(0, 2, NULL);
	CHECK_EQ(out_all(), 0);
	/* FERRY_MAX_RECIRC passes each: MAX_RECIRC - 1 recirculations, then the drop */
	CHECK_EQ(ws.recirculations, 2 * (FERRY_MAX_RECIRC - 1));
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_RECIRC_LIMIT], 2);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_NO_ACTIONS], 0);
	CHECK_EQ(drops_total(), 2); /* one drop, one reason, per packet */
	CHECK_EQ(ws.ports[0].rx_dropped, 2);
	CHECK_EQ(w.rq_n, 0);
	CHECK_EQ(ferry_ports_mbufs_available(&ports), avail);
}

/* output:1 then ct(table=1), and table 1 rewrites: the frame port 1 was given before
 * the recirculation must not change under it. */
static void test_output_before_recirculation_keeps_its_bytes(void)
{
	fresh();
	struct ferry_rule ct = flow(0, 100), t1 = flow(1, 100);
	MATCH(ct, eth_type, 0x0800, 0xffff);
	OUTPUT(ct, 1);
	CT(ct, 1, 5);
	MATCH(t1, ct_zone, 5, 0xffff);
	set_ip(&t1, FERRY_FIELD_ID_IPV4_SRC, IP4(192, 168, 0, 1), UINT32_MAX);
	OUTPUT(t1, 2);
	add(&ct);
	add(&t1);
	commit();

	uint8_t ref[UDP_LEN];
	run1(0, keep(udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2)), ref));
	struct rte_mbuf *o2 = out1(2);
	CHECK(o2 != NULL && bytes(o2)[26] == 192 && csums_ok(o2));
	CHECK_EQ(out(1, ref, UDP_LEN), 1); /* as it was when output:1 ran */
	rte_pktmbuf_free(o2);
}

static void test_emc_and_version_change(void)
{
	fresh();
	struct ferry_rule r = port_flow(0, 100, 0);
	OUTPUT(r, 1);
	uint32_t slot = add(&r);
	commit();

	run_udp(0, 1, NULL);
	CHECK_EQ(ws.emc_misses, 1);
	CHECK_EQ(ws.emc_hits, 0);
	run_udp(0, 1, NULL);
	CHECK_EQ(ws.emc_misses, 1);
	CHECK_EQ(ws.emc_hits, 1);
	CHECK_EQ(out(1, NULL, 0), 2);

	/* replace the flow (same id) with output:2: the cached program is of the old version */
	uint64_t v = w.version;
	r.actions_len = 0;
	OUTPUT(r, 2);
	CHECK_EQ(add(&r), slot); /* a replace keeps the slot and its counters */
	commit();
	CHECK_EQ(w.version, v + 1);
	run_udp(0, 1, NULL);
	CHECK_EQ(ws.emc_misses, 2);
	CHECK_EQ(ws.emc_hits, 1);
	CHECK_EQ(out(2, NULL, 0), 1);
	CHECK_EQ(out(1, NULL, 0), 0);
	run_udp(0, 1, NULL);
	CHECK_EQ(ws.emc_hits, 2);
	CHECK_EQ(out(2, NULL, 0), 1);
	CHECK_EQ(fs[slot].packets, 4);
}

static struct rte_mbuf *udp_macs(const uint8_t *dst, const uint8_t *src)
{
	struct rte_mbuf *m = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	memcpy(rte_pktmbuf_mtod(m, uint8_t *), dst, 6);
	memcpy(rte_pktmbuf_mtod_offset(m, uint8_t *, 6), src, 6);
	return m;
}

static void test_normal_learning_switch(void)
{
	fresh();
	memset(w.l2, 0, sizeof(*w.l2));
	struct ferry_rule r = flow(0, 1); /* match everything */
	BARE(r, FERRY_ACTION_TYPE_NORMAL);
	add(&r);
	commit();
	static const uint8_t A[6] = { 2, 0, 0, 0, 0, 0xa }, B[6] = { 2, 0, 0, 0, 0, 0xb };

	/* A on port 0 -> B unknown: flooded, every other port gets the whole frame */
	uint8_t ref[UDP_LEN];
	run1(0, keep(udp_macs(B, A), ref));
	CHECK_EQ(out(0, NULL, 0), 0);
	for (uint16_t p = 1; p < N_PORTS; p++)
		CHECK_EQ(out(p, ref, UDP_LEN), 1);

	run1(2, udp_macs(A, B)); /* B answers from port 2: A was learned on port 0 */
	CHECK_EQ(out(0, NULL, 0), 1);
	CHECK_EQ(out_all(), 0);
	run1(0, udp_macs(B, A)); /* and now B is known on port 2 */
	CHECK_EQ(out(2, NULL, 0), 1);
	CHECK_EQ(out_all(), 0);
	CHECK_TX(0, 1, UDP_LEN, 0);
	CHECK_TX(1, 1, UDP_LEN, 0);
	CHECK_TX(2, 2, 2 * UDP_LEN, 0);
	CHECK_TX(3, 1, UDP_LEN, 0);
	CHECK_EQ(drops_total(), 0);
}

static void test_controller_and_rate_limit(void)
{
	fresh();
	struct ferry_rule g = flow(0, 100), c = flow(3, 100);
	MATCH(g, in_port, 2, UINT32_MAX);
	GOTO(g, 3);
	MATCH(c, in_port, 2, UINT32_MAX);
	CONTROLLER(c, 64);
	add(&g);
	add(&c);
	commit();
	w.punt_rate = 2; /* packets/s; the bucket starts full */
	w.punt_tokens = 2;
	w.punt_refill_ns = now;

	uint8_t ref[UDP_LEN];
	run1(2, keep(udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2)), ref));
	struct ferry_punt p;
	CHECK_EQ(rte_ring_count(w.punts), 1);
	if (rte_ring_dequeue_elem(w.punts, &p, sizeof(p)) == 0) {
		CHECK_EQ(p.in_port, 2);
		CHECK_EQ(p.cookie, c.cookie);
		CHECK_EQ(p.table_id, 3);
		CHECK_EQ(p.max_len, 64);
		CHECK(p.m->pkt_len == UDP_LEN && memcmp(bytes(p.m), ref, UDP_LEN) == 0);
		rte_pktmbuf_free(p.m);
	}
	CHECK_EQ(ws.packet_ins, 1);

	run_udp(2, 4, NULL); /* four more at once: one token left */
	CHECK_EQ(rte_ring_count(w.punts), 1);
	CHECK_EQ(ws.packet_ins, 2);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_CONTROLLER_LIMIT], 3);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_NO_ACTIONS], 0);
	CHECK_EQ(drops_total(), 3); /* counted once, under its reason */
	CHECK_EQ(ws.ports[2].rx_dropped, 3);

	/* 2/s: 300 ms earn 0.6 of a token, 600 ms more than one, however they are sliced */
	now += 300000000ull;
	run_udp(2, 1, NULL);
	CHECK_EQ(ws.packet_ins, 2);
	now += 300000000ull;
	run_udp(2, 1, NULL);
	CHECK_EQ(ws.packet_ins, 3);

	free_punts();
	CHECK_EQ(out_all(), 0);
	w.punt_rate = FERRY_PUNT_RATE_DEFAULT;
	w.punt_tokens = FERRY_PUNT_RATE_DEFAULT;
}

static void test_tx_full(void)
{
	fresh();
	struct ferry_rule r = port_flow(0, 100, 0);
	OUTPUT(r, SMALL_PORT);
	uint32_t slot = add(&r);
	commit();

	run_udp(0, FERRY_BURST, NULL);
	const unsigned fits = SMALL_RING - 1, lost = FERRY_BURST - fits;
	CHECK_EQ(out(SMALL_PORT, NULL, 0), fits);
	CHECK_TX(SMALL_PORT, fits, fits * UDP_LEN, lost);
	CHECK_EQ(ws.drops[FERRY_DROP_REASON_TX_FULL], lost);
	CHECK_EQ(drops_total(), lost);
	CHECK_RX(0, FERRY_BURST, FERRY_BURST * UDP_LEN, 0);
	CHECK_EQ(fs[slot].packets, FERRY_BURST);
}

/* Flows that match in_port only and output: nothing needs headers, so nothing is
 * parsed (a malformed frame is not even noticed) and the burst shares one program. */
/* A packet asking its NIC for a checksum (a virtio guest's, a decapsulated STT frame's)
 * leaves a port that cannot do it with the checksum done, on the patch-panel path too. */
static void test_tx_checksum_requests_completed_on_the_way_out(void)
{
	fresh();
	struct ferry_rule a = flow(0, 10);
	MATCH(a, in_port, 0, UINT32_MAX);
	OUTPUT(a, 1);
	add(&a);
	commit();
	CHECK_EQ(ft.headers_needed, 0); /* the headerless (patch-panel) path */
	struct rte_mbuf *m = mk(IPPROTO_TCP, IP4(10, 0, 0, 1), IP4(10, 0, 0, 2), 1234, 80, 64);
	struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, 14);
	m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
	m->l2_len = 14;
	m->l3_len = 20;
	uint16_t phdr = rte_ipv4_phdr_cksum(ip, m->ol_flags); /* what the NIC would be handed */
	memcpy(rte_pktmbuf_mtod_offset(m, uint8_t *, 34 + 16), &phdr, 2);
	CHECK(!csums_ok(m));
	run1(0, m);
	struct rte_mbuf *o = out1(1);
	CHECK(o != NULL);
	if (o == NULL)
		return;
	CHECK(csums_ok(o));
	CHECK_EQ(o->ol_flags & RTE_MBUF_F_TX_TCP_CKSUM, 0);
	rte_pktmbuf_free(o);
}

static void test_in_port_only_tables_skip_parsing(void)
{
	fresh();
	struct ferry_rule a = flow(0, 10);
	MATCH(a, in_port, 0, UINT32_MAX);
	OUTPUT(a, 1);
	add(&a);
	commit();
	CHECK_EQ(ft.headers_needed, 0);
	struct rte_mbuf *in[3];
	for (int i = 0; i < 3; i++)
		in[i] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	rte_pktmbuf_trim(in[0], UDP_LEN - 10); /* not even an Ethernet header */
	uint64_t misses = ws.emc_misses;
	run(0, in, 3);
	CHECK_EQ(out(1, NULL, 0), 3);
	CHECK_EQ(ws.parse_errors[FERRY_PARSE_REASON_ETH_SHORT], 0);
	CHECK(ws.emc_misses - misses <= 1); /* one program for the burst */
	/* a port's cached program is checked to still be that port's: simulate another
	 * port's translation taking its cache slot */
	struct ferry_rule b = flow(0, 10);
	MATCH(b, in_port, 1, UINT32_MAX);
	OUTPUT(b, 2);
	add(&b);
	commit();
	in[0] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	run(0, in, 1);
	in[0] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	run(1, in, 1);
	CHECK_EQ(out(1, NULL, 0), 1);
	CHECK_EQ(out(2, NULL, 0), 1);
	w.hl_entry[0] = w.hl_entry[1];
	in[0] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	run(0, in, 1);
	CHECK_EQ(out(1, NULL, 0), 1); /* port 0's own flow, not port 1's */
	CHECK_EQ(out(2, NULL, 0), 0);
	/* a flow that looks at headers turns parsing back on */
	struct ferry_rule ip = flow(0, 20);
	match_nw_src(&ip, IP4(10, 0, 0, 0), 8);
	OUTPUT(ip, 2);
	add(&ip);
	commit();
	CHECK_EQ(ft.headers_needed, 1);
	in[0] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	run(0, in, 1);
	CHECK_EQ(out(2, NULL, 0), 1);
	/* and deleting it turns parsing off again, once no worker can be on its version */
	CHECK_EQ(ferry_flow_table_del(&ft, ip.id, false), OK);
	commit();
	CHECK_EQ(ft.headers_needed, 0);
}

static void test_malformed_frames_match_what_they_have(void)
{
	fresh();
	struct ferry_rule any = flow(0, 10), ip = flow(0, 20);
	MATCH(any, in_port, 0, UINT32_MAX);
	OUTPUT(any, 1);
	match_nw_src(&ip, IP4(10, 0, 0, 0), 8);
	OUTPUT(ip, 2);
	add(&any);
	add(&ip);
	commit();

	struct rte_mbuf *in[3];
	uint8_t ref[3][UDP_LEN];
	for (int i = 0; i < 3; i++)
		in[i] = udp(IP4(10, 0, 0, 1), IP4(10, 0, 0, 2));
	rte_pktmbuf_trim(in[0], UDP_LEN - 20); /* IPv4 cut after 6 bytes */
	rte_pktmbuf_trim(in[1], UDP_LEN - 10); /* not even an Ethernet header */
	rte_pktmbuf_mtod(in[2], uint8_t *)[16] = 0x05; /* IPv4 total length 1280 > frame: addresses, no L4 */
	for (int i = 0; i < 3; i++)
		memcpy(ref[i], bytes(in[i]), in[i]->pkt_len);
	run(0, in, 3);

	struct rte_mbuf *o[4]; /* the short ones match in_port only: port 1, in order */
	unsigned n = rte_ring_dequeue_burst(tx_ring[1], (void **)o, 4, NULL);
	CHECK_EQ(n, 2);
	for (unsigned i = 0; i < n; i++) {
		CHECK(o[i]->pkt_len == (i ? 10 : 20) && memcmp(bytes(o[i]), ref[i], o[i]->pkt_len) == 0);
		rte_pktmbuf_free(o[i]);
	}
	CHECK_EQ(out(2, ref[2], UDP_LEN), 1);                  /* it has nw_src */
	CHECK_EQ(ws.parse_errors[FERRY_PARSE_REASON_IPV4_SHORT], 1);
	CHECK_EQ(ws.parse_errors[FERRY_PARSE_REASON_ETH_SHORT], 1);
	CHECK_EQ(ws.parse_errors[FERRY_PARSE_REASON_IPV4_BAD_LEN], 1);
	CHECK_RX(0, 3, 20 + 10 + UDP_LEN, 0);
	CHECK_EQ(drops_total(), 0);
}

static void test_no_mbuf_leaked(void)
{
	free_punts();
	CHECK_EQ(out_all(), 0);
	CHECK_EQ(w.rq_n, 0);
	CHECK_EQ(ferry_ports_mbufs_available(&ports), mbufs_at_start);
}

int main(void)
{
	ferry_test_eal_init("pipeline", NULL, 0);
	for (int p = 0; p < N_PORTS; p++) {
		char n[32];
		snprintf(n, sizeof(n), "rx%d", p);
		rx_ring[p] = rte_ring_create(n, BIG_RING, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(n, sizeof(n), "tx%d", p);
		tx_ring[p] = rte_ring_create(n, p == SMALL_PORT ? SMALL_RING : BIG_RING, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(n, sizeof(n), "ferry_ring%d", p);
		if (!rx_ring[p] || !tx_ring[p] || rte_eth_from_rings(n, &rx_ring[p], 1, &tx_ring[p], 1, 0) != p)
			return 1;
	}
	char err[256];
	struct ferry_ports_config cfg = { .n_workers = 1, .nb_rxd = 64, .nb_txd = 64 };
	if (ferry_ports_setup(&ports, &cfg, err, sizeof(err)) != 0 || ferry_ports_start(&ports, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	mbufs_at_start = ferry_ports_mbufs_available(&ports);
	if (ferry_flow_table_init(&ft, MAX_FLOWS, N_PORTS, NULL, NULL, NULL) != 0)
		return 1;

	/* what ferryd's setup and the worker loop would give worker 0 */
	w.id = 0, w.txq = 0, w.n_ports = N_PORTS, w.qsv = NULL;
	w.stats = &ws, w.flow_stats = fs, w.table_stats = ts;
	w.flows = &ft, w.version = ferry_flow_table_version(&ft);
	w.pool = ports.pool[0];
	w.l2 = rte_zmalloc("test_l2", sizeof(struct ferry_l2), RTE_CACHE_LINE_SIZE);
	if (w.l2 == NULL || ferry_worker_init(&w, 0) != 0)
		return 1;

	RUN(test_output);
	RUN(test_drop_and_table_miss);
	RUN(test_priorities_and_masks);
	RUN(test_goto_table_and_resubmit);
	RUN(test_set_field_rewrites_with_checksums);
	RUN(test_push_and_pop_vlan);
	RUN(test_dec_ttl);
	RUN(test_ct_recirculation);
	RUN(test_ct_with_tracker_and_fragments);
	RUN(test_notrack_gives_the_untracked_state);
	RUN(test_notrack_without_a_tracker);
	RUN(test_snat_through_the_pipeline);
	RUN(test_ct_loop_hits_recirc_limit);
	RUN(test_output_before_recirculation_keeps_its_bytes);
	RUN(test_emc_and_version_change);
	RUN(test_normal_learning_switch);
	RUN(test_controller_and_rate_limit);
	RUN(test_tx_full);
	RUN(test_in_port_only_tables_skip_parsing);
	RUN(test_tx_checksum_requests_completed_on_the_way_out);
	RUN(test_malformed_frames_match_what_they_have);
	RUN(test_no_mbuf_leaked); /* last: everything the tests made is back in its pool */

	ferry_worker_fini(&w);
	rte_free(w.l2);
	ferry_flow_table_fini(&ft);
	ferry_ports_stop(&ports);
	rte_eal_cleanup();
	return ftest_finish();
}
