#include "worker.h"

#include <stdio.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include "actions.h"
#include "rewrite.h"
#include "worker_io.h"

/* Idle loops in a row before a worker with sleep_us set naps; short gaps between
 * bursts must not cost a wake-up. */
#define IDLE_LOOPS_BEFORE_SLEEP 128u
#define PREFETCH_OFFSET 4
/* a reassembled datagram: L2 header and tags, then at most 64 KiB of IP */
#define FERRY_WHOLE_MAX (65536u + 64u)

_Static_assert(offsetof(struct ferry_flow_key, tun_dst) - offsetof(struct ferry_flow_key, tun_id) ==
	       offsetof(struct ferry_tun_md, tun_dst) && sizeof(struct ferry_tun_md) == 16,
	       "the tunnel metadata is the key's tun_id, tun_src, tun_dst as they lie there");
_Static_assert(sizeof(((struct ferry_program *)0)->exit_meta) == FERRY_KEY_META_BYTES,
	       "a program keeps exactly the key's metadata bytes");

/* a fragment of an abandoned datagram (overlap, timeout, no room) */
static void release_fragment(void *arg, void *handle)
{
	struct ferry_worker *w = arg;
	w->stats->drops[FERRY_DROP_REASON_FRAG]++;
	rte_pktmbuf_free(handle);
}

static void frag_counters(struct ferry_worker *w)
{
	const uint64_t *c = ferry_ipf_counters(w->ipf);
	for (unsigned i = 0; i < FERRY_FRAG_REASONS; i++)
		w->stats->frag[i] = c[i];
}

