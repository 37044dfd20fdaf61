/* Walks over the table for the control side and the cleanup thread: dump with
 * filters pushed down, flush by filter, counts by protocol/state/zone, and the
 * sweep that expires entries. Each takes one bucket lock at a time and holds it for
 * a bounded amount of work, so a worker's burst never waits behind a long walk. */
#include <string.h>
#include <time.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include "ct_private.h"

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMP_ 1
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132

void ct_fill_entry(const struct ferry_ct *ct, const struct ct_conn *c, uint64_t now, struct ferry_ct_entry *e)
{
	const struct ct_key *k = &c->key;
	memset(e, 0, sizeof(*e));
	unsigned alen = k->l3 == 4 ? 4 : 16;
	memcpy(e->src, c->orig_b ? k->b : k->a, alen);
	memcpy(e->dst, c->orig_b ? k->a : k->b, alen);
	e->sport = c->orig_b ? k->pb : k->pa;
	e->dport = c->orig_b ? k->pa : k->pb;
	if (k->proto == 1 || k->proto == 58)
		e->dport = e->sport; /* the key holds (id, request type); a dump shows the id */
	e->zone = k->zone;
	e->proto = k->proto;
	e->ip_version = k->l3;
	if (k->proto == IPPROTO_TCP_) {
		e->state_orig = c->peer[0].state;
		e->state_reply = c->peer[1].state;
	}
	uint8_t nat = ct_nat_kind(ct, c);
	e->flags = (uint16_t)(((c->flags & CONN_SEEN_REPLY) ? FERRY_CT_ENTRY_FLAG_SEEN_REPLY : 0) |
			      ((c->flags & CONN_LIBERAL) ? FERRY_CT_ENTRY_FLAG_BE_LIBERAL : 0) |
			      (nat == CT_NAT_SRC ? FERRY_CT_ENTRY_FLAG_SNAT : 0) |
			      (nat == CT_NAT_DST ? FERRY_CT_ENTRY_FLAG_DNAT : 0));
	uint8_t rsrc[16], rdst[16];
	ct_nat_reply_tuple(ct, c, rsrc, rdst, &e->reply_sport, &e->reply_dport);
	memcpy(e->reply_src, rsrc, alen);
	memcpy(e->reply_dst, rdst, alen);
	if (k->proto == 1 || k->proto == 58) {
		/* as for the original tuple: the id (the reply's dport in the key domain) */
		e->reply_sport = e->reply_dport;
	}
	e->mark = c->mark;
	uint64_t left = c->expiration > now ? (c->expiration - now) / 1000000ull : 0;
	e->timeout_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
	memcpy(e->label, c->label, 16);
	e->icmp_type = c->icmp_type;
	e->icmp_code = c->icmp_code;
	e->tm = c->tm;
	e->packets_orig = c->packets[0];
	e->bytes_orig = c->bytes[0];
	e->packets_reply = c->packets[1];
	e->bytes_reply = c->bytes[1];
	e->first_seen_ns = c->first_seen;
	e->last_seen_ns = c->last_seen;
}

static bool prefix_match(const uint8_t *addr, const uint8_t *want, unsigned plen)
{
	unsigned bytes = plen / 8, bits = plen % 8;
	if (memcmp(addr, want, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - bits));
	return (addr[bytes] & m) == (want[bytes] & m);
}

static bool tuple_match(const struct ferry_ct_filter *f, const uint8_t *src, const uint8_t *dst, uint16_t sport,
			uint16_t dport)
{
	if ((f->flags & FERRY_CT_FILTER_FLAG_SRC) && !prefix_match(src, f->src, f->src_plen))
		return false;
	if ((f->flags & FERRY_CT_FILTER_FLAG_DST) && !prefix_match(dst, f->dst, f->dst_plen))
		return false;
	if ((f->flags & FERRY_CT_FILTER_FLAG_SPORT) && sport != f->sport)
		return false;
	if ((f->flags & FERRY_CT_FILTER_FLAG_DPORT) && dport != f->dport)
		return false;
	return true;
}

