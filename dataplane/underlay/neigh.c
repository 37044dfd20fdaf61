/* The neighbour cache (neigh.h): open addressing with linear probing over a fixed
 * array, keyed by (port, ip).
 *
 * Readers (lookups on every worker, dump on the main lcore) take no lock: each slot
 * carries a sequence counter (stats/seqlock.h), and a reader copies the slot and
 * retries while the counter is odd or moved, so it never sees half a MAC or a MAC
 * with another slot's key. Every slot field is accessed with relaxed atomics inside
 * that protocol, which is what keeps it free of data races in the C11 sense.
 *
 * Writers (workers learning ARP or creating an INCOMPLETE entry on a miss, the main
 * lcore configuring and aging) take one spinlock; under it they are a single writer,
 * which is what the seqlock helper wants. Writes are rare, so one lock is enough.
 *
 * Deletes leave a tombstone rather than shifting entries back: an entry never moves
 * once placed, so a lock-free reader probing for a key that stays in the table
 * always finds it, and a dump walking the slots sees it exactly once. Tombstones are
 * swept (turned back into empty slots) after each delete wherever no live entry's
 * probe sequence crosses them, so probes stay short without moving anything. */
#include "neigh.h"

#include <errno.h>
#include <string.h>
#include <rte_common.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_random.h>
#include <rte_spinlock.h>

#include "../stats/seqlock.h"

_Static_assert((FERRY_NEIGH_SLOTS & (FERRY_NEIGH_SLOTS - 1)) == 0, "FERRY_NEIGH_SLOTS must be a power of two");
_Static_assert(FERRY_NEIGH_SLOTS <= UINT16_MAX, "a slot's home must fit its uint16_t");

#define NEIGH_SLOT_MASK (FERRY_NEIGH_SLOTS - 1)
#define NEIGH_NS_PER_S 1000000000ull
#define NEIGH_NS_PER_MS 1000000ull

enum neigh_state {
	NEIGH_EMPTY = 0,   /* never used, or swept: a probe stops here (zeroed memory is empty) */
	NEIGH_DELETED,     /* tombstone: a probe goes on past it, an insert may reuse it */
	NEIGH_INCOMPLETE,  /* asked, no answer yet */
	NEIGH_REACHABLE,   /* learned from ARP, or configured (is_static) */
	NEIGH_FAILED,      /* retries ran out */
};

struct neigh_slot {
	uint32_t seq;             /* odd while a writer changes the slot */
	uint8_t state;            /* enum neigh_state */
	uint8_t is_static;        /* configured: never aged, never replaced by ARP */
	uint16_t port;
	rte_be32_t ip;
	uint32_t n_requests;      /* requests sent since the entry was made or last confirmed */
	uint64_t mac;             /* the 6 bytes of the MAC, the rest zero: one load, one store */
	uint64_t confirmed_ns;    /* last learned from ARP */
	uint64_t last_request_ns; /* last time a lookup told its caller to send a request */
	uint64_t failed_ns;       /* when the entry became FAILED */
	uint16_t home;            /* the slot the key hashes to; writers only (the sweep) */
};

/* A reader's copy of a slot's fields, taken under its sequence counter. */
struct neigh_view {
	uint8_t state;
	bool is_static;
	uint16_t port;
	rte_be32_t ip;
	uint32_t n_requests;
	uint64_t mac;
	uint64_t confirmed_ns;
	uint64_t last_request_ns;
	uint64_t failed_ns;
};

struct ferry_neigh_table {
	rte_spinlock_t lock;        /* serializes every writer */
	uint32_t seed;              /* of the hash: random, so nobody on the underlay can aim at one chain */
	uint32_t retries;           /* options: set by the main lcore, read anywhere (relaxed atomics) */
	uint64_t timeout_ns;
	uint32_t n_live;            /* entries in a neighbour state; written under the lock */
	int32_t sweep[FERRY_NEIGH_SLOTS + 1]; /* the sweep's scratch, under the lock */
	struct neigh_slot slots[FERRY_NEIGH_SLOTS];
};