int ferry_worker_init(struct ferry_worker *w, int socket)
{
	char name[RTE_RING_NAMESIZE];
	size_t sz = sizeof(struct ferry_emc) + FERRY_EMC_ENTRIES * sizeof(struct ferry_emc_entry);
	w->emc = rte_zmalloc_socket("ferry_emc", sz, RTE_CACHE_LINE_SIZE, socket);
	snprintf(name, sizeof(name), "ferry_punt_%u", w->id);
	w->punts = rte_ring_create_elem(name, sizeof(struct ferry_punt), FERRY_PUNT_SLOTS, socket,
					RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (w->emc == NULL || w->punts == NULL) {
		ferry_worker_fini(w);
		return -1;
	}
	w->emc->mask = FERRY_EMC_ENTRIES - 1;
	for (uint32_t i = 0; i < FERRY_EMC_ENTRIES; i++)
		w->emc->e[i].version = 0; /* versions start at 1: every entry misses */
	if (w->punt_rate == 0)
		w->punt_rate = FERRY_PUNT_RATE_DEFAULT;
	if (ferry_tunnel_io_init(w, socket) != 0) {
		ferry_worker_fini(w);
		return -1;
	}
	if (w->ct != NULL) {
		w->ipf = ferry_ipf_create(&(struct ferry_ipf_config){ 0 });
		w->whole = rte_malloc_socket("ferry_whole", FERRY_WHOLE_MAX, 0, socket);
		w->whole_len = 0;
		if (w->ipf == NULL || w->whole == NULL) {
			ferry_worker_fini(w);
			return -1;
		}
		ferry_ipf_set_release(w->ipf, release_fragment, w);
		ferry_ct_thread_init(w->ct, &w->ct_thread);
		if (w->stats != NULL) {
			w->ct_thread.packets = &w->stats->ct_packets;
			w->ct_thread.created = &w->stats->ct_created;
			w->ct_thread.limit_refused = &w->stats->ct_limit_refused;
			w->ct_thread.early_drops = &w->stats->ct_early_drops;
			w->ct_thread.nat_created = &w->stats->ct_nat_created;
			w->ct_thread.nat_exhausted = &w->stats->ct_nat_exhausted;
			w->ct_thread.exp_created = &w->stats->ct_exp_created;
			w->ct_thread.exp_matched = &w->stats->ct_exp_matched;
			w->ct_thread.invalid = w->stats->ct_invalid;
		}
	}
	return 0;
}

void ferry_worker_fini(struct ferry_worker *w)
{
	rte_free(w->emc);
	w->emc = NULL;
	rte_ring_free(w->punts);
	w->punts = NULL;
	if (w->ct != NULL)
		ferry_ct_thread_fini(&w->ct_thread);
	ferry_ipf_destroy(w->ipf); /* gives back what it holds */
	w->ipf = NULL;
	rte_free(w->whole);
	w->whole = NULL;
	ferry_tunnel_io_fini(w);
}

/* A consuming op's result: 1 consumed, 0 not (the packet goes on), or DROPPED(reason)
 * when it was the packet's last chance: execute() then frees and counts it once. */
#define DROPPED(reason) (-1 - (int)(reason))

/* a copy that will not be made: counted here, the packet itself goes on */
static inline int count_drop(struct ferry_worker *w, enum ferry_drop_reason why)
{
	w->stats->drops[why]++;
	return 0;
}

/* The mbuf a consuming op sends: the packet itself for the last one, else a copy
 * (rewrites follow) or another reference. NULL when no copy could be made. */
static inline struct rte_mbuf *take(struct ferry_worker *w, struct rte_mbuf *m, int last, int copy)
{
	if (last)
		return m;
	if (copy) {
		struct rte_mbuf *c = rte_pktmbuf_copy(m, w->pool, 0, UINT32_MAX);
		if (c == NULL)
			w->stats->drops[FERRY_DROP_REASON_NO_MBUF]++;
		return c;
	}
	rte_pktmbuf_refcnt_update(m, 1); /* every segment: a chained packet is freed segment by segment */
	return m;
}

/* ---- NORMAL: a learning switch over the bridge's ports ---- */

_Static_assert(FERRY_MAX_PORTS <= 32, "NORMAL's port sets are 32-bit masks");

/* One output of NORMAL: to an ethdev, or encapsulated into a tunnel with the packet's
 * tunnel metadata as this point of the action list sees it (a shared packet is copied
 * by ferry_tunnel_output before encapsulation, as for output:). */
static inline void normal_out(struct ferry_worker *w, struct rte_mbuf *o, uint32_t port,
			      const struct ferry_tun_md *md, const struct ferry_flow_key *key)
{
	if (port < w->n_ports)
		stage(w, (uint16_t)port, o);
	else
		ferry_tunnel_output(w, o, port, md, key);
}

/* As OVS's NORMAL on a host of a full mesh with a tunnel port per peer. The bridge's
 * ports are the ethdevs that carry no tunnel (an underlay is not one: VM frames never
 * go onto it plain, and what it receives that is not for a tunnel is not switched)
 * and the tunnel ports with a fixed remote (a flow-based remote has no peer of its
 * own). Split horizon: what came in on a tunnel port never goes out of one (a full
 * mesh needs no relaying, and relaying would loop). The masks come with the tunnel
 * snapshot (derived once when it was published): no scan per packet. */
static int normal(struct ferry_worker *w, struct rte_mbuf *m, const struct ferry_pkt_layout *lay,
		  const struct ferry_flow_key *key, uint32_t in_port, const struct ferry_tun_md *md, int last,
		  int copy)
{
	const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
	if (unlikely(lay->parse_error == FERRY_PARSE_REASON_ETH_SHORT))
		return 0; /* no Ethernet header to switch on */
	uint32_t eth = (uint32_t)((1ull << w->n_ports) - 1), tun = 0;
	if (w->tn != NULL) { /* one cache line, the one the burst's underlay check read */
		eth &= ~(uint32_t)w->tn->underlay_mask;
		tun = w->tn->fixed_remote_mask;
	}
	bool from_tunnel = in_port >= w->n_ports;
	/* from an underlay (or no port at all): not a bridge port, neither learned nor switched */
	if (unlikely(from_tunnel ? in_port >= FERRY_MAX_PORTS : !((eth >> in_port) & 1)))
		return 0;
	/* where this frame may go: split horizon keeps a tunnel's frames off the tunnels */
	uint32_t ports = (eth | (from_tunnel ? 0 : tun)) & ~(1u << in_port);
	uint16_t vlan = lay->n_vlans ? (uint16_t)((d[14] << 8 | d[15]) & 0x0fff) : 0;
	ferry_l2_learn(w->l2, d + 6, vlan, in_port, w->now_ns);
	uint32_t out = (d[0] & 1) ? FERRY_L2_NO_PORT : ferry_l2_lookup(w->l2, d, vlan, w->now_ns);
	if (out < FERRY_MAX_PORTS) {
		if (out == in_port)
			return 0; /* the destination is behind the port it came from */
		if ((ports >> out) & 1) {
			struct rte_mbuf *o = take(w, m, last, copy);
			if (o)
				normal_out(w, o, out, md, key);
			return last;
		}
		if ((tun >> out) & 1)
			return 0; /* from a tunnel, behind another tunnel: split horizon, no relaying */
		/* learned on a port that is no longer the bridge's (its tunnel went away, or it
		 * carries tunnels now): flooded, as an unknown destination */
	}
	/* flood: every bridge port but the one it came in on; the highest gets the packet */
	if (ports == 0)
		return 0;
	uint32_t final = 31u - (uint32_t)__builtin_clz(ports);
	while (ports) {
		uint32_t p = (uint32_t)__builtin_ctz(ports);
		ports &= ports - 1;
		struct rte_mbuf *o = take(w, m, last && p == final, copy);
		if (o)
			normal_out(w, o, p, md, key);
	}
	return last;
}

/* ---- CONTROLLER ---- */

static int punt(struct ferry_worker *w, struct rte_mbuf *m, const struct ferry_op *op, uint32_t in_port,
		int last, int copy)
{
	/* token bucket: punt_rate packets per second, bursts up to one second's worth;
	 * the refill time advances only by what the tokens added were worth, so slow
	 * trickles add up instead of rounding to nothing */
	uint64_t elapsed = w->now_ns - w->punt_refill_ns;
	if (elapsed > 1000000000ull)
		elapsed = 1000000000ull;
	uint64_t add = elapsed * w->punt_rate / 1000000000ull;
	if (add) {
		w->punt_tokens += add;
		if (w->punt_tokens >= w->punt_rate) {
			w->punt_tokens = w->punt_rate;
			w->punt_refill_ns = w->now_ns;
		} else {
			w->punt_refill_ns += add * 1000000000ull / w->punt_rate;
		}
	}
	if (w->punt_tokens == 0)
		return last ? DROPPED(FERRY_DROP_REASON_CONTROLLER_LIMIT) : count_drop(w, FERRY_DROP_REASON_CONTROLLER_LIMIT);
	const struct ferry_act_controller *a = op->act;
	struct ferry_punt p = {
		.cookie = op->rule ? op->rule->cookie : 0,
		.in_port = in_port,
		.max_len = a->max_len,
		.table_id = op->table,
		.reason = a->reason,
	};
	p.m = take(w, m, last, copy);
	if (p.m == NULL)
		return 0;
	if (rte_ring_sp_enqueue_elem(w->punts, &p, sizeof(p)) != 0) {
		if (!last) {
			rte_pktmbuf_free(p.m);
			return count_drop(w, FERRY_DROP_REASON_CONTROLLER_LIMIT);
		}
		return DROPPED(FERRY_DROP_REASON_CONTROLLER_LIMIT); /* the caller frees and counts */
	}
	w->punt_tokens--;
	w->stats->packet_ins++;
	return last;
}

/* ---- ct: the connection tracker ---- */

static inline uint16_t ct_zone_of(const struct ferry_act_ct *a, const struct ferry_flow_key *meta)
{
	if (a->flags & FERRY_CT_FLAG_ZONE_FROM_REG)
		return (uint16_t)(meta->reg[a->zone_reg] >> a->zone_reg_ofs);
	return a->zone;
}

static inline void ct_action_of(const struct ferry_act_ct *a, uint16_t zone, struct ferry_ct_action *o)
{
	o->zone = zone;
	o->flags = a->flags & (FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_FORCE | FERRY_CT_FLAGS_NAT_ANY |
			       FERRY_CT_FLAG_NAT_RANDOM | FERRY_CT_FLAG_NAT_PERSISTENT);
	o->mark = a->mark;
	o->mark_mask = a->mark_mask;
	memcpy(o->label, a->label, 16);
	memcpy(o->label_mask, a->label_mask, 16);
	o->alg = a->alg;
	if (unlikely(a->flags & (FERRY_CT_FLAG_NAT_SRC | FERRY_CT_FLAG_NAT_DST))) {
		memcpy(o->nat_addr_min, a->nat_addr_min, 16);
		memcpy(o->nat_addr_max, a->nat_addr_max, 16);
		o->nat_port_min = a->nat_port_min;
		o->nat_port_max = a->nat_port_max;
		o->nat_is_ipv6 = a->nat_is_ipv6;
	}
}

/* The translation the tracker chose for packet i of its last burst, written into
 * the mbuf (the tracker never writes packets): headers, then, for a connection an
 * ALG edited, the sequence shift and this segment's payload edit (which may grow
 * the frame into its tailroom). A NIC asked to complete checksums finds its
 * pseudo-header sums updated too. */
static bool ct_nat_rewrite_mbuf(struct ferry_worker *w, struct rte_mbuf *m, const struct ferry_pkt_layout *lay,
				unsigned i)
{
	const struct ferry_ct_thread *t = &w->ct_thread;
	unsigned tx = 0;
	if (m->ol_flags & (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG))
		tx |= FERRY_NAT_TX_L4_PSEUDO;
	if (m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM)
		tx |= FERRY_NAT_TX_IP_CKSUM;
	/* the tracker read it contiguous (ct_pkt_of linearized it) */
	uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
	/* the stream edit first: it checks all it needs before writing, so a refusal
	 * leaves the packet as it was; the header rewrite then adjusts the checksum it
	 * computed, for the addresses */
	if ((t->edit_mask >> i) & 1) {
		uint32_t len = rte_pktmbuf_data_len(m), was = len;
		if (ferry_nat_tcp_edit(d, &len, len + rte_pktmbuf_tailroom(m), lay->l3_off, lay->l4_off,
				       t->rw[i].l3, tx, &t->edit[i]) != 0)
			goto fail;
		m->data_len = (uint16_t)len;
		m->pkt_len = m->pkt_len - was + len;
	}
	if ((t->nat_mask >> i) & 1) {
		if (ferry_nat_rewrite(d, rte_pktmbuf_data_len(m), lay->l3_off, lay->l4_off, tx, &t->rw[i]) != 0)
			goto fail;
		w->stats->ct_nat_rewrites++;
	}
	/* what the NIC or the tracker verified was of the old headers */
	m->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK);
	return true;
fail:
	w->stats->ct_nat_rewrite_errors++;
	return false;
}


