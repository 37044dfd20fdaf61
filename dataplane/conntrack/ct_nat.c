/* NAT in the tracker: choosing a translation at commit, the reply node that finds a
 * translated connection from its replies, and what each packet's rewrite is.
 *
 * A connection's original tuple O is its key. ct(commit, nat(src=...)) replaces
 * O's source endpoint (SNAT), nat(dst=...) its destination (DNAT), giving T. Packets
 * of the original direction arrive as O and leave as T; replies arrive as T turned
 * round and leave as O turned round. The reply key (T turned round, canonical) gets
 * a chain node of its own, so a reply's lookup finds the entry like any other.
 *
 * The reply node may fall in another lock bucket than the entry. Taking a second
 * bucket lock while holding one follows one rule, which keeps every wait-for cycle
 * out: wait only for a bucket with a higher index than all held; only try a lower
 * one, and treat a failed try as "not now" (another candidate tuple; an entry left
 * dead for the sweep; a packet done again with both locks taken in order). */
#include "ct_private.h"

#include <rte_log.h>
#include <rte_random.h>

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132

/* OVS's search: a bounded number of candidate tuples, never a scan of the range */
#define NAT_ADDR_FIRST_TRIES 16u   /* addresses tried with the original port first */
#define NAT_PORT_TRIES 128u        /* (address, port) candidates after those */
#define NAT_PORT_RUN 32u           /* consecutive ports from one start before a new start */
#define NAT_LOG_INTERVAL_NS 1000000000ull

/* OVS's default source ports when nat(src) gives no range, by the original port */
#define NAT_LOW_PORT_MAX 511u
#define NAT_RESERVED_MIN 600u
#define NAT_RESERVED_MAX 1023u
#define NAT_EPHEMERAL_MIN 1024u
#define NAT_EPHEMERAL_MAX 65535u

struct tuple {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
};

static inline bool is_icmp(uint8_t proto)
{
	return proto == IPPROTO_ICMP_ || proto == IPPROTO_ICMPV6_;
}

static void orig_tuple(const struct ct_conn *c, struct tuple *o)
{
	const struct ct_key *k = &c->key;
	memcpy(o->src, c->orig_b ? k->b : k->a, 16);
	memcpy(o->dst, c->orig_b ? k->a : k->b, 16);
	o->sport = c->orig_b ? k->pb : k->pa;
	o->dport = c->orig_b ? k->pa : k->pb;
}

/* T: O with the translated endpoint replaced */
static void xlat_tuple(const struct ct_nat *n, const struct tuple *o, struct tuple *t)
{
	*t = *o;
	if (n->kind == CT_NAT_SRC) {
		memcpy(t->src, n->addr, 16);
		t->sport = n->port;
	} else {
		memcpy(t->dst, n->addr, 16);
		t->dport = n->port;
	}
}

static void reverse(const struct tuple *in, struct tuple *out)
{
	memcpy(out->src, in->dst, 16);
	memcpy(out->dst, in->src, 16);
	out->sport = in->dport;
	out->dport = in->sport;
}

/* The canonical key of a tuple, as ct_extract.c's set_tuple builds it (the lower
 * (address, port) first; IPv4 zero-padded compares the same as its number). */
static void key_of(const struct tuple *tp, uint16_t zone, uint8_t proto, uint8_t l3, struct ct_key *k, bool *swapped)
{
	int cmp = memcmp(tp->src, tp->dst, 16);
	bool swap = cmp > 0 || (cmp == 0 && tp->sport > tp->dport);
	memcpy(k->a, swap ? tp->dst : tp->src, 16);
	memcpy(k->b, swap ? tp->src : tp->dst, 16);
	k->pa = swap ? tp->dport : tp->sport;
	k->pb = swap ? tp->sport : tp->dport;
	k->zone = zone;
	k->proto = proto;
	k->l3 = l3;
	*swapped = swap;
}

