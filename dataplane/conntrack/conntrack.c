/* The table and the burst path: create, lookup under bucket locks, commit with
 * limits and early drop, mark/label, force, results, events, and the cleanup
 * thread's life. The walks (dump, flush, stats, sweep) are in ct_walk.c. */
#include "ct_private.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <rte_prefetch.h>

#define IPPROTO_TCP_ 6
#define IPPROTO_ICMP_ 1
#define IPPROTO_ICMPV6_ 58
#define FREE_BATCH 32u
#define DEFAULT_EVENT_SLOTS 8192u

/* OVS's defaults (conntrack.md 1a), seconds, by FERRY_CT_TM_* */
const uint32_t ferry_ct_default_timeouts[FERRY_CT_N_TM] = {
	[FERRY_CT_TM_TCP_SYN_SENT] = 30,
	[FERRY_CT_TM_TCP_SYN_RECV] = 30,
	[FERRY_CT_TM_TCP_ESTABLISHED] = 86400,
	[FERRY_CT_TM_TCP_FIN_WAIT] = 900,
	[FERRY_CT_TM_TCP_TIME_WAIT] = 45,
	[FERRY_CT_TM_TCP_CLOSE] = 30,
	[FERRY_CT_TM_UDP_FIRST] = 60,
	[FERRY_CT_TM_UDP_SINGLE] = 60,
	[FERRY_CT_TM_UDP_MULTIPLE] = 30,
	[FERRY_CT_TM_ICMP_FIRST] = 60,
	[FERRY_CT_TM_ICMP_REPLY] = 30,
};

static inline const struct ct_l4_ops *l4_ops(uint8_t proto)
{
	if (proto == IPPROTO_TCP_)
		return &ct_tcp_ops;
	if (proto == IPPROTO_ICMP_ || proto == IPPROTO_ICMPV6_)
		return &ct_icmp_ops;
	return &ct_other_ops;
}

static uint64_t monotonic_ns(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 1;
	while (p < n && p < (1u << 31))
		p <<= 1;
	return p;
}