/* The tracker reads the packet where its IP header starts; a chained mbuf is made
 * contiguous first (the checksums cover all of it). */
static inline void ct_pkt_of(struct rte_mbuf *m, const struct ferry_pkt_layout *lay, uint16_t eth_type,
			     struct ferry_ct_pkt *o)
{
	if (unlikely(m->nb_segs > 1))
		(void)rte_pktmbuf_linearize(m); /* on failure the tracker sees it short: inv */
	o->data = rte_pktmbuf_mtod(m, const uint8_t *);
	o->len = rte_pktmbuf_data_len(m);
	o->l3_ofs = lay->l3_off;
	o->eth_type = eth_type;
	o->flags = 0;
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		o->flags |= FERRY_CT_PKT_L3_CSUM_GOOD;
	if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		o->flags |= FERRY_CT_PKT_L4_CSUM_GOOD;
}

/* what the tracker verified stays verified for the packet's next passes */
static inline void ct_pkt_done(struct rte_mbuf *m, const struct ferry_ct_pkt *p)
{
	if (p->flags & FERRY_CT_PKT_L3_CSUM_GOOD)
		m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_IP_CKSUM_MASK) | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
	if (p->flags & FERRY_CT_PKT_L4_CSUM_GOOD)
		m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_L4_CKSUM_MASK) | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

/* a result into the key fields the next pass matches on */
static inline void ct_result_to_key(const struct ferry_ct_result *r, struct ferry_flow_key *k)
{
	k->ct_state = r->state;
	k->ct_zone = r->zone;
	k->ct_mark = r->mark;
	memcpy(k->ct_label, r->label, 16);
	k->ct_nw_proto = r->proto;
	memcpy(k->ct_nw_src, r->nw_src, 16);
	memcpy(k->ct_nw_dst, r->nw_dst, 16);
	k->ct_tp_src = r->tp_src;
	k->ct_tp_dst = r->tp_dst;
}