/* Is a live entry's key, or reply key, equal to k? (k's bucket held) */
static bool key_taken(const struct ferry_ct *ct, const struct ct_key *k, uint32_t hash, uint64_t now)
{
	for (uint32_t link = ct->heads[hash & ct->slot_mask]; link != CT_NIL; link = ct_link_next(ct, link)) {
		const struct ct_conn *x = &ct->conns[link];
		if (x->hash != hash || !ct_key_eq(&x->key, k))
			continue;
		/* a reply node is as live as its entry */
		const struct ct_conn *owner = ct_link_is_rev(ct, link) ? &ct->conns[link - ct->capacity] : x;
		if (!ct_expired(owner, now))
			return true;
	}
	return false;
}

int ct_lock_second(struct ferry_ct_thread *t, uint32_t held, uint32_t bi)
{
	if (bi == held || bi == t->held1 || bi == t->held2)
		return 1;
	uint32_t top = held;
	if (t->held1 != CT_NIL && t->held1 > top)
		top = t->held1;
	if (t->held2 != CT_NIL && t->held2 > top)
		top = t->held2;
	struct ct_bucket *b = &t->ct->buckets[bi];
	if (bi > top) {
		ct_bucket_lock(b);
		return 2;
	}
	return pthread_mutex_trylock(&b->lock) == 0 ? 2 : 0;
}

static inline void unlock_second(struct ferry_ct *ct, uint32_t bi, int how)
{
	if (how == 2)
		pthread_mutex_unlock(&ct->buckets[bi].lock);
}

/* ---- addresses as numbers: ranges of up to 2^32 addresses (OVS: a 32-bit span) ---- */

static unsigned __int128 addr_num(const uint8_t *a, unsigned alen)
{
	unsigned __int128 v = 0;
	for (unsigned i = 0; i < alen; i++)
		v = v << 8 | a[i];
	return v;
}

static void num_addr(unsigned __int128 v, unsigned alen, uint8_t *a)
{
	memset(a, 0, 16);
	for (unsigned i = alen; i-- > 0;) {
		a[i] = (uint8_t)v;
		v >>= 8;
	}
}

static bool all_zero(const uint8_t *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static inline uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	return x ^ (x >> 16);
}

/* Links n's reply node into its chain (the chain's bucket held). */
static void link_reply(struct ferry_ct *ct, uint32_t idx, struct ct_nat *n)
{
	uint32_t *head = &ct->heads[n->rhash & ct->slot_mask];
	n->rnext = *head;
	*head = ct->capacity + idx;
	n->never = UINT64_MAX;
	n->linked = 1;
}

/* Tries T = O with (addr, port) in place of the translated endpoint: true when it is
 * free and the reply node is linked. */
#define TRY_TAKEN 0
#define TRY_OK 1
#define TRY_BUSY 2 /* its bucket is below one held and was busy: not known */

static int try_tuple(struct ferry_ct_thread *t, uint32_t home, struct ct_conn *c, struct ct_nat *n,
		     const struct tuple *o, const uint8_t *addr, uint16_t port, uint64_t now, uint32_t *busy)
{
	struct ferry_ct *ct = t->ct;
	memcpy(n->addr, addr, 16);
	n->port = port;
	struct tuple tt, rt;
	xlat_tuple(n, o, &tt);
	if (memcmp(&tt, o, sizeof(tt)) == 0) {
		/* no change: nothing to link, and O is the entry's own key */
		n->linked = 0;
		return TRY_OK;
	}
	reverse(&tt, &rt);
	bool sw;
	key_of(&rt, c->key.zone, c->key.proto, c->key.l3, &n->rkey, &sw);
	n->r_swapped = sw;
	n->rhash = ct_key_hash(&n->rkey);
	uint32_t rb = ct_bucket_of(ct, n->rhash);
	int how = ct_lock_second(t, home, rb);
	if (how == 0) {
		*busy = rb;
		return TRY_BUSY;
	}
	bool ok = !key_taken(ct, &n->rkey, n->rhash, now);
	if (ok)
		link_reply(ct, (uint32_t)(c - ct->conns), n);
	unlock_second(ct, rb, how);
	return ok ? TRY_OK : TRY_TAKEN;
}