static void *map_lazy(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* lookups land anywhere in these: transparent huge pages spare most TLB misses
	 * where the kernel offers them (advice only; ignored elsewhere) */
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

static void *cleanup_main(void *arg);

struct ferry_ct *ferry_ct_create(const struct ferry_ct_config *cfg)
{
	struct ferry_ct *ct = calloc(1, sizeof(*ct));
	if (ct == NULL)
		return NULL;
	uint32_t max = cfg->max_conns ? cfg->max_conns : FERRY_CT_DEFAULT_MAX_CONNS;
	ct->capacity = cfg->capacity ? cfg->capacity : max;
	if (ct->capacity > CT_MAX_CAPACITY)
		ct->capacity = CT_MAX_CAPACITY; /* a link's top bit marks reply nodes */
	if (max > ct->capacity)
		max = ct->capacity;
	atomic_init(&ct->max_conns, max);
	uint32_t n_buckets = cfg->n_buckets ? pow2_at_least(cfg->n_buckets) : FERRY_CT_DEFAULT_BUCKETS;
	uint32_t n_slots = pow2_at_least(ct->capacity);
	if (n_slots < n_buckets)
		n_slots = n_buckets;
	ct->slot_mask = n_slots - 1;
	ct->bucket_mask = n_buckets - 1;
	ct->hash_v4_lane_b = ct_hash_lane_b(0, 0);
	ct->sweep_interval_ms = cfg->sweep_interval_ms ? cfg->sweep_interval_ms : FERRY_CT_DEFAULT_SWEEP_MS;
	ct->sweep_budget = cfg->sweep_budget ? cfg->sweep_budget : FERRY_CT_DEFAULT_SWEEP_BUDGET;
	ct->clock = cfg->clock ? cfg->clock : monotonic_ns;
	ct->clock_arg = cfg->clock_arg;
	atomic_init(&ct->tcp_seq_check, true);
	atomic_init(&ct->events, cfg->events);

	/* the pool and the slots are reserved, not touched: pages come as entries do */
	/* entries, then the reply nodes of translated ones (ct_nat), one per entry */
	ct->conns_bytes = (size_t)ct->capacity * 2 * sizeof(struct ct_conn);
	ct->heads_bytes = (size_t)n_slots * sizeof(uint32_t);
	ct->conns = map_lazy(ct->conns_bytes);
	ct->nat = ct->conns ? (struct ct_nat *)(void *)&ct->conns[ct->capacity] : NULL;
	ct->heads = map_lazy(ct->heads_bytes);
	ct->free_stack = map_lazy((size_t)ct->capacity * sizeof(uint32_t));
	ct->buckets = aligned_alloc(64, n_buckets * sizeof(struct ct_bucket));
	ct->zone_limit = malloc(FERRY_CT_ZONES * sizeof(*ct->zone_limit));
	ct->zone_count = calloc(FERRY_CT_ZONES, sizeof(*ct->zone_count));
	ct->zone_tp = calloc(FERRY_CT_ZONES, sizeof(*ct->zone_tp));
	ct->tp_ns = calloc(CT_MAX_POLICIES, sizeof(*ct->tp_ns));
	ct->tp_used = calloc(CT_MAX_POLICIES, 1);
	uint32_t ev_slots = cfg->event_slots ? pow2_at_least(cfg->event_slots) : DEFAULT_EVENT_SLOTS;
	ssize_t ring_sz = rte_ring_get_memsize_elem(sizeof(struct ct_event_rec), ev_slots);
	ct->event_ring = ring_sz > 0 ? aligned_alloc(64, (size_t)RTE_ALIGN_CEIL(ring_sz, 64)) : NULL;
	if (!ct_alg_init(ct))
		goto fail;
	if (!ct->conns || !ct->nat || !ct->heads || !ct->free_stack || !ct->buckets || !ct->zone_limit || !ct->zone_count ||
	    !ct->zone_tp || !ct->tp_ns || !ct->tp_used || !ct->event_ring)
		goto fail;
	/* preempted producers (the cleanup thread is an ordinary thread) must not stall
	 * the others: relaxed tail sync on enqueue */
	if (rte_ring_init(ct->event_ring, "ferry_ct_ev", ev_slots, RING_F_MP_RTS_ENQ | RING_F_SC_DEQ) != 0)
		goto fail;

	memset(ct->heads, 0xff, ct->heads_bytes); /* CT_NIL */
	/* free entries popped from the top in index order: the pool fills from its start */
	for (uint32_t i = 0; i < ct->capacity; i++)
		ct->free_stack[i] = ct->capacity - 1 - i;
	ct->n_free = ct->capacity;
	pthread_mutex_init(&ct->free_lock, NULL);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	for (uint32_t b = 0; b < n_buckets; b++) {
		pthread_mutex_init(&ct->buckets[b].lock, &ma);
		ct->buckets[b].exp_head = ct->buckets[b].exp_tail = ct->buckets[b].cursor = CT_NIL;
		ct->buckets[b].exp_len = 0;
		atomic_init(&ct->buckets[b].waiting, 0);
	}
	pthread_mutexattr_destroy(&ma);
	for (uint32_t z = 0; z < FERRY_CT_ZONES; z++)
		atomic_init(&ct->zone_limit[z], CT_LIMIT_UNSET);
	for (unsigned i = 0; i < FERRY_CT_N_TM; i++)
		ct->tp_ns[0][i] = (uint64_t)ferry_ct_default_timeouts[i] * NS_PER_SEC;
	ct->tp_used[0] = 1;
	pthread_mutex_init(&ct->tp_lock, NULL);
	pthread_mutex_init(&ct->stop_lock, NULL);
	pthread_cond_init(&ct->stop_cond, NULL);
	if (cfg->cleanup_thread) {
		if (pthread_create(&ct->thread, NULL, cleanup_main, ct) != 0)
			goto fail;
		pthread_setname_np(ct->thread, "ferry-ct-clean");
		ct->thread_started = true;
	}
	return ct;
fail:
	ferry_ct_destroy(ct);
	return NULL;
}

void ferry_ct_destroy(struct ferry_ct *ct)
{
	if (ct == NULL)
		return;
	if (ct->thread_started) {
		pthread_mutex_lock(&ct->stop_lock);
		ct->stop = true;
		pthread_cond_signal(&ct->stop_cond);
		pthread_mutex_unlock(&ct->stop_lock);
		pthread_join(ct->thread, NULL);
	}
	if (ct->conns)
		munmap(ct->conns, ct->conns_bytes);
	if (ct->heads)
		munmap(ct->heads, ct->heads_bytes);
	if (ct->free_stack)
		munmap(ct->free_stack, (size_t)ct->capacity * sizeof(uint32_t));
	ct_alg_fini(ct);
	free(ct->buckets);
	free(ct->zone_limit);
	free(ct->zone_count);
	free(ct->zone_tp);
	free(ct->tp_ns);
	free(ct->tp_used);
	free(ct->event_ring);
	free(ct);
}

/* ---- entries: per-thread caches over the shared free stack ---- */

void ferry_ct_thread_init(struct ferry_ct *ct, struct ferry_ct_thread *t)
{
	memset(t, 0, sizeof(*t));
	t->ct = ct;
	t->packets = &t->local[0];
	t->created = &t->local[1];
	t->limit_refused = &t->local[2];
	t->early_drops = &t->local[3];
	t->nat_created = &t->local[4];
	t->nat_exhausted = &t->local[5];
	t->exp_created = &t->local[6];
	t->exp_matched = &t->local[7];
	t->invalid = &t->local[8];
	t->held1 = t->held2 = CT_NIL;
}

void ferry_ct_thread_fini(struct ferry_ct_thread *t)
{
	struct ferry_ct *ct = t->ct;
	if (ct == NULL || t->n_free == 0)
		return;
	pthread_mutex_lock(&ct->free_lock);
	while (t->n_free)
		ct->free_stack[ct->n_free++] = t->free_idx[--t->n_free];
	pthread_mutex_unlock(&ct->free_lock);
}

/* A bucket lock another thread holds. A hold is short (a burst's packets of one
 * bucket, or CT_SWEEP_BUDGET entries of the sweep), so trying again for a while
 * costs less than sleeping. */
#define CT_LOCK_TRIES 4096u

void ct_bucket_lock_contended(struct ct_bucket *b)
{
	atomic_fetch_add_explicit(&b->waiting, 1, memory_order_relaxed);
	for (unsigned i = 0; i < CT_LOCK_TRIES; i++) {
		rte_pause();
		if (pthread_mutex_trylock(&b->lock) == 0)
			goto taken;
	}
	pthread_mutex_lock(&b->lock);
taken:
	atomic_fetch_sub_explicit(&b->waiting, 1, memory_order_relaxed);
}

static uint32_t entry_alloc(struct ferry_ct_thread *t)
{
	if (unlikely(t->n_free == 0)) {
		struct ferry_ct *ct = t->ct;
		pthread_mutex_lock(&ct->free_lock);
		while (t->n_free < FREE_BATCH && ct->n_free > 0)
			t->free_idx[t->n_free++] = ct->free_stack[--ct->n_free];
		pthread_mutex_unlock(&ct->free_lock);
		if (t->n_free == 0)
			return CT_NIL;
	}
	return t->free_idx[--t->n_free];
}

static void entry_free(struct ferry_ct_thread *t, uint32_t idx)
{
	if (unlikely(t->n_free == RTE_DIM(t->free_idx))) {
		struct ferry_ct *ct = t->ct;
		pthread_mutex_lock(&ct->free_lock);
		while (t->n_free > RTE_DIM(t->free_idx) - FREE_BATCH)
			ct->free_stack[ct->n_free++] = t->free_idx[--t->n_free];
		pthread_mutex_unlock(&ct->free_lock);
	}
	t->free_idx[t->n_free++] = idx;
}

/* ---- events ---- */

static void publish(struct ferry_ct *ct, uint16_t type, const struct ct_conn *c, uint8_t reason, uint64_t now)
{
	struct ct_event_rec r;
	r.type = type;
	ct_fill_entry(ct, c, now, &r.ev.entry);
	r.ev.reason = reason;
	memset(r.ev.pad0, 0, sizeof(r.ev.pad0));
	if (rte_ring_enqueue_elem(ct->event_ring, &r, sizeof(r)) != 0)
		atomic_fetch_add_explicit(&ct->events_dropped, 1, memory_order_relaxed);
}

bool ferry_ct_events_pop(struct ferry_ct *ct, uint16_t *type, struct ferry_ct_event *ev)
{
	struct ct_event_rec r;
	if (rte_ring_dequeue_elem(ct->event_ring, &r, sizeof(r)) != 0)
		return false;
	*type = r.type;
	*ev = r.ev;
	return true;
}

/* ---- the table, under a bucket lock ---- */

static void exp_unlink(struct ferry_ct *ct, struct ct_bucket *b, struct ct_conn *c, uint32_t idx)
{
	if (b->cursor == idx)
		b->cursor = c->exp_next;
	if (c->exp_prev != CT_NIL)
		ct->conns[c->exp_prev].exp_next = c->exp_next;
	else
		b->exp_head = c->exp_next;
	if (c->exp_next != CT_NIL)
		ct->conns[c->exp_next].exp_prev = c->exp_prev;
	else
		b->exp_tail = c->exp_prev;
	b->exp_len--;
}

bool ct_remove_locked(struct ferry_ct_thread *t, struct ct_conn *c, uint8_t reason, uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	uint32_t idx = (uint32_t)(c - ct->conns);
	struct ct_bucket *b = &ct->buckets[ct_bucket_of(ct, c->hash)];
	if (unlikely(c->flags & CONN_NAT) && !ct_nat_unlink(t, b, c)) {
		c->expiration = 0; /* gone for lookups; the sweep frees it */
		return false;
	}
	if (unlikely(c->flags & CONN_HAS_EXP))
		ct_exp_remove_parent(ct, c);
	/* before the unlinking stores (see commit_new) */
	atomic_fetch_sub_explicit(&ct->zone_count[c->key.zone], 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&ct->n_conns, 1, memory_order_relaxed);
	uint32_t *link = &ct->heads[c->hash & ct->slot_mask];
	while (*link != idx)
		link = &ct->conns[*link].next;
	*link = c->next;
	exp_unlink(ct, b, c, idx);
	if (atomic_load_explicit(&ct->events, memory_order_relaxed))
		publish(ct, FERRY_EVENT_TYPE_CT_DESTROY, c, reason, now);
	if (reason == FERRY_CT_DESTROY_REASON_EXPIRED)
		atomic_fetch_add_explicit(&ct->expired, 1, memory_order_relaxed);
	entry_free(t, idx);
	return true;
}

/* Takes back an entry commit_new just made, before anyone saw it (no event): its
 * translation could not be set up. */
static void discard_new(struct ferry_ct_thread *t, struct ct_bucket *b, struct ct_conn *c)
{
	struct ferry_ct *ct = t->ct;
	uint32_t idx = (uint32_t)(c - ct->conns);
	atomic_fetch_sub_explicit(&ct->zone_count[c->key.zone], 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&ct->n_conns, 1, memory_order_relaxed);
	ct->heads[c->hash & ct->slot_mask] = c->next; /* it went in at the head */
	exp_unlink(ct, b, c, idx);
	(*t->created)--;
	entry_free(t, idx);
}

/* Evicts an unreplied entry of this bucket (of zone when zone_only) to make room,
 * like netfilter's early drop. */
static bool early_drop(struct ferry_ct_thread *t, struct ct_bucket *b, bool zone_only, uint16_t zone, uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	uint32_t idx = b->exp_head;
	for (unsigned n = 0; idx != CT_NIL && n < CT_EARLY_DROP_SCAN; n++) {
		struct ct_conn *c = &ct->conns[idx];
		idx = c->exp_next;
		if (ct_expired(c, now)) {
			if ((!zone_only || c->key.zone == zone) &&
			    ct_remove_locked(t, c, FERRY_CT_DESTROY_REASON_EXPIRED, now))
				return true;
			continue;
		}
		if (!(c->flags & CONN_SEEN_REPLY) && (!zone_only || c->key.zone == zone) &&
		    ct_remove_locked(t, c, FERRY_CT_DESTROY_REASON_EVICTED, now)) {
			(*t->early_drops)++;
			return true;
		}
	}
	return false;
}

static uint32_t zone_limit_in_force(const struct ferry_ct *ct, uint16_t zone)
{
	uint32_t l = atomic_load_explicit(&ct->zone_limit[zone], memory_order_relaxed);
	return l == CT_LIMIT_UNSET ? atomic_load_explicit(&ct->default_zone_limit, memory_order_relaxed) : l;
}

/* A new entry for p, or NULL when a limit refuses it (counted). */
static struct ct_conn *commit_new(struct ferry_ct_thread *t, struct ct_bucket *b, const struct ct_pktctx *p,
				  uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	uint16_t zone = p->key.zone;
	if (atomic_load_explicit(&ct->n_conns, memory_order_relaxed) >=
	    atomic_load_explicit(&ct->max_conns, memory_order_relaxed)) {
		if (!early_drop(t, b, false, 0, now)) {
			(*t->limit_refused)++;
			return NULL;
		}
	}
	/* a zone's own limit of 0 blocks it; the default of 0 means none */
	uint32_t own = atomic_load_explicit(&ct->zone_limit[zone], memory_order_relaxed);
	uint32_t zl = zone_limit_in_force(ct, zone);
	if ((own == 0) ||
	    (zl != 0 && atomic_load_explicit(&ct->zone_count[zone], memory_order_relaxed) >= zl &&
	     !early_drop(t, b, true, zone, now))) {
		(*t->limit_refused)++;
		return NULL;
	}
	uint32_t idx = entry_alloc(t);
	if (idx == CT_NIL) {
		(*t->limit_refused)++;
		return NULL;
	}
	/* counted before the entry is written: a locked add waits for the stores before
	 * it, and those of a fresh entry miss the cache */
	atomic_fetch_add_explicit(&ct->zone_count[zone], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ct->n_conns, 1, memory_order_relaxed);
	struct ct_conn *c = &ct->conns[idx];
	memset(c, 0, sizeof(*c));
	c->key = p->key;
	c->hash = p->hash;
	c->orig_b = p->swapped;
	c->first_seen = now;
	l4_ops(p->key.proto)->new_conn(ct, c, p);
	c->expiration = now + ct_timeout_ns(ct, zone, c->tm);
	uint32_t *head = &ct->heads[p->hash & ct->slot_mask];
	c->next = *head;
	*head = idx;
	c->exp_prev = b->exp_tail;
	c->exp_next = CT_NIL;
	if (b->exp_tail != CT_NIL)
		ct->conns[b->exp_tail].exp_next = idx;
	else
		b->exp_head = idx;
	b->exp_tail = idx;
	b->exp_len++;
	(*t->created)++;
	return c;
}

static inline void set_mark_label(struct ct_conn *c, const struct ferry_ct_action *a)
{
	if (a->mark_mask)
		c->mark = (c->mark & ~a->mark_mask) | (a->mark & a->mark_mask);
	uint64_t m0, m1;
	memcpy(&m0, a->label_mask, 8);
	memcpy(&m1, a->label_mask + 8, 8);
	if (unlikely(m0 | m1)) {
		uint64_t m[2] = { m0, m1 }, v[2], l[2];
		memcpy(v, a->label, 16);
		memcpy(l, c->label, 16);
		l[0] = (l[0] & ~m[0]) | (v[0] & m[0]);
		l[1] = (l[1] & ~m[1]) | (v[1] & m[1]);
		memcpy(c->label, l, 16);
		c->flags |= CONN_LABELED;
	}
}

/* zone, proto, invalid_reason, tp_src and tp_dst are one word of a result, and
 * pa, pb, zone, proto (and l3) one of a key: a result is written in five stores */
_Static_assert(offsetof(struct ferry_ct_result, zone) == 8 && offsetof(struct ferry_ct_result, proto) == 10 &&
		       offsetof(struct ferry_ct_result, invalid_reason) == 11 &&
		       offsetof(struct ferry_ct_result, tp_src) == 12 && offsetof(struct ferry_ct_result, tp_dst) == 14,
	       "ferry_ct_result's second word");
_Static_assert(offsetof(struct ct_key, pa) == 32 && offsetof(struct ct_key, pb) == 34 &&
		       offsetof(struct ct_key, zone) == 36 && offsetof(struct ct_key, proto) == 38,
	       "ct_key's last word");

/* A result from the connection: state as given, its metadata and the
 * original-direction tuple (the key's addresses are zero-padded, so IPv4 copies
 * whole words too). r is written only: restrict lets the entry's fields be read
 * once, not again after each store. */
static inline void result_of_conn(const struct ct_conn *c, uint32_t state, struct ferry_ct_result *restrict r)
{
	const struct ct_key *k = &c->key;
	bool ob = c->orig_b;
	uint64_t w4;
	memcpy(&w4, &k->pa, 8);
	/* ports in the original direction: pb first when the originator is b */
	uint32_t ports = (uint32_t)w4;
	if (ob)
		ports = ports >> 16 | ports << 16;
	if (unlikely(k->proto == IPPROTO_ICMP_ || k->proto == IPPROTO_ICMPV6_))
		/* OVS's ct_tp_src/dst of ICMP: the original type and code */
		ports = (uint32_t)c->icmp_type | (uint32_t)c->icmp_code << 16;
	/* zone and proto, invalid_reason 0, the ports */
	uint64_t w1 = ((w4 >> 32) & 0xffffff) | (uint64_t)ports << 32;
	uint64_t w0 = state | (uint64_t)c->mark << 32;
	memcpy(r, &w0, 8);
	memcpy(&r->zone, &w1, 8);
	if (unlikely(c->flags & CONN_LABELED))
		memcpy(r->label, c->label, 16);
	else
		memset(r->label, 0, 16);
	memcpy(r->nw_src, ob ? k->b : k->a, 16);
	memcpy(r->nw_dst, ob ? k->a : k->b, 16);
}

/* a packet's own tuple: the key, turned round when the packet goes from b to a */
static inline void result_from_packet(const struct ct_pktctx *p, struct ferry_ct_result *r)
{
	const struct ct_key *k = &p->key;
	r->mark = 0;
	memset(r->label, 0, 16);
	r->proto = k->proto;
	memcpy(r->nw_src, p->swapped ? k->b : k->a, 16);
	memcpy(r->nw_dst, p->swapped ? k->a : k->b, 16);
	r->tp_src = p->swapped ? k->pb : k->pa;
	r->tp_dst = p->swapped ? k->pa : k->pb;
	if (unlikely(k->proto == IPPROTO_ICMP_ || k->proto == IPPROTO_ICMPV6_)) {
		r->tp_src = p->icmp_type;
		r->tp_dst = p->icmp_code;
	}
}

static inline void result_invalid(struct ferry_ct_result *r, unsigned reason)
{
	memset(r, 0, sizeof(*r));
	r->state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_INV;
	r->invalid_reason = (uint8_t)reason;
}

static inline void count_packet(struct ct_conn *c, bool reply, const struct ct_pktctx *p, uint64_t now)
{
	c->packets[reply]++;
	c->bytes[reply] += p->bytes;
	c->last_seen = now;
	if (reply)
		c->flags |= CONN_SEEN_REPLY;
}

static inline bool is_icmp(uint8_t proto)
{
	return proto == IPPROTO_ICMP_ || proto == IPPROTO_ICMPV6_;
}

/* What the burst's packets share: the caller's output for rewrites, and where
 * packets that need another bucket lock go. */
struct nat_out {
	struct ferry_nat_rewrite *rw;  /* this packet's */
	uint64_t *mask;                /* the thread's nat_mask */
	uint64_t bit;                  /* this packet's bit in it (and in *later) */
	uint64_t *later;               /* the burst's packets to do again in lock order ... */
	uint32_t *later_bucket;        /* ... and, for this one, the bucket it waits for */
};

/* ct(nat): the packet of a translated connection is rewritten as the translation
 * says. Its state names the translation as this packet meets it, as OVS's datapaths
 * do: an SNAT connection's original packets are snat, its replies (their
 * destination turned back) dnat; the other way round for DNAT. reply_dir: the
 * packet goes the reply way (an ICMP error: the way opposite to its quote's). */
static __attribute__((noinline)) uint32_t nat_apply(const struct ferry_ct *ct, const struct ct_conn *c,
						    const struct ct_pktctx *p, bool via_rev, bool reply_dir,
						    const struct nat_out *o)
{
	ct_nat_rewrite_of(ct, c, p, via_rev, o->rw);
	if (o->rw->op)
		*o->mask |= o->bit;
	bool src = ct_nat_kind(ct, c) == CT_NAT_SRC;
	return src != reply_dir ? FERRY_CT_STATE_BIT_SNAT : FERRY_CT_STATE_BIT_DNAT;
}

static inline bool wants_nat(const struct ferry_ct_action *a, const struct ct_conn *c)
{
	return unlikely(a->flags & FERRY_CT_FLAG_NAT) && (c->flags & CONN_NAT);
}

/* The paths a burst rarely takes: an ICMP error (c: the connection it is about, or
 * NULL), or a packet that may open a connection, in place of c when c is given (a
 * forced commit the other way, or a connection its protocol says is over). b is the
 * bucket of p's key. */
static __attribute__((noinline)) void process_slow(struct ferry_ct_thread *t, struct ct_bucket *b,
						   const struct ct_pktctx *p, struct ct_conn *c, bool via_rev,
						   const struct ferry_ct_action *a, uint64_t now,
						   struct ferry_ct_result *r, const struct nat_out *o)
{
	struct ferry_ct *ct = t->ct;
	if (p->related) {
		/* an ICMP error about a connection: rel, never an entry of its own */
		if (c == NULL) {
			ct_count_invalid(t, FERRY_CT_INVALID_REASON_NO_CONN);
			result_invalid(r, FERRY_CT_INVALID_REASON_NO_CONN);
			r->zone = p->key.zone;
			return;
		}
		/* the quoted packet went the reply way: as O turned round, or (found by the
		 * reply node) as T turned round */
		bool quoted_reply = via_rev ? p->swapped == ct->nat[c - ct->conns].r_swapped : p->swapped != c->orig_b;
		uint32_t state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_REL |
				 (quoted_reply ? 0 : FERRY_CT_STATE_BIT_RPL) |
				 ((c->flags & CONN_SEEN_REPLY) ? FERRY_CT_STATE_BIT_SRPL : 0);
		/* counted in its direction, but an error is not a reply: srpl stays as it was */
		c->packets[!quoted_reply]++;
		c->bytes[!quoted_reply] += p->bytes;
		c->last_seen = now;
		if (wants_nat(a, c))
			state |= nat_apply(ct, c, p, via_rev, !quoted_reply, o);
		result_of_conn(c, state, r);
		return;
	}
	/* the old connection is over */
	if (c != NULL)
		ct_remove_locked(t, c, FERRY_CT_DESTROY_REASON_REPLACED, now);
	if (!l4_ops(p->key.proto)->valid_new(t, p)) {
		result_invalid(r, t->last_invalid);
		r->zone = p->key.zone;
		return;
	}
	/* a connection an ALG expects: related from its first packet, and for good once
	 * committed, with the parent's mark and label (which it cannot change) */
	struct ct_exp_match em;
	bool commit = (a->flags & FERRY_CT_FLAG_COMMIT) != 0;
	bool expected = unlikely(atomic_load_explicit(&ct->n_exp, memory_order_relaxed) != 0) &&
			ct_exp_match(ct, p, now, false, &em);
	if (commit && (c = commit_new(t, b, p, now)) != NULL) {
		uint32_t nat_state = 0;
		/* the translation: the action's, or for a connection an ALG of a NATed
		 * parent expects, the one the expectation carries (as OVS) */
		const struct ferry_ct_action *na = a;
		struct ferry_ct_action exp_nat;
		if (unlikely(expected && em.nat_kind && (a->flags & FERRY_CT_FLAG_NAT))) {
			memset(&exp_nat, 0, sizeof(exp_nat));
			exp_nat.flags = FERRY_CT_FLAG_NAT |
					(em.nat_kind == CT_NAT_SRC ? FERRY_CT_FLAG_NAT_SRC : FERRY_CT_FLAG_NAT_DST);
			memcpy(exp_nat.nat_addr_min, em.nat_addr, 16);
			exp_nat.nat_is_ipv6 = p->key.l3 == 6;
			exp_nat.nat_port_min = exp_nat.nat_port_max = em.nat_port;
			na = &exp_nat;
		}
		if (unlikely(na->flags & (FERRY_CT_FLAG_NAT_SRC | FERRY_CT_FLAG_NAT_DST))) {
			uint32_t busy;
			int rc = ct_nat_setup(t, b, c, na, now, &busy);
			if (rc != CT_NAT_SETUP_OK) {
				discard_new(t, b, c);
				if (rc == CT_NAT_SETUP_BUSY) {
					/* done again with that bucket taken in order */
					*o->later |= o->bit;
					*o->later_bucket = busy;
					return;
				}
				/* OVS: no tuple, no entry; the packet goes on untranslated */
				goto untracked_new;
			}
			if (a->flags & FERRY_CT_FLAG_NAT)
				nat_state = nat_apply(ct, c, p, false, false, o);
		}
		count_packet(c, false, p, now);
		if (unlikely(expected)) {
			/* committed: the expectation is used up */
			struct ct_exp_match used;
			ct_exp_match(ct, p, now, true, &used);
			c->flags |= CONN_RELATED;
			c->mark = em.mark;
			if (em.labeled) {
				memcpy(c->label, em.label, 16);
				c->flags |= CONN_LABELED;
			}
			(*t->exp_matched)++;
			nat_state |= FERRY_CT_STATE_BIT_REL;
		} else {
			set_mark_label(c, a);
		}
		if (unlikely(a->alg != FERRY_CT_ALG_NONE))
			ct_alg_commit(t, c, a->alg, now);
		/* after the commit's mark and label: the event carries what was committed */
		if (atomic_load_explicit(&ct->events, memory_order_relaxed))
			publish(ct, FERRY_EVENT_TYPE_CT_NEW, c, 0, now);
		result_of_conn(c, FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW | nat_state, r);
		return;
	}
untracked_new:
	r->state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW | (expected ? FERRY_CT_STATE_BIT_REL : 0);
	r->zone = p->key.zone;
	r->invalid_reason = 0;
	result_from_packet(p, r);
}

/* What the burst path reads of the table, read once per burst: these never change
 * after ferry_ct_create, but the compiler must assume any byte stored into an entry
 * may have changed them, and would load them again for every packet. */
struct burst_env {
	struct ferry_ct_thread *t;
	const uint32_t *heads;
	struct ct_conn *conns;
	const struct ct_nat *nat;
	uint32_t capacity;                /* conns[capacity + i]: entry i's reply node */
	uint32_t slot_mask;
	const _Atomic uint16_t *zone_tp;
	const uint64_t (*tp_ns)[FERRY_CT_N_TM];
	uint64_t now;
	const struct ferry_ct_pkt *pkts; /* what an ALG reads */
	uint64_t *later;                 /* bit i: packet i waits for an entry's bucket ... */
	uint32_t *later_bucket;          /* ... [i], which the lock order forbade waiting for */
};

/* packet i's NAT outputs (built on the paths that need them only) */
#define NAT_OUT(e, i) (&(const struct nat_out){ .rw = &(e)->t->rw[i], .mask = &(e)->t->nat_mask, .bit = 1ull << (i), \
						     .later = (e)->later, .later_bucket = &(e)->later_bucket[i] })