/* ct() without table=: the connection is tracked (and committed) now; nothing in
 * this pass reads the result */
/* Is the fragment m part of the datagram kept in w->whole (same addresses,
 * protocol and, on IPv4, identification)? */
static bool whole_of(const struct ferry_worker *w, const struct rte_mbuf *m, const struct ferry_pkt_layout *lay)
{
	if (w->whole_len == 0)
		return false;
	const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *) + lay->l3_off;
	const uint8_t *d = w->whole + w->whole_l3;
	if ((f[0] >> 4) != (d[0] >> 4))
		return false;
	if ((f[0] >> 4) == 4) /* id, protocol and both addresses */
		return memcmp(f + 4, d + 4, 2) == 0 && f[9] == d[9] && memcmp(f + 12, d + 12, 8) == 0;
	return memcmp(f + 8, d + 8, 32) == 0; /* v6: both addresses (the fragment id went with its header) */
}

static void ct_now(struct ferry_worker *w, struct rte_mbuf *m, const struct ferry_pkt_layout *lay, uint16_t eth_type,
		   uint8_t nw_frag, const struct ferry_act_ct *a, const struct ferry_flow_key *meta)
{
	if (w->ct == NULL)
		return;
	struct ferry_ct_action act;
	struct ferry_ct_pkt p;
	struct ferry_ct_result r;
	const struct ferry_ct_action *ap = &act;
	ct_action_of(a, ct_zone_of(a, meta), &act);
	ct_pkt_of(m, lay, eth_type, &p);
	if (unlikely(nw_frag != 0)) {
		/* a fragment of the datagram just reassembled (ct(table=) before): the
		 * datagram is tracked once, when its first fragment comes by */
		if (!whole_of(w, m, lay))
			goto track; /* not reassembled here: the tracker calls it inv */
		if (nw_frag & FERRY_NW_FRAG_BIT_LATER)
			return;
		p.data = w->whole;
		p.len = w->whole_len;
		p.l3_ofs = w->whole_l3;
		p.flags = FERRY_CT_PKT_REASSEMBLED;
		ferry_ct_execute(&w->ct_thread, &p, &ap, 1, w->now_ns, &r);
		return;
	}
track:
	ferry_ct_execute(&w->ct_thread, &p, &ap, 1, w->now_ns, &r);
	ct_pkt_done(m, &p);
	if (unlikely(w->ct_thread.nat_mask | w->ct_thread.edit_mask))
		ct_nat_rewrite_mbuf(w, m, lay, 0);
}

static int recirculate(struct ferry_worker *w, struct rte_mbuf *m, const struct ferry_program *p,
		       const struct ferry_op *op, uint32_t in_port, uint8_t depth, int last, int copy,
		       const struct ferry_flow_key *exit_meta)
{
	if ((unsigned)depth + 1 >= FERRY_MAX_RECIRC || w->rq_n == FERRY_RECIRC_SLOTS)
		return last ? DROPPED(FERRY_DROP_REASON_RECIRC_LIMIT) : count_drop(w, FERRY_DROP_REASON_RECIRC_LIMIT);
	struct rte_mbuf *o = take(w, m, last, copy);
	if (o == NULL)
		return 0;
	struct ferry_recirc *r = &w->rq[w->rq_n++];
	r->m = o;
	r->table = p->recirc_table;
	r->depth = (uint8_t)(depth + 1);
	r->in_port = in_port;
	r->ct = op->act;
	r->has_result = false;
	memcpy(r->meta, exit_meta, sizeof(r->meta));
	/* untracked (notrack before this ct; ct(table=) ends the translation, so exit_meta
	 * is the key as this ct saw it): round again without a lookup, a commit or an
	 * entry, keeping trk|untracked and the ct fields notrack cleared */
	if (exit_meta->ct_state & FERRY_CT_STATE_BIT_UNTRACKED) {
		r->ct = NULL;
		return last;
	}
	struct ferry_flow_key *mk = (struct ferry_flow_key *)(void *)r->meta;
	mk->ct_zone = ct_zone_of(op->act, exit_meta);
	return last;
}

/* ---- one packet ---- */

struct pkt {
	struct ferry_flow_key key;
	struct ferry_pkt_layout lay;
	uint8_t table;
	uint8_t depth;
};