static void log_exhausted(struct ferry_ct *ct, const struct ct_conn *c, uint64_t now)
{
	uint64_t last = atomic_load_explicit(&ct->nat_log_ns, memory_order_relaxed);
	if (last != 0 && now - last < NAT_LOG_INTERVAL_NS)
		return;
	if (!atomic_compare_exchange_strong(&ct->nat_log_ns, &last, now ? now : 1))
		return;
	RTE_LOG(WARNING, USER1,
		"ferry-ct: nat tuple space exhausted (zone %u, proto %u): the connection is not committed and "
		"its packet goes on untranslated (counted in ct_nat_exhausted; at most one line a second)\n",
		c->key.zone, c->key.proto);
}

int ct_nat_setup(struct ferry_ct_thread *t, struct ct_bucket *b, struct ct_conn *c, const struct ferry_ct_action *a,
		 uint64_t now, uint32_t *busy_bucket)
{
	uint32_t busy = CT_NIL;
	struct ferry_ct *ct = t->ct;
	uint32_t idx = (uint32_t)(c - ct->conns);
	uint32_t home = (uint32_t)(b - ct->buckets);
	struct ct_nat *n = &ct->nat[idx];
	memset(n, 0, offsetof(struct ct_nat, spare));
	n->kind = (a->flags & FERRY_CT_FLAG_NAT_SRC) ? CT_NAT_SRC : CT_NAT_DST;
	bool src = n->kind == CT_NAT_SRC;
	unsigned alen = c->key.l3 == 4 ? 4 : 16;
	struct tuple o;
	orig_tuple(c, &o);
	const uint8_t *oaddr = src ? o.src : o.dst;
	uint16_t oport = src ? o.sport : o.dport;

	/* the address range: none keeps the address (OVS's all-zero SNAT: ports only) */
	unsigned __int128 amin, amax;
	if (all_zero(a->nat_addr_min, 16)) {
		amin = amax = addr_num(oaddr, alen);
	} else {
		if ((c->key.l3 == 6) != (a->nat_is_ipv6 != 0))
			goto exhausted; /* a v4 range for a v6 connection: nothing fits */
		amin = addr_num(a->nat_addr_min, alen);
		amax = all_zero(a->nat_addr_max, 16) ? amin : addr_num(a->nat_addr_max, alen);
		if (amax < amin)
			amax = amin;
	}
	unsigned __int128 span = amax - amin;
	uint64_t n_addr = span >= UINT32_MAX ? (uint64_t)UINT32_MAX + 1 : (uint64_t)span + 1;

	/* the port range: which field is a port depends on the protocol. ICMP echo keys
	 * put the id where a source port goes: SNAT may move it, DNAT has none. */
	uint8_t proto = c->key.proto;
	bool has_ports = proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ || proto == IPPROTO_SCTP_ ||
			 (is_icmp(proto) && src);
	uint32_t pmin, pmax;
	if (!has_ports) {
		pmin = pmax = oport;
	} else if (a->nat_port_min != 0) {
		pmin = a->nat_port_min;
		pmax = a->nat_port_max >= pmin ? a->nat_port_max : pmin;
	} else if (src && !is_icmp(proto)) {
		pmin = oport <= NAT_LOW_PORT_MAX ? 1 : oport <= NAT_RESERVED_MAX ? NAT_RESERVED_MIN : NAT_EPHEMERAL_MIN;
		pmax = oport <= NAT_LOW_PORT_MAX ? NAT_LOW_PORT_MAX
		       : oport <= NAT_RESERVED_MAX ? NAT_RESERVED_MAX : NAT_EPHEMERAL_MAX;
	} else if (src) {
		pmin = 0; /* an echo id may be anything */
		pmax = UINT16_MAX;
	} else {
		pmin = pmax = oport; /* DNAT without ports keeps the port */
	}
	uint32_t n_port = pmax - pmin + 1;

	/* where the search starts: random, by the client's address (persistent: the
	 * same client gets the same address), or by the whole tuple */
	uint32_t h = (a->flags & FERRY_CT_FLAG_NAT_RANDOM) ? (uint32_t)rte_rand() : c->hash;
	uint32_t ah = h;
	if (a->flags & FERRY_CT_FLAG_NAT_PERSISTENT) {
		ah = 0;
		for (unsigned i = 0; i < alen; i += 4) {
			uint32_t w;
			memcpy(&w, o.src + i, 4);
			ah = mix32(ah ^ w);
		}
	}
	uint64_t a0 = mix32(ah) % n_addr;
	uint8_t addr[16];

	/* 1. the original port with the first addresses */
	if (oport >= pmin && oport <= pmax) {
		uint64_t tries = n_addr < NAT_ADDR_FIRST_TRIES ? n_addr : NAT_ADDR_FIRST_TRIES;
		for (uint64_t i = 0; i < tries; i++) {
			num_addr(amin + (unsigned __int128)((a0 + i) % n_addr), alen, addr);
			if (try_tuple(t, home, c, n, &o, addr, oport, now, &busy) == TRY_OK)
				goto done;
		}
	}
	/* 2. runs of ports from scattered starts, moving to the next address each run
	 * (a range smaller than the tries is walked whole) */
	uint32_t run = n_port < NAT_PORT_RUN ? n_port : NAT_PORT_RUN;
	uint64_t tries = (uint64_t)n_port * n_addr;
	if (tries > NAT_PORT_TRIES)
		tries = NAT_PORT_TRIES;
	if (n_port > 1 || oport < pmin || oport > pmax) {
		uint32_t start = mix32(h ^ 0x5bd1e995u);
		for (uint32_t i = 0; i < tries; i++) {
			if (i % run == 0 && i)
				start = n_port <= NAT_PORT_RUN ? start
					: (a->flags & FERRY_CT_FLAG_NAT_RANDOM) ? (uint32_t)rte_rand() : mix32(start);
			uint64_t ai = (a0 + i / run) % n_addr;
			num_addr(amin + (unsigned __int128)ai, alen, addr);
			uint16_t port = (uint16_t)(pmin + (start + i % run) % n_port);
			if (try_tuple(t, home, c, n, &o, addr, port, now, &busy) == TRY_OK)
				goto done;
		}
	}
	if (busy != CT_NIL) {
		/* a candidate could not be checked without breaking the lock order:
		 * not exhausted, only not knowable now (done again in order) */
		*busy_bucket = busy;
		return CT_NAT_SETUP_BUSY;
	}
exhausted:
	(*t->nat_exhausted)++;
	log_exhausted(ct, c, now);
	return CT_NAT_SETUP_EXHAUSTED;
done:
	c->flags |= CONN_NAT;
	(*t->nat_created)++;
	return CT_NAT_SETUP_OK;
}