/* What a connection with NAT, an ALG or a parent adds to a packet's result */
static __attribute__((noinline)) uint32_t conn_extras(const struct burst_env *e, struct ct_conn *c,
						      const struct ct_pktctx *p, bool via_rev, bool reply,
						      const struct ferry_ct_action *a, uint32_t state, unsigned i)
{
	struct ferry_ct_thread *t = e->t;
	if (c->flags & CONN_RELATED)
		state |= FERRY_CT_STATE_BIT_REL;
	struct ferry_nat_tcp_edit *ed = &t->edit[i];
	ed->pl_old = ed->pl_new = 0;
	/* a translated connection's announcements are read only when this packet is
	 * translated too (ct(nat)): an edit must not shift a stream that goes out raw */
	if ((c->flags & CONN_ALG) && (!(c->flags & CONN_NAT) || wants_nat(a, c)))
		ct_alg_inspect(t, c, p, reply, &e->pkts[i], e->now, ed);
	if (wants_nat(a, c)) {
		state |= nat_apply(t->ct, c, p, via_rev, reply, NAT_OUT(e, i));
		/* the stream's shift, and this segment's edit, go with the translation */
		if ((c->flags & CONN_SEQADJ) && (t->nat_mask & (1ull << i))) {
			/* only a packet that crosses the translation here: one that has crossed
			 * already (a second ct(nat) in the zone) has its shift */
			ct_seqadj_of(t->ct, c, reply, p->tcp_seq, p->tcp_ack, &ed->seq_add, &ed->ack_add);
			t->edit_mask |= 1ull << i;
		}
	}
	return state;
}