static void execute(struct ferry_worker *w, struct rte_mbuf *m, struct pkt *pk, const struct ferry_program *p,
		    const struct ferry_flow_key *exit_meta)
{
	int consumed = 0;
	uint8_t why = p->drop_reason == FERRY_NO_DROP ? FERRY_DROP_REASON_NO_ACTIONS : p->drop_reason;
	uint32_t in_port = pk->key.in_port;
	struct ferry_tun_md md; /* the tunnel fields as this point of the action list sees them */
	memcpy(&md, &pk->key.tun_id, sizeof(md));
	for (unsigned i = 0; i < p->n_ops && consumed == 0; i++) {
		const struct ferry_op *op = &p->ops[i];
		switch (op->type) {
		case FERRY_OP_OUTPUT: {
			if (unlikely(op->port >= w->n_ports) && w->tn != NULL && op->port < FERRY_MAX_PORTS &&
			    w->tn->t[op->port].active) {
				struct rte_mbuf *o = take(w, m, op->last, op->copy);
				if (o)
					ferry_tunnel_output(w, o, op->port, &md, &pk->key);
				consumed = op->last;
				break;
			}
			if (unlikely(op->port >= w->n_ports)) {
				consumed = op->last ? DROPPED(FERRY_DROP_REASON_BAD_OUT_PORT)
						    : count_drop(w, FERRY_DROP_REASON_BAD_OUT_PORT);
				break;
			}
			struct rte_mbuf *o = take(w, m, op->last, op->copy);
			if (o)
				stage(w, (uint16_t)op->port, o);
			consumed = op->last;
			break;
		}
		case FERRY_OP_SET_FIELD:
			ferry_rewrite_set_field(m, &pk->lay, op->act);
			break;
		case FERRY_OP_SET_TUNNEL: {
			const struct ferry_act_set_field *a = op->act;
			const struct ferry_field_desc *d = ferry_field_desc(a->field);
			uint8_t *b = (uint8_t *)&md + (d->key_off - offsetof(struct ferry_flow_key, tun_id));
			for (unsigned k = 0; k < d->len; k++)
				b[k] = (uint8_t)((b[k] & ~a->mask[k]) | (a->value[k] & a->mask[k]));
			break;
		}
		case FERRY_OP_PUSH_VLAN:
			if (ferry_rewrite_push_vlan(m, &pk->lay, ((const struct ferry_act_push_vlan *)op->act)->tpid) != 0)
				w->stats->drops[FERRY_DROP_REASON_NO_MBUF]++;
			break;
		case FERRY_OP_POP_VLAN:
			ferry_rewrite_pop_vlan(m, &pk->lay);
			break;
		case FERRY_OP_DEC_TTL:
			ferry_rewrite_dec_ttl(m, &pk->lay);
			break;
		case FERRY_OP_CT:
			if (op->port) /* ct(table=): tracked as the packet goes round again */
				consumed = recirculate(w, m, p, op, in_port, pk->depth, op->last, op->copy, exit_meta);
			else
				ct_now(w, m, &pk->lay, pk->key.eth_type, pk->key.nw_frag, op->act, exit_meta);
			break;
		case FERRY_OP_NORMAL:
			consumed = normal(w, m, &pk->lay, &pk->key, in_port, &md, op->last, op->copy);
			break;
		case FERRY_OP_CONTROLLER:
			consumed = punt(w, m, op, in_port, op->last, op->copy);
			break;
		default: /* CT_CLEAR, NOTRACK: metadata only (exit_meta; notrack's state also
			  * keeps later ct() ops out of the program) */
			break;
		}
	}
	if (consumed < 0)
		why = (uint8_t)(-1 - consumed);
	if (consumed <= 0) {
		w->stats->drops[why]++;
		w->stats->ports[in_port < RTE_MAX_ETHPORTS ? in_port : 0].rx_dropped++;
		rte_pktmbuf_free(m);
	}
}

/* Counters of the rules and tables a program went through, for cnt packets. */
static void account(struct ferry_worker *w, const struct ferry_program *p, uint64_t cnt, uint64_t bytes)
{
	for (unsigned i = 0; i < p->n_visits; i++) {
		struct ferry_table_stats *ts = &w->table_stats[p->visit_table[i]];
		ts->lookups += cnt;
		if (p->visit_hit & (1u << i))
			ts->matches += cnt;
		else
			ts->misses += cnt;
	}
	for (unsigned i = 0; i < p->n_rules; i++) {
		struct ferry_flow_stats *fs = &w->flow_stats[p->rules[i]->slot];
		fs->packets += cnt;
		fs->bytes += bytes;
		fs->last_hit_ns = w->now_ns;
	}
}

/* The cache entry holding the program for a packet's key, translated into the cache
 * on a miss. *run is the entry whose counters are still being gathered: if a miss
 * has to reuse it, its counters are flushed first. */
static struct ferry_emc_entry *program_for(struct ferry_worker *w, const struct pkt *p,
					   const struct ferry_emc_entry **run, uint64_t *run_pkts, uint64_t *run_bytes)
{
	uint32_t h = ferry_key_hash(&p->key, p->table);
	struct ferry_emc_entry *victim = NULL;
	struct ferry_emc_entry *e = ferry_emc_find(w->emc, h, w->version, p->table, &p->key, &victim);
	if (likely(e != NULL)) {
		w->stats->emc_hits++;
		return e;
	}
	e = victim;
	if (*run == e) {
		account(w, &e->prog, *run_pkts, *run_bytes);
		*run = NULL;
	}
	w->stats->emc_misses++;
	e->key = p->key;
	e->hash = h;
	e->start_table = p->table;
	e->version = w->version;
	struct ferry_flow_key xk = p->key;
	ferry_xlate(&w->flows->tss, w->version, &xk, p->table, &e->prog);
	memcpy(&e->prog.exit_meta, &xk, sizeof(e->prog.exit_meta));
	return e;
}

/* One pass of n packets through the pipeline. */
static void run_pass(struct ferry_worker *w, struct rte_mbuf **pkts, struct pkt *pk, uint16_t n)
{
	const struct ferry_emc_entry *run = NULL;
	uint64_t run_pkts = 0, run_bytes = 0;

	struct ferry_emc_entry *e = NULL;
	for (uint16_t i = 0; i < n; i++) {
		struct pkt *p = &pk[i];
		/* packets of one flow come in runs: the same key as the packet before takes its
		 * program without hashing (OVS batches by flow the same way) */
		if (e != NULL && p->table == pk[i - 1].table && ferry_key_equal(&p->key, &pk[i - 1].key))
			w->stats->emc_hits++;
		else
			e = program_for(w, p, &run, &run_pkts, &run_bytes);
		uint32_t len = pkts[i]->pkt_len;
		if (e != run) {
			if (run)
				account(w, &run->prog, run_pkts, run_bytes);
			run = e;
			run_pkts = 0;
			run_bytes = 0;
		}
		run_pkts++;
		run_bytes += len;
		const struct ferry_program *prog = &e->prog;
		if (prog->n_ops == 1 && prog->ops[0].type == FERRY_OP_OUTPUT && prog->ops[0].port < w->n_ports)
			stage(w, (uint16_t)prog->ops[0].port, pkts[i]); /* the common single output */
		else
			execute(w, pkts[i], p, prog, (const struct ferry_flow_key *)(const void *)prog->exit_meta);
	}
	if (run)
		account(w, &run->prog, run_pkts, run_bytes);
}