bool ct_nat_unlink(struct ferry_ct_thread *t, struct ct_bucket *b, struct ct_conn *c)
{
	struct ferry_ct *ct = t->ct;
	uint32_t idx = (uint32_t)(c - ct->conns);
	struct ct_nat *n = &ct->nat[idx];
	if (!(c->flags & CONN_NAT) || !n->linked)
		return true;
	uint32_t rb = ct_bucket_of(ct, n->rhash);
	int how = ct_lock_second(t, (uint32_t)(b - ct->buckets), rb);
	if (how == 0)
		return false;
	uint32_t *link = &ct->heads[n->rhash & ct->slot_mask];
	while (*link != ct->capacity + idx)
		link = &ct->conns[*link].next;
	*link = n->rnext;
	n->linked = 0;
	unlock_second(ct, rb, how);
	return true;
}

static void rw_set(struct ferry_nat_rewrite *rw, const struct ct_conn *c, uint8_t op, const struct tuple *tp)
{
	rw->op = op;
	rw->l3 = c->key.l3;
	rw->proto = c->key.proto;
	rw->pad = 0;
	memcpy(rw->src, tp->src, 16);
	memcpy(rw->dst, tp->dst, 16);
	rw->sport = tp->sport;
	rw->dport = tp->dport;
}