/* The TCP machine sees each side's numbers as that side sent them: after an ALG's
 * payload edit, acks (which count the other side's bytes as they arrived, shifted)
 * are shifted back first */
static __attribute__((noinline)) enum ct_update tcp_update_seqadj(struct ferry_ct_thread *t, struct ct_conn *c,
								  const struct ct_pktctx *p, bool reply,
								  bool via_rev, bool *refresh)
{
	/* a segment as its sender sent it is O or T turned round; seen past the
	 * translation (T, O turned round) its numbers are already the receiver's */
	const struct ct_nat *n = &t->ct->nat[c - t->ct->conns];
	bool as_sent = via_rev ? p->swapped == n->r_swapped : p->swapped == c->orig_b;
	if (!as_sent)
		return l4_ops(p->key.proto)->update(t, c, p, reply, refresh);
	struct ct_pktctx q = *p;
	int32_t seq_add, ack_add;
	ct_seqadj_of(t->ct, c, reply, p->tcp_seq, p->tcp_ack, &seq_add, &ack_add);
	q.tcp_ack = p->tcp_ack + (uint32_t)ack_add;
	return l4_ops(p->key.proto)->update(t, c, &q, reply, refresh);
}

static inline enum ct_update tcp_update(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p,
					bool reply, bool via_rev, bool *refresh)
{
	if (likely(!(c->flags & CONN_SEQADJ)))
		return l4_ops(p->key.proto)->update(t, c, p, reply, refresh);
	return tcp_update_seqadj(t, c, p, reply, via_rev, refresh);
}