/* A fragment going through ct(table=): held until its datagram is whole; then the
 * datagram is tracked and every fragment of it goes on with that result (the others
 * through the recirculation queue). Returns true when pkts[i] goes on now, with its
 * tracker input in *cp (the whole datagram). */
static bool fragment_in(struct ferry_worker *w, struct rte_mbuf *m, const struct pkt *p, struct ferry_ct_pkt *cp,
			struct ferry_ipf_done *done)
{
	struct ferry_ipf_frag f = { .data = rte_pktmbuf_mtod(m, const uint8_t *), .len = rte_pktmbuf_data_len(m),
				    .l3_ofs = p->lay.l3_off, .zone = p->key.ct_zone, .handle = m };
	uint8_t why = 0;
	enum ferry_ipf_verdict v = ferry_ipf_add(w->ipf, &f, w->now_ns, done, &why);
	frag_counters(w);
	if (v == FERRY_IPF_HELD)
		return false;
	if (v == FERRY_IPF_DROP)
		return true; /* as OVS: refused by the reassembler, it meets the tracker as it is (inv) */
	/* DONE: the whole datagram is what the tracker sees, now and at a later ct() of
	 * the same pass (kept: the reassembler's buffer lasts until its next add) */
	if (done->whole_len <= FERRY_WHOLE_MAX) {
		memcpy(w->whole, done->whole, done->whole_len);
		w->whole_len = done->whole_len;
		w->whole_l3 = done->l3_ofs;
	}
	cp->data = done->whole;
	cp->len = done->whole_len;
	cp->l3_ofs = done->l3_ofs;
	cp->flags = FERRY_CT_PKT_REASSEMBLED;
	return true;
}

/* the other fragments of a tracked datagram: round again with its result */
static void fragments_out(struct ferry_worker *w, const struct ferry_ipf_done *done, struct rte_mbuf *self,
			  const struct ferry_recirc *r, const struct ferry_ct_result *res)
{
	for (unsigned k = 0; k < done->n_handles; k++) {
		struct rte_mbuf *fm = done->handles[k];
		if (fm == self)
			continue;
		if (w->rq_n == FERRY_RECIRC_SLOTS) {
			w->stats->drops[FERRY_DROP_REASON_RECIRC_LIMIT]++;
			rte_pktmbuf_free(fm);
			continue;
		}
		struct ferry_recirc *q = &w->rq[w->rq_n++];
		*q = *r;
		q->m = fm;
		q->ct = NULL;
		q->has_result = true;
		q->ct_result = *res;
	}
}

/* The same for a packet past ct(table=): the next table matches the translated
 * headers, so they are parsed again; metadata and ct fields stay. A packet that
 * could not be translated goes on as inv|trk, which pipelines drop. */
static void ct_nat_rewrite_apply(struct ferry_worker *w, struct rte_mbuf *m, struct pkt *pk, unsigned i)
{
	if (!ct_nat_rewrite_mbuf(w, m, &pk->lay, i)) {
		pk->key.ct_state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_INV;
		return;
	}
	struct ferry_flow_key old = pk->key;
	ferry_parse(m, old.in_port, &pk->key, &pk->lay);
	uint8_t frag = pk->key.nw_frag;
	uint32_t label = pk->key.ipv6_label;
	memcpy(&pk->key, &old, FERRY_KEY_META_BYTES);
	pk->key.in_port = old.in_port;
	pk->key.nw_frag = frag;
	pk->key.ipv6_label = label;
}

/* Tracks the packets of a recirculation batch that came through ct(table=), all in
 * one burst call of the tracker, and writes the results into their keys. Fragments
 * may be held back: returns how many packets go on (pkts/pk compacted). */