static bool filter_match(const struct ferry_ct *ct, const struct ferry_ct_filter *f, const struct ct_conn *c)
{
	if (f == NULL || f->flags == 0)
		return true;
	const struct ct_key *k = &c->key;
	if ((f->flags & FERRY_CT_FILTER_FLAG_ZONE) && k->zone != f->zone)
		return false;
	if ((f->flags & FERRY_CT_FILTER_FLAG_PROTO) && k->proto != f->proto)
		return false;
	if ((f->flags & FERRY_CT_FILTER_FLAG_IP_VERSION) && k->l3 != f->ip_version)
		return false;
	if ((f->flags & FERRY_CT_FILTER_FLAG_MARK) && (c->mark & f->mark_mask) != (f->mark & f->mark_mask))
		return false;
	if (f->flags & FERRY_CT_FILTER_FLAG_LABEL) {
		for (unsigned i = 0; i < 16; i++)
			if ((c->label[i] & f->label_mask[i]) != (f->label[i] & f->label_mask[i]))
				return false;
	}
	if (f->flags & FERRY_CT_FILTER_FLAG_TCP_STATE) {
		if (k->proto != IPPROTO_TCP_)
			return false;
		uint8_t s = c->peer[0].state > c->peer[1].state ? c->peer[0].state : c->peer[1].state;
		if (s != f->tcp_state)
			return false;
	}
	if (f->flags & (FERRY_CT_FILTER_FLAG_SRC | FERRY_CT_FILTER_FLAG_DST | FERRY_CT_FILTER_FLAG_SPORT |
			FERRY_CT_FILTER_FLAG_DPORT)) {
		const uint8_t *osrc = c->orig_b ? k->b : k->a, *odst = c->orig_b ? k->a : k->b;
		uint16_t osp = c->orig_b ? k->pb : k->pa, odp = c->orig_b ? k->pa : k->pb;
		if (tuple_match(f, osrc, odst, osp, odp))
			return true;
		if (!(f->flags & FERRY_CT_FILTER_FLAG_EITHER_DIR))
			return false;
		/* the reply direction as it travels: translated when the entry is */
		uint8_t rsrc[16], rdst[16];
		uint16_t rsp, rdp;
		ct_nat_reply_tuple(ct, c, rsrc, rdst, &rsp, &rdp);
		return tuple_match(f, rsrc, rdst, rsp, rdp);
	}
	return true;
}

uint64_t ferry_ct_dump(struct ferry_ct *ct, const struct ferry_ct_filter *f, uint64_t cursor, uint32_t max,
		       uint64_t now, ferry_ct_entry_cb cb, void *arg, bool *done)
{
	uint64_t given = 0;
	uint64_t slot = cursor;
	*done = false;
	for (; slot <= ct->slot_mask; slot++) {
		if (__atomic_load_n(&ct->heads[slot], __ATOMIC_RELAXED) == CT_NIL)
			continue; /* an entry racing in now may be missed: a dump is a snapshot */
		if (max && given >= max)
			return slot;
		struct ct_bucket *b = &ct->buckets[slot & ct->bucket_mask];
		struct ferry_ct_entry batch[FERRY_CT_DUMP_SLOT_MAX];
		unsigned nb = 0;
		bool stop = false;
		pthread_mutex_lock(&b->lock);
		for (uint32_t idx = ct->heads[slot]; idx != CT_NIL; idx = ct_link_next(ct, idx)) {
			if (ct_link_is_rev(ct, idx))
				continue; /* a reply node: its entry is in its own slot */
			const struct ct_conn *c = &ct->conns[idx];
			if (ct_expired(c, now) || !filter_match(ct, f, c))
				continue;
			if (nb == RTE_DIM(batch))
				break; /* a chain this long cannot form with slots >= entries */
			ct_fill_entry(ct, c, now, &batch[nb++]);
		}
		pthread_mutex_unlock(&b->lock);
		/* callbacks run without the lock: they may write to a ring and wait. A stop
		 * takes effect at the end of the slot, so the cursor never splits a chain. */
		for (unsigned i = 0; i < nb; i++) {
			given++;
			stop |= cb(arg, &batch[i]) != 0;
		}
		if (stop)
			return slot + 1;
	}
	*done = true;
	return 0;
}

uint64_t ferry_ct_flush(struct ferry_ct_thread *t, const struct ferry_ct_filter *f, uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	uint64_t removed = 0;
	for (uint64_t slot = 0; slot <= ct->slot_mask; slot++) {
		if (__atomic_load_n(&ct->heads[slot], __ATOMIC_RELAXED) == CT_NIL)
			continue;
		struct ct_bucket *b = &ct->buckets[slot & ct->bucket_mask];
		pthread_mutex_lock(&b->lock);
		uint32_t idx = ct->heads[slot];
		while (idx != CT_NIL) {
			uint32_t link = idx;
			idx = ct_link_next(ct, link);
			if (ct_link_is_rev(ct, link))
				continue;
			struct ct_conn *c = &ct->conns[link];
			if (!ct_expired(c, now) && !filter_match(ct, f, c))
				continue;
			bool live = !ct_expired(c, now);
			/* a translated entry whose reply node cannot be unlinked now is left
			 * expired: flushed all the same for lookups, freed by the sweep */
			ct_remove_locked(t, c, live ? FERRY_CT_DESTROY_REASON_FLUSHED : FERRY_CT_DESTROY_REASON_EXPIRED, now);
			removed += live;
		}
		pthread_mutex_unlock(&b->lock);
	}
	atomic_fetch_add(&ct->flushed, removed);
	return removed;
}