/* process_one's outcomes */
/* a packet left for later: its entry's bucket could not be taken in order */
static inline void leave_for_later(const struct burst_env *e, unsigned i, uint32_t bucket)
{
	*e->later |= 1ull << i;
	e->later_bucket[i] = bucket;
}

/* A packet of a live entry c (found by its reply node when via_rev), its key's
 * bucket b held (and c's, when that is another). */
static __attribute__((always_inline)) inline void process_found(const struct burst_env *e, struct ct_bucket *b,
								const struct ct_pktctx *p, struct ct_conn *c,
								bool via_rev, const struct ferry_ct_action *a,
								struct ferry_ct_result *restrict r, unsigned i)
{
	struct ferry_ct_thread *t = e->t;
	const uint64_t now = e->now;
	bool reply = via_rev ? p->swapped == e->nat[c - e->conns].r_swapped : p->swapped != c->orig_b;
	uint16_t flags = a->flags;
	if (unlikely((flags & FERRY_CT_FLAG_FORCE) && (flags & FERRY_CT_FLAG_COMMIT) && reply)) {
		/* force: the connection was committed the other way; start it anew */
		process_slow(t, b, p, c, via_rev, a, now, r, NAT_OUT(e, i));
		return;
	}
	/* UDP and the other protocols without a machine of their own need no call */
	uint8_t proto = p->key.proto;
	bool refresh = true;
	enum ct_update u;
	if (likely(proto != IPPROTO_TCP_ && !is_icmp(proto)))
		u = ct_other_update(c, reply);
	else
		u = tcp_update(t, c, p, reply, via_rev, &refresh);
	if (unlikely(u != CT_UPDATE_VALID && u != CT_UPDATE_VALID_NEW)) {
		if (u == CT_UPDATE_NEW) {
			process_slow(t, b, p, c, via_rev, a, now, r, NAT_OUT(e, i));
			return;
		}
		/* inv never deletes the entry */
		result_invalid(r, t->last_invalid);
		r->zone = p->key.zone;
		return;
	}
	if (refresh) {
		/* ct_timeout_ns, from the burst's copies of the pointers */
		uint16_t tp = atomic_load_explicit(&e->zone_tp[c->key.zone], memory_order_relaxed);
		c->expiration = now + e->tp_ns[tp][c->tm];
	}
	count_packet(c, reply, p, now);
	if (flags & FERRY_CT_FLAG_COMMIT)
		set_mark_label(c, a);
	uint32_t state = FERRY_CT_STATE_BIT_TRK |
			 (u == CT_UPDATE_VALID ? FERRY_CT_STATE_BIT_EST | (reply ? FERRY_CT_STATE_BIT_RPL : 0)
					       : FERRY_CT_STATE_BIT_NEW) |
			 ((c->flags & CONN_SEEN_REPLY) ? FERRY_CT_STATE_BIT_SRPL : 0);
	if (unlikely(c->flags & CONN_EXTRAS))
		state = conn_extras(e, c, p, via_rev, reply, a, state, i);
	result_of_conn(c, state, r);
}