static uint16_t track_batch(struct ferry_worker *w, struct rte_mbuf **pkts, struct pkt *pk, const struct ferry_recirc *rs,
			    uint16_t n)
{
	struct ferry_ct_pkt cp[FERRY_BURST];
	struct ferry_ct_action act[FERRY_BURST];
	const struct ferry_ct_action *ap[FERRY_BURST];
	struct ferry_ct_result res[FERRY_BURST];
	uint16_t idx[FERRY_BURST];
	unsigned nc = 0;
	uint16_t kept = 0;
	for (uint16_t i = 0; i < n; i++) {
		if (rs[i].has_result) {
			ct_result_to_key(&rs[i].ct_result, &pk[i].key);
		} else if (rs[i].ct != NULL) {
			ct_action_of(rs[i].ct, pk[i].key.ct_zone, &act[nc]);
			ap[nc] = &act[nc];
			ct_pkt_of(pkts[i], &pk[i].lay, pk[i].key.eth_type, &cp[nc]);
			if (unlikely(w->ct != NULL && pk[i].key.nw_frag != 0)) {
				struct ferry_ipf_done done;
				if (!fragment_in(w, pkts[i], &pk[i], &cp[nc], &done))
					continue; /* held until its datagram is whole */
				if (cp[nc].flags & FERRY_CT_PKT_REASSEMBLED) {
					/* the datagram is tracked now: its buffer lasts until the next add */
					struct ferry_ct_result r;
					ferry_ct_execute(&w->ct_thread, &cp[nc], &ap[nc], 1, w->now_ns, &r);
					ct_result_to_key(&r, &pk[i].key);
					fragments_out(w, &done, pkts[i], &rs[i], &r);
					goto keep;
				}
			}
			idx[nc++] = kept;
		}
keep:
		if (kept != i) {
			pkts[kept] = pkts[i];
			pk[kept] = pk[i];
		}
		kept++;
	}
	if (nc == 0)
		return kept;
	if (unlikely(w->ct == NULL)) {
		/* no tracker: tracked-but-invalid, so pipelines that admit only +new/+est fail closed */
		for (unsigned j = 0; j < nc; j++)
			pk[idx[j]].key.ct_state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_INV;
		return kept;
	}
	/* everything else in one burst of the tracker */
	ferry_ct_execute(&w->ct_thread, cp, ap, nc, w->now_ns, res);
	for (unsigned j = 0; j < nc; j++) {
		ct_pkt_done(pkts[idx[j]], &cp[j]);
		ct_result_to_key(&res[j], &pk[idx[j]].key);
		if (unlikely((w->ct_thread.nat_mask | w->ct_thread.edit_mask) & (1ull << j)))
			ct_nat_rewrite_apply(w, pkts[idx[j]], &pk[idx[j]], j);
	}
	return kept;
}

static void process_recirculations(struct ferry_worker *w)
{
	struct rte_mbuf *pkts[FERRY_BURST];
	struct pkt pk[FERRY_BURST];
	struct ferry_recirc rs[FERRY_BURST];
	while (w->rq_n > 0) {
		uint16_t n = w->rq_n < FERRY_BURST ? w->rq_n : FERRY_BURST;
		w->rq_n -= n;
		memcpy(rs, &w->rq[w->rq_n], n * sizeof(rs[0]));
		for (uint16_t i = 0; i < n; i++) {
			struct ferry_recirc *r = &rs[i];
			pkts[i] = r->m;
			ferry_parse(r->m, r->in_port, &pk[i].key, &pk[i].lay);
			/* the packet's own fields come from its headers again; its metadata,
			 * registers, tunnel and ct fields from before the recirculation */
			uint8_t frag = pk[i].key.nw_frag;
			uint32_t label = pk[i].key.ipv6_label;
			memcpy(&pk[i].key, r->meta, sizeof(r->meta));
			pk[i].key.in_port = r->in_port;
			pk[i].key.nw_frag = frag;
			pk[i].key.ipv6_label = label;
			pk[i].table = r->table;
			pk[i].depth = r->depth;
		}
		w->stats->recirculations += n;
		n = track_batch(w, pkts, pk, rs, n);
		if (n)
			run_pass(w, pkts, pk, n);
	}
}

/* No visible flow looks at headers: every packet of the burst has the same result,
 * the one for its in_port, so nothing is parsed and one program serves the burst. */
static void process_headerless(struct ferry_worker *w, uint16_t in_port, struct rte_mbuf **pkts, uint16_t n)
{
	struct pkt p;
	struct ferry_worker_port_stats *in = &w->stats->ports[in_port];
	uint64_t bytes = 0, ol_flags = 0;
	for (uint16_t i = 0; i < n; i++) {
		bytes += pkts[i]->pkt_len;
		ol_flags |= pkts[i]->ol_flags;
	}
	in->rx_packets += n;
	in->rx_bytes += bytes;

	const struct ferry_emc_entry *e = w->hl_entry[in_port];
	memset(&p.lay, 0, sizeof(p.lay));
	p.lay.parse_error = FERRY_PARSE_OK;
	p.table = 0;
	p.depth = 0;
	/* the cached entry is good while it still holds this port's program at this version:
	 * another port's translation may have taken its cache slot. (Any key with this
	 * in_port has this port's program: no visible flow reads anything else.) */
	if (unlikely(w->hl_version[in_port] != w->version || e == NULL || e->version != w->version ||
		     e->key.in_port != in_port || e->start_table != 0)) {
		/* first burst of this port at this version: the port's program, via the cache */
		memset(&p.key, 0, sizeof(p.key));
		p.key.in_port = in_port;
		const struct ferry_emc_entry *run = NULL;
		uint64_t rp = 0, rb = 0;
		e = program_for(w, &p, &run, &rp, &rb);
		w->hl_entry[in_port] = e;
		w->hl_version[in_port] = w->version;
	} else {
		w->stats->emc_hits++;
	}
	const struct ferry_program *prog = &e->prog;
	account(w, prog, n, bytes);
	w->stats->emc_hits += n - 1u;
	if (prog->n_ops == 1 && prog->ops[0].type == FERRY_OP_OUTPUT && prog->ops[0].port < w->n_ports) {
		/* the patch-panel case: the whole burst goes out one port as received */
		uint16_t out = (uint16_t)prog->ops[0].port;
		/* as received, unless a packet asks the NIC for what stage() may have to do */
		if (likely(w->tx_n[out] == 0 && !(ol_flags & FERRY_TX_REQUEST_FLAGS))) {
			transmit(w, out, pkts, n, bytes); /* nothing else waits for that port */
			return;
		}
		for (uint16_t i = 0; i < n; i++)
			stage(w, out, pkts[i]);
	} else {
		memset(&p.key, 0, sizeof(p.key));
		p.key.in_port = in_port;
		for (uint16_t i = 0; i < n; i++)
			execute(w, pkts[i], &p, prog, (const struct ferry_flow_key *)(const void *)prog->exit_meta);
	}
	flush_all(w);
}