static unsigned proto_index(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP_:
		return FERRY_CT_PROTO_INDEX_TCP;
	case IPPROTO_UDP_:
		return FERRY_CT_PROTO_INDEX_UDP;
	case IPPROTO_ICMP_:
		return FERRY_CT_PROTO_INDEX_ICMP;
	case IPPROTO_ICMPV6_:
		return FERRY_CT_PROTO_INDEX_ICMPV6;
	case IPPROTO_SCTP_:
		return FERRY_CT_PROTO_INDEX_SCTP;
	default:
		return FERRY_CT_PROTO_INDEX_OTHER;
	}
}

void ferry_ct_stats(struct ferry_ct *ct, uint32_t zone_start, uint64_t now, struct ferry_ct_stats_resp *out)
{
	memset(out, 0, sizeof(*out));
	/* by slot, like a dump: a lock is held for one chain at a time */
	for (uint64_t slot = 0; slot <= ct->slot_mask; slot++) {
		if (__atomic_load_n(&ct->heads[slot], __ATOMIC_RELAXED) == CT_NIL)
			continue;
		struct ct_bucket *b = &ct->buckets[slot & ct->bucket_mask];
		pthread_mutex_lock(&b->lock);
		for (uint32_t idx = ct->heads[slot]; idx != CT_NIL; idx = ct_link_next(ct, idx)) {
			if (ct_link_is_rev(ct, idx))
				continue;
			const struct ct_conn *c = &ct->conns[idx];
			if (ct_expired(c, now))
				continue;
			out->total++;
			out->by_proto[proto_index(c->key.proto)]++;
			if (c->key.proto == IPPROTO_TCP_) {
				uint8_t s = c->peer[0].state > c->peer[1].state ? c->peer[0].state : c->peer[1].state;
				if (s < RTE_DIM(out->by_tcp_state))
					out->by_tcp_state[s]++;
			}
		}
		pthread_mutex_unlock(&b->lock);
	}
	/* zones from their counters (entries awaiting the sweep included, as limits see them) */
	out->next_zone = FERRY_CT_ZONE_NONE;
	for (uint32_t z = zone_start; z < FERRY_CT_ZONES; z++) {
		uint32_t n = atomic_load_explicit(&ct->zone_count[z], memory_order_relaxed);
		if (n == 0)
			continue;
		if (out->n_zones == FERRY_CT_STATS_ZONES) {
			out->next_zone = z;
			break;
		}
		out->zones[out->n_zones].zone = (uint16_t)z;
		out->zones[out->n_zones].count = n;
		out->n_zones++;
	}
}

/* the sweeping thread's own CPU time: the work done under a lock, without the time
 * the OS took the thread away (which a worker can wait out too, but which no bound on
 * the work prevents) */
static inline uint64_t hold_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One bucket's expiration list, sweep_budget entries per lock hold. */
static uint64_t sweep_bucket(struct ferry_ct_thread *t, struct ct_bucket *b, uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	uint64_t removed = 0;
	pthread_mutex_lock(&b->lock);
	b->cursor = b->exp_head;
	while (b->cursor != CT_NIL) {
		uint64_t held = hold_clock();
		for (uint32_t k = 0; k < ct->sweep_budget && b->cursor != CT_NIL; k++) {
			struct ct_conn *c = &ct->conns[b->cursor];
			b->cursor = c->exp_next;
			if (b->cursor != CT_NIL)
				rte_prefetch0(&ct->conns[b->cursor].exp_next);
			if (ct_expired(c, now) && ct_remove_locked(t, c, FERRY_CT_DESTROY_REASON_EXPIRED, now))
				removed++;
		}
		held = hold_clock() - held;
		if (held > atomic_load_explicit(&ct->sweep_max_hold_ns, memory_order_relaxed))
			atomic_store_explicit(&ct->sweep_max_hold_ns, held, memory_order_relaxed);
		atomic_fetch_add_explicit(&ct->sweep_holds, 1, memory_order_relaxed);
		if (held > CT_LONG_HOLD_NS)
			atomic_fetch_add_explicit(&ct->sweep_long_holds, 1, memory_order_relaxed);
		/* let waiting workers in (they try the lock in a loop: the sweep waits
		 * until they have it, else it would take it back first, step after step);
		 * the cursor survives removals made meanwhile */
		pthread_mutex_unlock(&b->lock);
		for (unsigned i = 0; i < CT_SWEEP_YIELD_SPINS &&
				    atomic_load_explicit(&b->waiting, memory_order_relaxed) != 0; i++)
			rte_pause();
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return removed;
}

uint64_t ferry_ct_sweep(struct ferry_ct_thread *t, uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	uint64_t removed = 0;
	for (uint32_t bi = 0; bi <= ct->bucket_mask; bi++) {
		if (__atomic_load_n(&ct->buckets[bi].exp_len, __ATOMIC_RELAXED) == 0)
			continue;
		removed += sweep_bucket(t, &ct->buckets[bi], now);
	}
	ct_exp_expire(ct, now);
	atomic_fetch_add(&ct->sweeps, 1);
	return removed;
}