/* A packet that met a translated entry's reply node in bucket bi: the entry's own
 * bucket is taken too, waiting for it only when the lock order allows (ct_nat.c). */
static __attribute__((noinline)) void process_rev(const struct burst_env *e, struct ct_bucket *b, uint32_t bi,
						  const struct ct_pktctx *p, struct ct_conn *node,
						  const struct ferry_ct_action *a, struct ferry_ct_result *r, unsigned i)
{
	struct ferry_ct_thread *t = e->t;
	struct ct_conn *c = &e->conns[(uint32_t)(node - e->conns) - e->capacity];
	if (unlikely(ct_expired(c, e->now))) {
dead:
		/* the entry is dead, its node not yet unlinked: another node further on
		 * may hold the key (a live entry's own) */
		c = NULL;
		for (uint32_t idx = node->next; idx != CT_NIL; idx = e->conns[idx].next) {
			struct ct_conn *x = &e->conns[idx];
			if (x->hash != p->hash || !ct_key_eq(&x->key, &p->key))
				continue;
			struct ct_conn *owner = idx >= e->capacity ? &e->conns[idx - e->capacity] : x;
			if (ct_expired(owner, e->now))
				continue;
			if (owner != x) {
				process_rev(e, b, bi, p, x, a, r, i);
				return;
			}
			c = x;
			break;
		}
		if (c == NULL || p->related)
			process_slow(t, b, p, c, false, a, e->now, r, NAT_OUT(e, i));
		else
			process_found(e, b, p, c, false, a, r, i);
		return;
	}
	uint32_t home = ct_bucket_of(t->ct, c->hash);
	if (t->held2 != CT_NIL && home != bi && home != t->held2) {
		/* done again for a changed entry: not a third lock, a new round */
		leave_for_later(e, i, home);
		return;
	}
	int second = ct_lock_second(t, bi, home);
	if (second == 0) {
		leave_for_later(e, i, home);
		return;
	}
	if (second == 2)
		t->held2 = home;
	if (unlikely(ct_expired(c, e->now))) {
		/* killed while its bucket was awaited (a flush or a replacement that could
		 * not unlink it): dead, not to be revived */
		if (second == 2) {
			pthread_mutex_unlock(&t->ct->buckets[home].lock);
			t->held2 = CT_NIL;
		}
		goto dead;
	}
	if (p->related)
		process_slow(t, b, p, c, true, a, e->now, r, NAT_OUT(e, i));
	else
		process_found(e, b, p, c, true, a, r, i);
	if (second == 2) {
		pthread_mutex_unlock(&t->ct->buckets[home].lock);
		t->held2 = CT_NIL;
	}
}

/* One packet under the lock of its key's bucket (index bi). The common case, a
 * packet of a live entry that its protocol accepts, is done here; the rest in
 * process_slow, and replies found by a translated entry's reply node in
 * process_rev. */