void ferry_worker_process_burst(struct ferry_worker *w, uint16_t in_port, struct rte_mbuf **pkts, uint16_t n)
{
	if (unlikely(w->tn != NULL && (w->tn->underlay_mask >> in_port) & 1)) {
		/* ARP and STT for our tunnel endpoints never reach the flow tables */
		n = ferry_underlay_rx(w, in_port, pkts, n);
		if (n == 0)
			return;
	}
	if (!w->headers_needed) {
		process_headerless(w, in_port, pkts, n);
		return;
	}
	struct pkt pk[FERRY_BURST];
	struct ferry_worker_port_stats *in = &w->stats->ports[in_port];
	uint64_t bytes = 0;

	/* headers are cold (the NIC wrote them by DMA): fetch a few packets ahead of the
	 * parser, as l3fwd does */
	for (uint16_t i = 0; i < n && i < PREFETCH_OFFSET; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		if (i + PREFETCH_OFFSET < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + PREFETCH_OFFSET], void *));
		bytes += m->pkt_len;
		uint8_t err = ferry_parse(m, in_port, &pk[i].key, &pk[i].lay);
		if (unlikely(err != FERRY_PARSE_OK))
			w->stats->parse_errors[err]++;
		pk[i].table = 0;
		pk[i].depth = 0;
	}
	in->rx_packets += n;
	in->rx_bytes += bytes;
	run_pass(w, pkts, pk, n);
	if (unlikely(w->rq_n))
		process_recirculations(w);
	flush_all(w);
}

void ferry_worker_process_decapped(struct ferry_worker *w, struct rte_mbuf **pkts, const uint32_t *in_port,
				   const struct ferry_tun_md *md, uint16_t n)
{
	struct pkt pk[FERRY_BURST];
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		uint8_t err = ferry_parse(m, in_port[i], &pk[i].key, &pk[i].lay);
		if (unlikely(err != FERRY_PARSE_OK))
			w->stats->parse_errors[err]++;
		memcpy(&pk[i].key.tun_id, &md[i], sizeof(md[i]));
		pk[i].table = 0;
		pk[i].depth = 0;
		struct ferry_worker_port_stats *ps = &w->stats->ports[in_port[i]];
		ps->rx_packets++;
		ps->rx_bytes += m->pkt_len;
	}
	run_pass(w, pkts, pk, n);
	if (unlikely(w->rq_n))
		process_recirculations(w);
	flush_all(w);
}

int ferry_worker_main(void *arg)
{
	struct ferry_worker *w = arg;
	struct ferry_worker_stats *st = w->stats;
	struct rte_mbuf *pkts[FERRY_BURST];
	uint32_t idle_streak = 0;

	rte_rcu_qsbr_thread_register(w->qsv, w->id);
	rte_rcu_qsbr_thread_online(w->qsv, w->id);
	st->lcore_id = w->lcore;
	st->n_rxq = w->n_rxq;

	uint64_t prev = rte_rdtsc();
	while (likely(!*w->quit)) {
		/* one version per loop: a flow change is seen whole or not at all */
		w->version = ferry_flow_table_version(w->flows);
		/* after the version: a flag raised for it is visible (see flow_table.h) */
		w->headers_needed = __atomic_load_n(&w->flows->headers_needed, __ATOMIC_ACQUIRE);
		if (w->tunnels != NULL)
			w->tn = ferry_tunnels_read(w->tunnels);
		w->now_ns = ferry_tsc_to_ns(&w->clock, prev);
		uint32_t got = 0;

		for (uint16_t q = 0; q < w->n_rxq; q++) {
			const struct ferry_rxq *rq = &w->rxq[q];
			uint16_t n = rte_eth_rx_burst(rq->port, rq->queue, pkts, FERRY_BURST);
			if (n == 0)
				continue;
			st->rx_bursts++;
			got += n;
			ferry_worker_process_burst(w, rq->port, pkts, n);
		}
		/* datagrams that will not complete give their fragments back */
		if (unlikely(w->ipf != NULL && ferry_ipf_held(w->ipf) != 0)) {
			ferry_ipf_expire(w->ipf, w->now_ns);
			frag_counters(w);
		}
		if (w->tn != NULL)
			ferry_tunnel_io_poll(w);
		/* no reference to a rule, table or tunnel snapshot survives this point */
		rte_rcu_qsbr_quiescent(w->qsv, w->id);

		uint64_t now = rte_rdtsc();
		st->loops++;
		if (likely(got != 0)) {
			st->busy_loops++;
			st->rx_packets += got;
			st->busy_cycles += now - prev;
			idle_streak = 0;
		} else {
			st->idle_cycles += now - prev;
			if (w->sleep_us != 0 && ++idle_streak >= IDLE_LOOPS_BEFORE_SLEEP) {
				/* offline while asleep so flow updates need not wait for us */
				rte_rcu_qsbr_thread_offline(w->qsv, w->id);
				rte_delay_us_sleep(w->sleep_us);
				rte_rcu_qsbr_thread_online(w->qsv, w->id);
				uint64_t woke = rte_rdtsc();
				st->idle_cycles += woke - now;
				now = woke;
			}
		}
		prev = now;
	}
	rte_rcu_qsbr_thread_offline(w->qsv, w->id);
	rte_rcu_qsbr_thread_unregister(w->qsv, w->id);
	return 0;
}