void ct_nat_rewrite_of(const struct ferry_ct *ct, const struct ct_conn *c, const struct ct_pktctx *p, bool via_rev,
		       struct ferry_nat_rewrite *rw)
{
	const struct ct_nat *n = &ct->nat[c - ct->conns];
	rw->op = 0;
	rw->l3 = c->key.l3;
	rw->proto = c->key.proto;
	if (!n->linked)
		return; /* the translation changed nothing */
	bool src = n->kind == CT_NAT_SRC;
	struct tuple o, tt, want;
	orig_tuple(c, &o);
	xlat_tuple(n, &o, &tt);
	/* Which side of the translation the packet (or an error's quoted packet) is on:
	 * it crosses when it is O (-> T) or T turned round (-> O turned round); as T or
	 * as O turned round it has crossed already. */
	bool as_o, as_rt;
	if (via_rev) {
		as_o = false;
		as_rt = p->swapped == n->r_swapped;
	} else {
		as_o = p->swapped == c->orig_b;
		as_rt = false;
	}
	if (!p->related) {
		if (as_o) {
			rw_set(rw, c, src ? FERRY_NAT_RW_SRC : FERRY_NAT_RW_DST, &tt);
		} else if (as_rt) {
			reverse(&o, &want);
			rw_set(rw, c, src ? FERRY_NAT_RW_DST : FERRY_NAT_RW_SRC, &want);
		}
		return;
	}
	/* An ICMP error heads back to its quoted packet's sender. Quoting T (made past
	 * the translation, about an original packet) it goes to O's side: the quote
	 * becomes O, and the outer header loses the translated address (SNAT: its
	 * destination; DNAT: its source, as OVS does). Quoting O turned round it goes
	 * the other way and gains it. */
	bool quoted_t = via_rev && !as_rt;
	bool quoted_ro = !via_rev && !as_o;
	if (quoted_t) {
		rw_set(rw, c, FERRY_NAT_RW_ICMP_ERROR | (src ? FERRY_NAT_RW_SRC : FERRY_NAT_RW_DST) |
				      (src ? FERRY_NAT_RW_OUTER_DST : FERRY_NAT_RW_OUTER_SRC), &o);
		memcpy(rw->outer, src ? o.src : o.dst, 16);
	} else if (quoted_ro) {
		reverse(&tt, &want);
		rw_set(rw, c, FERRY_NAT_RW_ICMP_ERROR | (src ? FERRY_NAT_RW_DST : FERRY_NAT_RW_SRC) |
				      (src ? FERRY_NAT_RW_OUTER_SRC : FERRY_NAT_RW_OUTER_DST), &want);
		memcpy(rw->outer, src ? tt.src : tt.dst, 16);
	}
}

void ct_nat_reply_tuple(const struct ferry_ct *ct, const struct ct_conn *c, uint8_t *src, uint8_t *dst,
			uint16_t *sport, uint16_t *dport)
{
	struct tuple o, tt, r;
	orig_tuple(c, &o);
	if (c->flags & CONN_NAT)
		xlat_tuple(&ct->nat[c - ct->conns], &o, &tt);
	else
		tt = o;
	reverse(&tt, &r);
	memcpy(src, r.src, 16);
	memcpy(dst, r.dst, 16);
	*sport = r.sport;
	*dport = r.dport;
}

uint8_t ct_nat_kind(const struct ferry_ct *ct, const struct ct_conn *c)
{
	return (c->flags & CONN_NAT) ? ct->nat[c - ct->conns].kind : 0;
}