static __attribute__((always_inline)) inline void process_one(const struct burst_env *e, struct ct_bucket *b,
								  uint32_t bi, const struct ct_pktctx *p,
								  const struct ferry_ct_action *a,
								  struct ferry_ct_result *restrict r, unsigned i)
{
	struct ferry_ct_thread *t = e->t;
	const uint64_t now = e->now;
	/* the live entry with p's key; expired entries met on the way are removed */
	struct ct_conn *c = NULL;
	for (uint32_t idx = e->heads[p->hash & e->slot_mask]; idx != CT_NIL;) {
		struct ct_conn *x = &e->conns[idx];
		idx = x->next;
		if (likely(x->hash == p->hash && ct_key_eq(&x->key, &p->key) && !ct_expired(x, now))) {
			c = x;
			break;
		}
		if (unlikely(ct_expired(x, now)))
			ct_remove_locked(t, x, FERRY_CT_DESTROY_REASON_EXPIRED, now);
	}
	/* a reply node (it never expires itself): the packet is its entry's */
	if (unlikely((const void *)c >= (const void *)e->nat)) {
		process_rev(e, b, bi, p, c, a, r, i);
		return;
	}
	if (unlikely(c == NULL || p->related))
		process_slow(t, b, p, c, false, a, now, r, NAT_OUT(e, i));
	else
		process_found(e, b, p, c, false, a, r, i);
}

/* A packet process_one left for later: both buckets are taken in index order (no
 * lock is held here), and it runs again. The entry it meets may have changed
 * meanwhile and live in yet another bucket: then again with that one. */
#define LATER_ROUNDS 16u

static __attribute__((noinline)) void process_later(const struct burst_env *e, uint32_t bi, uint32_t other,
						    const struct ct_pktctx *p, const struct ferry_ct_action *a,
						    struct ferry_ct_result *r, unsigned i)
{
	struct ferry_ct_thread *t = e->t;
	struct ferry_ct *ct = t->ct;
	for (unsigned round = 0; round < LATER_ROUNDS; round++) {
		uint32_t lo = bi < other ? bi : other, hi = bi < other ? other : bi;
		ct_bucket_lock(&ct->buckets[lo]);
		if (hi != lo)
			ct_bucket_lock(&ct->buckets[hi]);
		t->held1 = bi;
		t->held2 = other;
		*e->later &= ~(1ull << i);
		process_one(e, &ct->buckets[bi], bi, p, a, r, i);
		t->held1 = t->held2 = CT_NIL;
		if (hi != lo)
			pthread_mutex_unlock(&ct->buckets[hi].lock);
		pthread_mutex_unlock(&ct->buckets[lo].lock);
		if (!(*e->later & (1ull << i)))
			return;
		other = e->later_bucket[i];
	}
	/* the table changed under it round after round: it meets no entry this time */
	result_from_packet(p, r);
	r->state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_NEW;
	r->zone = p->key.zone;
	r->invalid_reason = 0;
}

/* The packets of 'group' (all in bucket bi) under its lock, in burst order. */
static __attribute__((always_inline)) inline void lock_group(const struct burst_env *e, uint32_t bi, uint64_t group,
							     const struct ct_pktctx *ctx,
							     const struct ferry_ct_action *const *act,
							     struct ferry_ct_result *res)
{
	struct ferry_ct_thread *t = e->t;
	struct ct_bucket *b = &t->ct->buckets[bi];
	ct_bucket_lock(b);
	t->held1 = bi;
	for (; group; group &= group - 1) {
		unsigned i = (unsigned)__builtin_ctzll(group);
		process_one(e, b, bi, &ctx[i], act[i], &res[i], i);
	}
	t->held1 = CT_NIL;
	pthread_mutex_unlock(&b->lock);
}

/* A burst spread over buckets: its packets are grouped by bucket in one pass, through
 * a direct-mapped table of BURST_GROUPS groups indexed by the bucket's low bits (a
 * scan of the burst per bucket cost a hundred instructions a packet at 32 buckets a
 * burst). A packet whose group holds another bucket waits for the next round, with
 * every later packet of its bucket (they meet the same group), so a bucket's packets
 * stay in burst order. Returns the packets left for that round. */
#define BURST_GROUPS 64u

static __attribute__((noinline)) uint64_t lock_groups(const struct burst_env *e, const uint32_t *bkt, uint64_t todo,
						      const struct ct_pktctx *ctx,
						      const struct ferry_ct_action *const *act,
						      struct ferry_ct_result *res)
{
	uint64_t members[BURST_GROUPS];
	uint32_t group_bkt[BURST_GROUPS];
	uint64_t used = 0, leaders = 0, left = 0;
	for (uint64_t m = todo; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		uint32_t bi = bkt[i];
		unsigned g = bi & (BURST_GROUPS - 1);
		if (!(used & (1ull << g))) {
			used |= 1ull << g;
			members[g] = 1ull << i;
			group_bkt[g] = bi;
			leaders |= 1ull << i;
		} else if (group_bkt[g] == bi) {
			members[g] |= 1ull << i;
		} else {
			left |= 1ull << i;
		}
	}
	for (uint64_t m = leaders; m; m &= m - 1) {
		unsigned g = bkt[__builtin_ctzll(m)] & (BURST_GROUPS - 1);
		lock_group(e, group_bkt[g], members[g], ctx, act, res);
	}
	return left;
}

void ferry_ct_execute(struct ferry_ct_thread *t, struct ferry_ct_pkt *pkts, const struct ferry_ct_action *const *act,
		      unsigned n, uint64_t now, struct ferry_ct_result *res)
{
	struct ferry_ct *ct = t->ct;
	struct ct_pktctx ctx[FERRY_CT_BURST_MAX];
	uint32_t bkt[FERRY_CT_BURST_MAX];
	if (n > FERRY_CT_BURST_MAX)
		n = FERRY_CT_BURST_MAX;
	*t->packets += n;
	t->nat_mask = 0;
	t->edit_mask = 0;

	/* 1. keys and hashes of the whole burst; the slots they fall in are fetched */
	uint64_t todo = ct_extract_burst(ct, pkts, act, n, ctx);
	uint64_t all = n == 64 ? UINT64_MAX : (1ull << n) - 1;
	for (uint64_t m = ~todo & all; unlikely(m); m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		unsigned why = ctx[i].invalid - 1u;
		ct_count_invalid(t, why);
		result_invalid(&res[i], why);
		res[i].zone = act[i]->zone;
	}
	uint64_t later = 0;
	uint32_t later_bucket[FERRY_CT_BURST_MAX];
	const struct burst_env e = {
		.t = t, .heads = ct->heads, .conns = ct->conns, .nat = ct->nat, .capacity = ct->capacity, .slot_mask = ct->slot_mask,
		.zone_tp = ct->zone_tp, .tp_ns = (const uint64_t (*)[FERRY_CT_N_TM])ct->tp_ns, .now = now,
		.pkts = pkts, .later = &later, .later_bucket = later_bucket,
	};
	/* 2. the first entry of every chain */
	const uint32_t bucket_mask = ct->bucket_mask;
	uint32_t differ = 0; /* bits where some packet's bucket differs from the first's */
	const uint32_t first_bkt = todo ? ctx[__builtin_ctzll(todo)].hash & e.slot_mask & bucket_mask : 0;
	for (uint64_t m = todo; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		uint32_t slot = ctx[i].hash & e.slot_mask;
		uint32_t head = e.heads[slot];
		bkt[i] = slot & bucket_mask;
		differ |= bkt[i] ^ first_bkt;
		if (head != CT_NIL) {
			/* the key's line, and the line the packet's update writes, asked
			 * for to be written (a reply node's entry is fetched when met: the
			 * direct path stays lean) */
			rte_prefetch0(&e.conns[head]);
			__builtin_prefetch(&e.conns[head].peer, 1, 3); /* rte_prefetch0_write is experimental in 22.11 */
		}
	}
	/* 3. each bucket's lock once, for all the burst's packets in it, in burst order */
	if (likely(differ == 0)) {
		if (todo)
			lock_group(&e, first_bkt, todo, ctx, act, res);
	} else {
		while (todo)
			todo = lock_groups(&e, bkt, todo, ctx, act, res);
	}
	/* 4. replies of translated connections whose entry's bucket was not free in order */
	for (uint64_t m = later; unlikely(m); m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		process_later(&e, bkt[i], later_bucket[i], &ctx[i], act[i], &res[i], i);
	}
}