/* What a lookup must write before it can answer: it takes the lock only then. */
enum neigh_change {
	NEIGH_CHANGE_NONE,
	NEIGH_CHANGE_ASK,    /* record a request (the caller sends it) */
	NEIGH_CHANGE_FAIL,   /* INCOMPLETE -> FAILED: the last request went unanswered too */
	NEIGH_CHANGE_RETRY,  /* FAILED -> INCOMPLETE, and record a request */
};

#define RELAXED_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define RELAXED_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* Lcores turn TSC readings into nanoseconds each with its own base, so a time stored
 * by one may lie a little after another's now: that counts as no time at all, not as
 * an unsigned wrap to forever. */
static inline uint64_t elapsed_ns(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

static inline bool is_live(uint8_t state)
{
	return state >= NEIGH_INCOMPLETE;
}

static inline uint64_t mac_to_word(const struct rte_ether_addr *mac)
{
	uint64_t w = 0;
	memcpy(&w, mac->addr_bytes, RTE_ETHER_ADDR_LEN);
	return w;
}

static inline void word_to_mac(uint64_t w, struct rte_ether_addr *mac)
{
	memcpy(mac->addr_bytes, &w, RTE_ETHER_ADDR_LEN);
}

static inline uint32_t neigh_home(const struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip)
{
	return rte_jhash_2words(ip, port, t->seed) & NEIGH_SLOT_MASK;
}

static void slot_read(const struct neigh_slot *s, struct neigh_view *v)
{
	uint32_t seq;
	do {
		seq = ferry_seq_read_begin(&s->seq);
		v->state = RELAXED_LOAD(s->state);
		v->is_static = RELAXED_LOAD(s->is_static) != 0;
		v->port = RELAXED_LOAD(s->port);
		v->ip = RELAXED_LOAD(s->ip);
		v->n_requests = RELAXED_LOAD(s->n_requests);
		v->mac = RELAXED_LOAD(s->mac);
		v->confirmed_ns = RELAXED_LOAD(s->confirmed_ns);
		v->last_request_ns = RELAXED_LOAD(s->last_request_ns);
		v->failed_ns = RELAXED_LOAD(s->failed_ns);
	} while (ferry_seq_read_retry(&s->seq, seq));
}

/* Under the lock. */
static void slot_write(struct neigh_slot *s, const struct neigh_view *v)
{
	ferry_seq_write_begin(&s->seq);
	RELAXED_STORE(s->state, v->state);
	RELAXED_STORE(s->is_static, (uint8_t)v->is_static);
	RELAXED_STORE(s->port, v->port);
	RELAXED_STORE(s->ip, v->ip);
	RELAXED_STORE(s->n_requests, v->n_requests);
	RELAXED_STORE(s->mac, v->mac);
	RELAXED_STORE(s->confirmed_ns, v->confirmed_ns);
	RELAXED_STORE(s->last_request_ns, v->last_request_ns);
	RELAXED_STORE(s->failed_ns, v->failed_ns);
	ferry_seq_write_end(&s->seq);
}

/* A probe step: just the slot's state and key, consistent with each other. */
static void slot_read_key(const struct neigh_slot *s, uint8_t *state, uint16_t *port, rte_be32_t *ip)
{
	uint32_t seq;
	do {
		seq = ferry_seq_read_begin(&s->seq);
		*state = RELAXED_LOAD(s->state);
		*port = RELAXED_LOAD(s->port);
		*ip = RELAXED_LOAD(s->ip);
	} while (ferry_seq_read_retry(&s->seq, seq));
}

/* Probes for (port, ip): its slot with a copy in *v, or -1. With free_slot, also
 * where an insert would go (the first tombstone or empty slot on the way; -1 when
 * the table has neither). Lock-free; under the lock its answer is final. */
static int neigh_find(const struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, struct neigh_view *v,
		      int *free_slot)
{
	uint32_t i = neigh_home(t, port, ip);
	int first_free = -1;

	for (uint32_t n = 0; n < FERRY_NEIGH_SLOTS; n++, i = (i + 1) & NEIGH_SLOT_MASK) {
		uint8_t state;
		uint16_t s_port;
		rte_be32_t s_ip;

		slot_read_key(&t->slots[i], &state, &s_port, &s_ip);
		if (state == NEIGH_EMPTY) {
			if (first_free < 0)
				first_free = (int)i;
			break;
		}
		if (state == NEIGH_DELETED) {
			if (first_free < 0)
				first_free = (int)i;
			continue;
		}
		if (s_port != port || s_ip != ip)
			continue;
		/* The whole slot now; a writer may have reused it in between (only ever
		 * for another key: an entry never moves), then it is not here. */
		slot_read(&t->slots[i], v);
		if (!is_live(v->state) || v->port != port || v->ip != ip)
			break;
		if (free_slot != NULL)
			*free_slot = -1;
		return (int)i;
	}
	if (free_slot != NULL)
		*free_slot = first_free;
	return -1;
}

/* Under the lock: a fresh entry for (port, ip) in the free slot i, fields from v. */
static void neigh_insert(struct ferry_neigh_table *t, int i, uint16_t port, rte_be32_t ip, struct neigh_view *v)
{
	v->port = port;
	v->ip = ip;
	t->slots[i].home = (uint16_t)neigh_home(t, port, ip);
	slot_write(&t->slots[i], v);
	__atomic_store_n(&t->n_live, t->n_live + 1, __ATOMIC_RELAXED);
}

/* Under the lock: slot i becomes a tombstone (neigh_sweep may then free it). */
static void neigh_remove(struct ferry_neigh_table *t, uint32_t i)
{
	const struct neigh_view dead = { .state = NEIGH_DELETED };
	slot_write(&t->slots[i], &dead);
	__atomic_store_n(&t->n_live, t->n_live - 1, __ATOMIC_RELAXED);
}

/* Under the lock: turns every tombstone that no live entry's probe sequence crosses
 * back into an empty slot. A live entry at slot s with home h needs [h, s) non-empty
 * for a probe to reach it; nothing else depends on a tombstone, and no entry moves,
 * so a concurrent lock-free reader loses nothing. One pass marks the covered ranges
 * (a difference array, wrapping ranges split in two), one pass sweeps. */
static void neigh_sweep(struct ferry_neigh_table *t)
{
	int32_t *cover = t->sweep;
	memset(cover, 0, sizeof(t->sweep));

	for (uint32_t s = 0; s < FERRY_NEIGH_SLOTS; s++) {
		if (!is_live(t->slots[s].state))
			continue;
		uint32_t h = t->slots[s].home;
		cover[h]++;
		cover[s]--;
		if (h > s) { /* wraps: [h, end) and [0, s) */
			cover[FERRY_NEIGH_SLOTS]--;
			cover[0]++;
		}
	}

	const struct neigh_view empty = { .state = NEIGH_EMPTY };
	int32_t depth = 0;
	for (uint32_t j = 0; j < FERRY_NEIGH_SLOTS; j++) {
		depth += cover[j];
		if (depth == 0 && t->slots[j].state == NEIGH_DELETED)
			slot_write(&t->slots[j], &empty);
	}
}

struct ferry_neigh_table *ferry_neigh_create(int socket)
{
	struct ferry_neigh_table *t = rte_zmalloc_socket("ferry_neigh", sizeof(*t), RTE_CACHE_LINE_SIZE, socket);
	if (t == NULL)
		return NULL;
	rte_spinlock_init(&t->lock);
	t->seed = (uint32_t)rte_rand();
	t->retries = FERRY_NEIGH_DEFAULT_RETRIES;
	t->timeout_ns = (uint64_t)FERRY_NEIGH_DEFAULT_TIMEOUT_S * NEIGH_NS_PER_S;
	return t;
}

void ferry_neigh_destroy(struct ferry_neigh_table *t)
{
	rte_free(t);
}

void ferry_neigh_set_options(struct ferry_neigh_table *t, uint32_t timeout_s, uint32_t retries)
{
	if (timeout_s != 0)
		RELAXED_STORE(t->timeout_ns, (uint64_t)timeout_s * NEIGH_NS_PER_S);
	if (retries != 0)
		RELAXED_STORE(t->retries, retries);
}

uint32_t ferry_neigh_retries(const struct ferry_neigh_table *t)
{
	return RELAXED_LOAD(t->retries);
}

/* What a lookup answers for the entry v at now, and in *change what it must write
 * first. Pure, so the lock-free fast path and the locked slow path decide alike. */
static enum ferry_neigh_result neigh_judge(const struct ferry_neigh_table *t, const struct neigh_view *v, uint64_t now,
					   enum neigh_change *change)
{
	*change = NEIGH_CHANGE_NONE;
	switch (v->state) {
	case NEIGH_REACHABLE:
		/* Refresh a used entry before it expires, while still using it; a request
		 * since the last confirmation holds the next one off for a retry interval. */
		if (!v->is_static && elapsed_ns(now, v->confirmed_ns) > RELAXED_LOAD(t->timeout_ns) / 2 &&
		    (v->n_requests == 0 || elapsed_ns(now, v->last_request_ns) >= FERRY_NEIGH_RETRY_NS))
			*change = NEIGH_CHANGE_ASK;
		return FERRY_NEIGH_HIT;
	case NEIGH_INCOMPLETE:
		/* n_requests were sent, the last a retry interval ago without an answer:
		 * another one, or give up once there were `retries`. */
		if (elapsed_ns(now, v->last_request_ns) < FERRY_NEIGH_RETRY_NS)
			return FERRY_NEIGH_MISS;
		if (v->n_requests >= RELAXED_LOAD(t->retries)) {
			*change = NEIGH_CHANGE_FAIL;
			return FERRY_NEIGH_FAILED;
		}
		*change = NEIGH_CHANGE_ASK;
		return FERRY_NEIGH_MISS;
	case NEIGH_FAILED:
		/* This packet is dropped all the same; the ones after it wait for the new
		 * round of requests. */
		if (elapsed_ns(now, v->failed_ns) >= FERRY_NEIGH_RETRY_NS)
			*change = NEIGH_CHANGE_RETRY;
		return FERRY_NEIGH_FAILED;
	default:
		return FERRY_NEIGH_MISS; /* not reached: neigh_find returns live entries only */
	}
}

enum ferry_neigh_result ferry_neigh_lookup(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, uint64_t now_ns,
					   struct rte_ether_addr *mac, bool *ask)
{
	struct neigh_view v;
	enum neigh_change change;
	enum ferry_neigh_result res;
	int i, free_slot;

	*ask = false;

	/* Fast path: a resolved entry, or one with nothing due, answers without the lock. */
	i = neigh_find(t, port, ip, &v, NULL);
	if (i >= 0) {
		res = neigh_judge(t, &v, now_ns, &change);
		if (change == NEIGH_CHANGE_NONE) {
			if (res == FERRY_NEIGH_HIT)
				word_to_mac(v.mac, mac);
			return res;
		}
	}

	/* Not there and no room for it: a full table answers without the lock (every
	 * slot that is not live, tombstones too, is free, so a full count means none). */
	if (i < 0 && RELAXED_LOAD(t->n_live) >= FERRY_NEIGH_SLOTS)
		return FERRY_NEIGH_MISS;

	/* Something to write: decide again under the lock, since another lcore may have
	 * made the entry or sent the request meanwhile (then this caller does not ask). */
	rte_spinlock_lock(&t->lock);
	i = neigh_find(t, port, ip, &v, &free_slot);
	if (i < 0) {
		if (free_slot >= 0) {
			struct neigh_view fresh = {
				.state = NEIGH_INCOMPLETE,
				.n_requests = 1,
				.last_request_ns = now_ns,
			};
			neigh_insert(t, free_slot, port, ip, &fresh);
			*ask = true;
		}
		rte_spinlock_unlock(&t->lock);
		return FERRY_NEIGH_MISS;
	}

	res = neigh_judge(t, &v, now_ns, &change);
	switch (change) {
	case NEIGH_CHANGE_NONE:
		break;
	case NEIGH_CHANGE_ASK:
		v.n_requests++;
		v.last_request_ns = now_ns;
		*ask = true;
		break;
	case NEIGH_CHANGE_FAIL:
		v.state = NEIGH_FAILED;
		v.failed_ns = now_ns;
		break;
	case NEIGH_CHANGE_RETRY:
		v.state = NEIGH_INCOMPLETE;
		v.n_requests = 1;
		v.last_request_ns = now_ns;
		*ask = true;
		break;
	}
	if (change != NEIGH_CHANGE_NONE)
		slot_write(&t->slots[i], &v);
	rte_spinlock_unlock(&t->lock);

	if (res == FERRY_NEIGH_HIT)
		word_to_mac(v.mac, mac);
	return res;
}

/* Returns true only when what a lookup answers changed (an entry made, resolved, or
 * given another MAC): a mere confirmation refreshes the timestamps and returns false,
 * so a caller can act on news (release held frames, log a MAC move) and not on every
 * ARP packet. */
bool ferry_neigh_learn(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, const struct rte_ether_addr *mac,
		       uint64_t now_ns, bool create)
{
	struct neigh_view v;
	int i, free_slot;
	bool changed;

	/* An ARP probe (sender 0.0.0.0) says nothing about where anyone is. */
	if (ip == 0)
		return false;

	/* Most ARP on a segment is about hosts nobody here asked for, and static entries
	 * are left alone: settle both without the lock. */
	i = neigh_find(t, port, ip, &v, NULL);
	if ((i < 0 && !create) || (i >= 0 && v.is_static))
		return false;

	rte_spinlock_lock(&t->lock);
	i = neigh_find(t, port, ip, &v, &free_slot);
	if (i < 0) {
		if (!create || free_slot < 0) {
			rte_spinlock_unlock(&t->lock);
			return false;
		}
		memset(&v, 0, sizeof(v));
		changed = true;
	} else if (v.is_static) {
		rte_spinlock_unlock(&t->lock);
		return false;
	} else {
		changed = v.state != NEIGH_REACHABLE || v.mac != mac_to_word(mac);
	}

	v.state = NEIGH_REACHABLE;
	v.mac = mac_to_word(mac);
	v.confirmed_ns = now_ns;
	v.n_requests = 0;
	if (i < 0)
		neigh_insert(t, free_slot, port, ip, &v);
	else
		slot_write(&t->slots[i], &v);
	rte_spinlock_unlock(&t->lock);
	return changed;
}

int ferry_neigh_set_static(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, const struct rte_ether_addr *mac)
{
	/* Times stay 0: a static entry never ages and never asks. */
	struct neigh_view v = {
		.state = NEIGH_REACHABLE,
		.is_static = true,
		.port = port,
		.ip = ip,
		.mac = mac_to_word(mac),
	};
	struct neigh_view old;
	int i, free_slot, ret = 0;

	rte_spinlock_lock(&t->lock);
	i = neigh_find(t, port, ip, &old, &free_slot);
	if (i >= 0)
		slot_write(&t->slots[i], &v);
	else if (free_slot >= 0)
		neigh_insert(t, free_slot, port, ip, &v);
	else
		ret = -ENOSPC;
	rte_spinlock_unlock(&t->lock);
	return ret;
}

int ferry_neigh_del(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip)
{
	struct neigh_view v;
	int i;

	rte_spinlock_lock(&t->lock);
	i = neigh_find(t, port, ip, &v, NULL);
	if (i >= 0) {
		neigh_remove(t, (uint32_t)i);
		neigh_sweep(t);
	}
	rte_spinlock_unlock(&t->lock);
	return i >= 0 ? 0 : -ENOENT;
}

static bool neigh_expired(const struct neigh_view *v, uint64_t now, uint64_t timeout_ns)
{
	if (!is_live(v->state) || v->is_static)
		return false;
	if (v->state == NEIGH_REACHABLE)
		return elapsed_ns(now, v->confirmed_ns) >= timeout_ns;
	/* INCOMPLETE or FAILED: nobody has looked it up (a lookup would have asked) for that long */
	return elapsed_ns(now, v->last_request_ns) >= timeout_ns;
}

uint32_t ferry_neigh_age(struct ferry_neigh_table *t, uint64_t now_ns)
{
	uint64_t timeout_ns = RELAXED_LOAD(t->timeout_ns);
	struct neigh_view v;
	uint32_t i, removed = 0;

	/* Usually nothing expired: find that out without holding up the workers. */
	for (i = 0; i < FERRY_NEIGH_SLOTS; i++) {
		slot_read(&t->slots[i], &v);
		if (neigh_expired(&v, now_ns, timeout_ns))
			break;
	}
	if (i == FERRY_NEIGH_SLOTS)
		return 0;

	rte_spinlock_lock(&t->lock);
	for (; i < FERRY_NEIGH_SLOTS; i++) {
		slot_read(&t->slots[i], &v);
		if (neigh_expired(&v, now_ns, timeout_ns)) {
			neigh_remove(t, i);
			removed++;
		}
	}
	if (removed != 0)
		neigh_sweep(t);
	rte_spinlock_unlock(&t->lock);
	return removed;
}

/* age_ms is the time since what expires the entry: the last confirmation of a
 * learned entry, the last request of an INCOMPLETE or FAILED one (never confirmed);
 * 0 for a static one. A static entry is reported STATIC|REACHABLE: it resolves. */
uint32_t ferry_neigh_dump(const struct ferry_neigh_table *t, uint32_t *cursor, uint64_t now_ns,
			  struct ferry_neigh_entry *out, uint32_t max, bool *done)
{
	struct neigh_view v;
	uint32_t i, n = 0;

	/* Walks on to the next live slot after the last one copied, so *done is true on
	 * the page that holds the last entry rather than on an empty page after it. */
	for (i = *cursor; i < FERRY_NEIGH_SLOTS; i++) {
		slot_read(&t->slots[i], &v);
		if (!is_live(v.state))
			continue;
		if (n == max)
			break;

		struct ferry_neigh_entry *e = &out[n++];
		uint64_t age_ns = 0;
		memset(e, 0, sizeof(*e));
		memcpy(e->ip, &v.ip, sizeof(e->ip));
		memcpy(e->mac, &v.mac, sizeof(e->mac));
		e->port = v.port;
		switch (v.state) {
		case NEIGH_REACHABLE:
			e->flags = FERRY_NEIGH_FLAG_REACHABLE | (v.is_static ? FERRY_NEIGH_FLAG_STATIC : 0);
			age_ns = v.is_static ? 0 : elapsed_ns(now_ns, v.confirmed_ns);
			break;
		case NEIGH_INCOMPLETE:
			e->flags = FERRY_NEIGH_FLAG_INCOMPLETE;
			age_ns = elapsed_ns(now_ns, v.last_request_ns);
			break;
		default:
			e->flags = FERRY_NEIGH_FLAG_FAILED;
			age_ns = elapsed_ns(now_ns, v.last_request_ns);
			break;
		}
		e->age_ms = (uint32_t)RTE_MIN(age_ns / NEIGH_NS_PER_MS, (uint64_t)UINT32_MAX);
	}
	*cursor = i;
	*done = i >= FERRY_NEIGH_SLOTS;
	return n;
}

uint32_t ferry_neigh_count(const struct ferry_neigh_table *t)
{
	return RELAXED_LOAD(t->n_live);
}