/* ---- limits, timeout policies, options ---- */

int ferry_ct_set_limit(struct ferry_ct *ct, const struct ferry_ct_limit_req *req)
{
	switch (req->target) {
	case FERRY_CT_LIMIT_TARGET_GLOBAL: {
		uint32_t l = req->limit == 0 || req->limit > ct->capacity ? ct->capacity : req->limit;
		atomic_store(&ct->max_conns, l);
		return 0;
	}
	case FERRY_CT_LIMIT_TARGET_DEFAULT_ZONE:
		atomic_store(&ct->default_zone_limit, req->clear ? 0 : req->limit);
		return 0;
	case FERRY_CT_LIMIT_TARGET_ZONE:
		atomic_store(&ct->zone_limit[req->zone], req->clear ? CT_LIMIT_UNSET : req->limit);
		return 0;
	default:
		return -1;
	}
}

uint32_t ferry_ct_zone_limit(const struct ferry_ct *ct, uint16_t zone)
{
	return zone_limit_in_force(ct, zone);
}

uint32_t ferry_ct_zone_count(const struct ferry_ct *ct, uint16_t zone)
{
	return atomic_load(&ct->zone_count[zone]);
}

uint64_t ferry_ct_count(const struct ferry_ct *ct)
{
	return atomic_load(&ct->n_conns);
}

uint32_t ferry_ct_max_conns(const struct ferry_ct *ct)
{
	return atomic_load(&ct->max_conns);
}

int ferry_ct_set_timeout_policy(struct ferry_ct *ct, const struct ferry_ct_timeout_policy_req *req)
{
	int rc = 0;
	pthread_mutex_lock(&ct->tp_lock);
	uint16_t cur = atomic_load(&ct->zone_tp[req->zone]);
	if (req->clear) {
		atomic_store(&ct->zone_tp[req->zone], 0);
		if (cur != 0)
			ct->tp_used[cur] = 0; /* lookups may still read it once: the values stay sane */
		goto out;
	}
	uint16_t p = cur;
	if (p == 0) {
		for (p = 1; p < CT_MAX_POLICIES && ct->tp_used[p]; p++)
			;
		if (p == CT_MAX_POLICIES) {
			rc = -1;
			goto out;
		}
		ct->tp_used[p] = 1;
	}
	for (unsigned i = 0; i < FERRY_CT_N_TM; i++) {
		uint32_t s = req->seconds[i] ? req->seconds[i] : ferry_ct_default_timeouts[i];
		__atomic_store_n(&ct->tp_ns[p][i], (uint64_t)s * NS_PER_SEC, __ATOMIC_RELAXED);
	}
	atomic_store(&ct->zone_tp[req->zone], p);
out:
	pthread_mutex_unlock(&ct->tp_lock);
	return rc;
}

uint32_t ferry_ct_timeout(const struct ferry_ct *ct, uint16_t zone, unsigned tm)
{
	return tm < FERRY_CT_N_TM ? (uint32_t)(ct_timeout_ns(ct, zone, tm) / NS_PER_SEC) : 0;
}

void ferry_ct_set_tcp_seq_check(struct ferry_ct *ct, bool on)
{
	atomic_store(&ct->tcp_seq_check, on);
}

void ferry_ct_set_events(struct ferry_ct *ct, bool on)
{
	atomic_store(&ct->events, on);
}

void ferry_ct_counters(const struct ferry_ct *ct, struct ferry_ct_counters *out)
{
	out->expired = atomic_load(&ct->expired);
	out->flushed = atomic_load(&ct->flushed);
	out->sweeps = atomic_load(&ct->sweeps);
	out->events_dropped = atomic_load(&ct->events_dropped);
	out->sweep_max_hold_ns = atomic_load(&ct->sweep_max_hold_ns);
	out->sweep_holds = atomic_load(&ct->sweep_holds);
	out->sweep_long_holds = atomic_load(&ct->sweep_long_holds);
	out->exp_expired = atomic_load(&ct->exp_expired);
}

size_t ferry_ct_state_str(uint32_t state, char *buf, size_t len)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ FERRY_CT_STATE_BIT_NEW, "new" }, { FERRY_CT_STATE_BIT_EST, "est" },
		{ FERRY_CT_STATE_BIT_REL, "rel" }, { FERRY_CT_STATE_BIT_RPL, "rpl" },
		{ FERRY_CT_STATE_BIT_INV, "inv" }, { FERRY_CT_STATE_BIT_TRK, "trk" },
		{ FERRY_CT_STATE_BIT_SNAT, "snat" }, { FERRY_CT_STATE_BIT_DNAT, "dnat" },
		{ FERRY_CT_STATE_BIT_SRPL, "srpl" },
	};
	size_t n = 0;
	if (len)
		buf[0] = 0;
	for (unsigned i = 0; i < RTE_DIM(names); i++) {
		if (!(state & names[i].bit))
			continue;
		int w = snprintf(buf + n, len > n ? len - n : 0, "%s%s", n ? "|" : "", names[i].name);
		if (w > 0)
			n += (size_t)w;
	}
	return n;
}

/* ---- the cleanup thread ---- */

static void *cleanup_main(void *arg)
{
	struct ferry_ct *ct = arg;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	pthread_mutex_lock(&ct->stop_lock);
	while (!ct->stop) {
		pthread_mutex_unlock(&ct->stop_lock);
		ferry_ct_sweep(&t, ct->clock(ct->clock_arg));
		pthread_mutex_lock(&ct->stop_lock);
		if (ct->stop)
			break;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)ct->sweep_interval_ms * 1000000ull;
		until.tv_sec += (time_t)(ns / NS_PER_SEC);
		until.tv_nsec = (long)(ns % NS_PER_SEC);
		pthread_cond_timedwait(&ct->stop_cond, &ct->stop_lock, &until);
	}
	pthread_mutex_unlock(&ct->stop_lock);
	ferry_ct_thread_fini(&t);
	return NULL;
}
