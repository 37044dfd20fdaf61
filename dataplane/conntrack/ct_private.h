/* The tracker's insides, shared by its files: the table (conntrack.c), key extraction
 * (ct_extract.c), the protocol machines (ct_tcp.c, ct_other.c) and the walks (dump,
 * flush, stats, sweep: ct_walk.c). Nothing outside dataplane/conntrack includes it. */
#ifndef FERRY_CT_PRIVATE_H
#define FERRY_CT_PRIVATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <string.h>
#include <nmmintrin.h>
#include <rte_ring.h>
#include "conntrack.h"

#define CT_NIL UINT32_MAX
#define CT_LIMIT_UNSET UINT32_MAX   /* zone_limit: the zone follows the default limit */
#define CT_MAX_POLICIES 1024u       /* zones with a timeout policy of their own, at once */
#define CT_EARLY_DROP_SCAN 8u       /* entries of a bucket's list looked at for an unreplied victim */
#define NS_PER_SEC 1000000000ull
#define CT_SWEEP_YIELD_SPINS 20000u  /* the most a sweep step waits for waiting workers to take a lock (a worker queued behind another worker keeps it waiting for nothing: bounded) */
#define CT_LONG_HOLD_NS 50000u      /* a sweep's lock hold past this is counted (the burst bound) */

/* A connection's key, canonical: endpoint a is the lower (address, port) of the two,
 * so both directions of a connection have the same key and one lookup finds it. */
struct ct_key {
	uint8_t a[16];
	uint8_t b[16];
	uint16_t pa, pb;   /* ports; ICMP echo: the id on both */
	uint16_t zone;
	uint8_t proto;
	uint8_t l3;        /* 4 or 6 */
};
_Static_assert(sizeof(struct ct_key) == 40, "ct_key is five words");

/* one side of a TCP connection, pf's model (conntrack.md 5.1) */
struct ct_tcp_peer {
	uint32_t seqlo;    /* lowest sequence number expected from this peer */
	uint32_t seqhi;    /* highest sequence number the other peer's window allows */
	uint16_t max_win;  /* largest window this peer advertised, unscaled */
	uint8_t wscale;    /* CT_WSCALE_* flags | shift */
	uint8_t state;     /* FERRY_CT_TCP_STATE_* */
};
#define CT_WSCALE_FLAG 0x80    /* the peer sent the window-scale option */
#define CT_WSCALE_UNKNOWN 0x40 /* picked up mid-stream: the scale is not known */
#define CT_WSCALE_MASK 0x0f

/* conn.flags */
#define CONN_SEEN_REPLY 0x01
#define CONN_LIBERAL 0x02      /* picked up mid-stream (OVS's BE_LIBERAL) */
#define CONN_LABELED 0x04      /* a label was written: results read the third line */
#define CONN_NAT 0x08          /* translated: ct->nat[idx] says how (ct_nat.c) */
#define CONN_ALG 0x10          /* an ALG reads its packets (c->alg, ct_alg.c) */
#define CONN_RELATED 0x20      /* opened by an expectation: rel on every packet */
#define CONN_HAS_EXP 0x40      /* expectations name it as their parent */
#define CONN_SEQADJ 0x80       /* an ALG edited its payload: seq/ack shift (ct_nat.seq) */
/* any of these sends a packet's result through conn_extras */
#define CONN_EXTRAS (CONN_NAT | CONN_ALG | CONN_RELATED | CONN_SEQADJ)

/* A direction's sequence shift after payload edits (netfilter's nf_ct_seqadj): data
 * after pos (the last edited segment's seq, sender's numbering) moved by after,
 * data before it by before. */
struct ct_seqadj {
	uint32_t pos;
	int32_t before, after;
};

/* Chain links (heads[], ct_conn.next) index ct->conns, which holds 2 x capacity
 * nodes: entries below capacity, and at capacity + i the reply node of translated
 * entry i (struct ct_nat, laid out as an entry's first line: a chain walk reads every
 * node alike and tells a reply node by its index only when a key matches). */
#define CT_MAX_CAPACITY 0x7ffffffeu

/* Three cache lines: a lookup reads the first; a packet's update writes the second;
 * the third is for dumps and the expiration list. */
struct ct_conn {
	struct ct_key key;
	uint32_t hash;
	uint32_t next;          /* hash chain */
	uint64_t expiration;    /* ns; the entry is gone for lookups from then on */
	uint32_t mark;
	uint8_t orig_b;         /* 1 when the originator is endpoint b of the key */
	uint8_t tm;             /* FERRY_CT_TM_* in force */
	uint8_t flags;          /* CONN_* */
	uint8_t l4state;        /* the UDP/other or ICMP machine's state */

	struct ct_tcp_peer peer[2] __attribute__((aligned(64))); /* [0] originator, [1] responder */
	uint64_t packets[2];    /* [0] original direction, [1] reply */
	uint64_t bytes[2];
	uint64_t last_seen;

	uint8_t label[16] __attribute__((aligned(64)));
	uint64_t first_seen;
	uint32_t exp_prev, exp_next; /* the bucket's expiration list */
	uint8_t icmp_type, icmp_code; /* of the packet that opened it */
	uint8_t alg;                  /* FERRY_CT_ALG_* when CONN_ALG */
} __attribute__((aligned(64)));

/* A lock bucket: an adaptive mutex over the slots slot & mask == its index, and the
 * expiration list of their connections (in creation order; the sweep walks it from
 * 'cursor', which a removal of the cursor's entry moves on). */
struct ct_bucket {
	pthread_mutex_t lock;
	uint32_t exp_head, exp_tail;
	uint32_t exp_len;
	uint32_t cursor;
	_Atomic uint32_t waiting;   /* workers waiting for the lock: the sweep lets them in */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct ct_bucket) == 64, "a bucket is one line");

/* A translated connection (CONN_NAT), beside its entry at the same index. The
 * original direction's tuple O is the entry's key (with orig_b); the translation T
 * is O with one endpoint (the source for SNAT, the destination for DNAT) replaced by
 * (addr, port). Replies carry T turned round, and are found by rkey, its canonical
 * key, through a node of their own in rkey's chain (conns[capacity + index]). */
enum ct_nat_kind { CT_NAT_SRC = 1, CT_NAT_DST = 2 };
struct ct_nat {
	struct ct_key rkey;     /* where an entry has key, hash, next, expiration */
	uint32_t rhash;
	uint32_t rnext;         /* rkey's chain */
	uint64_t never;         /* UINT64_MAX: the entry's own expiration is what counts */
	uint8_t kind;           /* enum ct_nat_kind */
	uint8_t r_swapped;      /* what a reply packet's key has for swapped */
	uint8_t linked;         /* rkey is in the table (T differs from O) */
	uint8_t pad;
	uint16_t port;          /* the replaced endpoint's, key domain (ICMP echo: the id) */
	uint8_t addr[16];
	struct ct_seqadj seq[2]; /* [0] original direction, [1] reply (CONN_SEQADJ) */
	uint8_t spare[88];      /* to an entry's size: one array holds both */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct ct_nat) == sizeof(struct ct_conn), "reply nodes share the entries' array");
_Static_assert(offsetof(struct ct_nat, rkey) == offsetof(struct ct_conn, key) &&
		       offsetof(struct ct_nat, rhash) == offsetof(struct ct_conn, hash) &&
		       offsetof(struct ct_nat, rnext) == offsetof(struct ct_conn, next) &&
		       offsetof(struct ct_nat, never) == offsetof(struct ct_conn, expiration),
	       "a reply node reads as an entry's first line");

/* What extraction learnt of a packet (ct_extract.c). The fast path of a burst
 * writes only key, hash, bytes, swapped and related (and the tcp_* fields of a TCP
 * segment): every other field is read only on the paths of the packets that set it
 * (invalid: a packet extraction refused; icmp_*: ICMP). The packet's own tuple
 * (a result without an entry) is the key's, turned round when swapped. */
struct ct_pktctx {
	struct ct_key key;
	uint32_t hash;
	uint32_t bytes;         /* IP packet length, for the counters */
	uint8_t swapped;        /* the packet travels from endpoint b to a */
	uint8_t related;        /* an ICMP error: key is the quoted packet's */
	uint8_t invalid;        /* FERRY_CT_INVALID_REASON_* + 1, 0 when fine */
	uint8_t icmp_reply;     /* an echo (timestamp, info) reply */
	uint8_t icmp_type, icmp_code;
	uint8_t tcp_flags;
	uint8_t tcp_wscale;     /* of a SYN: CT_WSCALE_FLAG | shift, or 0 */
	uint32_t tcp_seq, tcp_ack;
	uint32_t l4_payload;    /* TCP payload bytes */
	uint16_t tcp_win;
};

/* the outcome of a protocol update (OVS's ct_update_res) */
enum ct_update {
	CT_UPDATE_VALID,        /* est */
	CT_UPDATE_VALID_NEW,    /* still new (retransmitted SYN, UDP before a reply) */
	CT_UPDATE_INVALID,      /* inv; the entry stays */
	CT_UPDATE_NEW,          /* the old connection is over: expire it, start again */
};

struct ferry_ct;

/* A worker's lock of a bucket. Tried first; when another thread holds it, the worker
 * says it waits (the sweep, between two of its bounded steps, lets waiting workers
 * in before it takes the lock again) and tries for a while before it sleeps in the
 * mutex: a worker that slept would wait out a wake-up, and the sweep would take the
 * lock back before it ran. */
void ct_bucket_lock_contended(struct ct_bucket *b);
static inline void ct_bucket_lock(struct ct_bucket *b)
{
	if (__builtin_expect(pthread_mutex_trylock(&b->lock) != 0, 0))
		ct_bucket_lock_contended(b);
}

/* One protocol's machine: OVS's ct_l4_proto. */
struct ct_l4_ops {
	/* may this packet open a connection? (counts why not) */
	bool (*valid_new)(struct ferry_ct_thread *t, const struct ct_pktctx *p);
	/* a fresh entry's state after its first packet; sets c->tm */
	void (*new_conn)(struct ferry_ct *ct, struct ct_conn *c, const struct ct_pktctx *p);
	/* a packet of an existing entry; sets c->tm when the timeout is to be refreshed
	 * and returns whether to refresh through *refresh */
	enum ct_update (*update)(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p,
				 bool reply, bool *refresh);
};
extern const struct ct_l4_ops ct_tcp_ops, ct_other_ops, ct_icmp_ops;

/* The UDP/other machine's update (ct_other.c), here so the burst path runs it
 * without a call: FIRST -> MULTIPLE on more originator packets -> BIDIR once a reply
 * is seen; packets stay new until then. The timeout is always refreshed. */
enum { OTHER_FIRST, OTHER_MULTIPLE, OTHER_BIDIR };

static inline enum ct_update ct_other_update(struct ct_conn *c, bool reply)
{
	if (reply || c->l4state == OTHER_BIDIR) {
		c->l4state = OTHER_BIDIR;
		c->tm = FERRY_CT_TM_UDP_MULTIPLE;
		return CT_UPDATE_VALID;
	}
	c->l4state = OTHER_MULTIPLE;
	c->tm = FERRY_CT_TM_UDP_SINGLE;
	return CT_UPDATE_VALID_NEW;
}

struct ct_event_rec {
	uint16_t type;
	uint16_t pad[3];
	struct ferry_ct_event ev;
};

struct ferry_ct {
	struct ct_conn *conns;            /* the pool, [capacity] */
	struct ct_nat *nat;               /* = conns + capacity: reply nodes, for CONN_NAT entries */
	uint32_t *heads;                  /* hash slots, [slot_mask + 1] */
	struct ct_bucket *buckets;        /* [bucket_mask + 1] */
	uint32_t capacity, slot_mask, bucket_mask;
	uint32_t hash_v4_lane_b;          /* ct_hash_lane_b(0, 0): see ct_key_hash */
	size_t conns_bytes, heads_bytes;

	/* entries not in use; threads take and give them in batches */
	pthread_mutex_t free_lock;
	uint32_t *free_stack;
	uint32_t n_free;

	_Atomic uint64_t n_conns;
	_Atomic uint32_t max_conns;
	_Atomic uint32_t default_zone_limit;   /* 0: unlimited */
	_Atomic uint32_t *zone_limit;          /* [65536], CT_LIMIT_UNSET or the zone's own */
	_Atomic uint32_t *zone_count;          /* [65536] */

	/* timeouts: zone -> policy index (0: the defaults); each policy in ns by tm */
	_Atomic uint16_t *zone_tp;             /* [65536] */
	uint64_t (*tp_ns)[FERRY_CT_N_TM];      /* [CT_MAX_POLICIES] */
	uint8_t *tp_used;                      /* [CT_MAX_POLICIES] */
	pthread_mutex_t tp_lock;               /* control side only */

	_Atomic bool tcp_seq_check;
	_Atomic bool events;
	struct rte_ring *event_ring;

	_Atomic uint64_t expired, flushed, sweeps, events_dropped;
	_Atomic uint64_t sweep_max_hold_ns;   /* longest a sweep held one bucket lock */
	_Atomic uint64_t sweep_holds, sweep_long_holds; /* all of them, those over CT_LONG_HOLD_NS */
	_Atomic uint64_t nat_log_ns;          /* when exhaustion was last logged */
	struct ct_exp_table *exp;             /* ALG expectations (ct_alg.c) */
	_Atomic uint32_t n_exp;               /* how many: 0 spares new connections the lookup */
	_Atomic uint64_t exp_expired;

	/* cleanup thread */
	uint32_t sweep_interval_ms, sweep_budget;
	uint64_t (*clock)(void *);
	void *clock_arg;
	bool thread_started;
	pthread_t thread;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stop;
};

/* ---- shared helpers ---- */

static inline struct ct_conn *ct_conn_at(const struct ferry_ct *ct, uint32_t idx)
{
	return &ct->conns[idx];
}

static inline uint64_t ct_timeout_ns(const struct ferry_ct *ct, uint16_t zone, unsigned tm)
{
	uint16_t p = atomic_load_explicit(&ct->zone_tp[zone], memory_order_relaxed);
	return ct->tp_ns[p][tm];
}

static inline void ct_count_invalid(struct ferry_ct_thread *t, unsigned reason)
{
	t->invalid[reason]++;
	t->last_invalid = (uint8_t)reason;
}

/* ---- the key's hash ----
 * CRC32c of the key's five words in two lanes (the instruction's latency is three
 * cycles): a over words 0, 2, 4, b over 1 and 3. Words 1 and 3 are the tails of the
 * addresses, zero in an IPv4 key: lane b of every IPv4 key is the one constant
 * ferry_ct_create keeps (hash_v4_lane_b), and the burst path hashes IPv4 with three
 * crc32 instead of five. */
#define CT_HASH_SEED_A 0x9e3779b9u
#define CT_HASH_SEED_B 0x7f4a7c15u

static inline uint32_t ct_hash_lane_a(uint64_t w0, uint64_t w2, uint64_t w4)
{
	uint64_t a = _mm_crc32_u64(CT_HASH_SEED_A, w0);
	a = _mm_crc32_u64(a, w2);
	return (uint32_t)_mm_crc32_u64(a, w4);
}

/* lane b rotated into place: the hash is lane a ^ this */
static inline uint32_t ct_hash_lane_b(uint64_t w1, uint64_t w3)
{
	uint64_t b = _mm_crc32_u64(CT_HASH_SEED_B, w1);
	b = _mm_crc32_u64(b, w3);
	return (uint32_t)((b << 7) ^ (b >> 25));
}

static inline uint32_t ct_key_hash(const struct ct_key *k)
{
	uint64_t w[5];
	memcpy(w, k, sizeof(w));
	return ct_hash_lane_a(w[0], w[2], w[4]) ^ ct_hash_lane_b(w[1], w[3]);
}

/* ct_extract.c: extracts and hashes the n packets of a burst into ctx, fetching the
 * hash slots they fall in; returns the mask of packets to track (the others have
 * ctx[i].invalid set) */
uint64_t ct_extract_burst(const struct ferry_ct *ct, struct ferry_ct_pkt *pkts,
			  const struct ferry_ct_action *const *act, unsigned n, struct ct_pktctx *ctx);

/* conntrack.c, for the walks: c's bucket lock must be held. Returns false when c is
 * translated and its reply node's bucket could not be taken now: c is then left in
 * the table, expired (gone for lookups), for a later sweep. */
bool ct_remove_locked(struct ferry_ct_thread *t, struct ct_conn *c, uint8_t reason, uint64_t now);
void ct_fill_entry(const struct ferry_ct *ct, const struct ct_conn *c, uint64_t now, struct ferry_ct_entry *e);

/* keys compare as two 16-byte vectors (the addresses) and a word, without a call
 * to memcmp */
static inline bool ct_key_eq(const struct ct_key *x, const struct ct_key *y)
{
	__m128i d = _mm_or_si128(
		_mm_xor_si128(_mm_loadu_si128((const __m128i *)x->a), _mm_loadu_si128((const __m128i *)y->a)),
		_mm_xor_si128(_mm_loadu_si128((const __m128i *)x->b), _mm_loadu_si128((const __m128i *)y->b)));
	uint64_t tx, ty;
	memcpy(&tx, &x->pa, sizeof(tx));
	memcpy(&ty, &y->pa, sizeof(ty));
	return _mm_testz_si128(d, d) & (tx == ty);
}

static inline bool ct_expired(const struct ct_conn *c, uint64_t now)
{
	return now >= c->expiration;
}

static inline uint32_t ct_bucket_of(const struct ferry_ct *ct, uint32_t hash)
{
	return hash & ct->slot_mask & ct->bucket_mask;
}

/* the link after this one in its chain */
static inline uint32_t ct_link_next(const struct ferry_ct *ct, uint32_t link)
{
	return ct->conns[link].next; /* a reply node's rnext lies where next does */
}

static inline bool ct_link_is_rev(const struct ferry_ct *ct, uint32_t link)
{
	return link >= ct->capacity;
}

/* ---- ct_alg.c: expectations and the FTP and TFTP helpers ---- */

struct ct_exp_table;
struct ct_exp_match {
	uint32_t mark;
	uint8_t label[16];
	bool labeled;
	/* the translation the expected connection gets (a NATed parent's ALG): kind
	 * CT_NAT_SRC/DST to addr:port (port 0: kept), or 0 */
	uint8_t nat_kind;
	uint8_t nat_addr[16];
	uint16_t nat_port;
};
bool ct_alg_init(struct ferry_ct *ct);
void ct_alg_fini(struct ferry_ct *ct);
/* A new connection's first packet p: does an expectation wait for it? take removes
 * it (a commit), else it stays for the packet that commits. */
bool ct_exp_match(struct ferry_ct *ct, const struct ct_pktctx *p, uint64_t now, bool take, struct ct_exp_match *out);
/* c (just committed with ct(alg=...)) starts being watched; TFTP's expectation is
 * set up at once */
void ct_alg_commit(struct ferry_ct_thread *t, struct ct_conn *c, uint8_t alg, uint64_t now);
/* a packet of a watched connection (its bucket held): FTP commands and answers that
 * announce a data connection set up expectations */
void ct_alg_inspect(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p, bool reply,
		    const struct ferry_ct_pkt *pkt, uint64_t now, struct ferry_nat_tcp_edit *edit);
/* The shift a segment of direction dir gets: its seq by the direction's own edits,
 * its ack by the other direction's (CONN_SEQADJ) */
void ct_seqadj_of(const struct ferry_ct *ct, const struct ct_conn *c, bool dir, uint32_t seq, uint32_t ack,
		  int32_t *seq_add, int32_t *ack_add);
/* c leaves the table: its expectations go with it */
void ct_exp_remove_parent(struct ferry_ct *ct, const struct ct_conn *c);
/* the sweep's part: expectations whose time is up */
uint32_t ct_exp_expire(struct ferry_ct *ct, uint64_t now);

/* ---- ct_nat.c ---- */

/* Sets up c's translation as a asks (c is committed and linked, its bucket b held):
 * chooses a free tuple and links the reply node. EXHAUSTED: no tuple was free
 * (counted); BUSY: a candidate's bucket (*busy_bucket) could not be taken in lock
 * order; either way c stays untranslated. */
#define CT_NAT_SETUP_OK 0
#define CT_NAT_SETUP_EXHAUSTED 1
#define CT_NAT_SETUP_BUSY 2
int ct_nat_setup(struct ferry_ct_thread *t, struct ct_bucket *b, struct ct_conn *c, const struct ferry_ct_action *a,
		 uint64_t now, uint32_t *busy_bucket);
/* Unlinks c's reply node; needs its bucket's lock, which it takes if the ordering
 * allows. false: not possible now (c must stay in the table, dead, for the sweep). */
bool ct_nat_unlink(struct ferry_ct_thread *t, struct ct_bucket *b, struct ct_conn *c);
/* How packet p, of connection c (found by its reply node when via_rev), is
 * rewritten; rw->op 0 when it is not. */
void ct_nat_rewrite_of(const struct ferry_ct *ct, const struct ct_conn *c, const struct ct_pktctx *p, bool via_rev,
		       struct ferry_nat_rewrite *rw);
/* Locks bucket bi as a second lock while holding 'held', in an order that cannot
 * deadlock: waits for a higher index, only tries a lower one. Returns 0 (not taken),
 * 1 (it was held already) or 2 (taken: unlock it). */
int ct_lock_second(struct ferry_ct_thread *t, uint32_t held, uint32_t bi);
/* The reply direction's tuple (translated when c is), for dumps and filters. */
void ct_nat_reply_tuple(const struct ferry_ct *ct, const struct ct_conn *c, uint8_t *src, uint8_t *dst,
			uint16_t *sport, uint16_t *dport);
uint8_t ct_nat_kind(const struct ferry_ct *ct, const struct ct_conn *c); /* enum ct_nat_kind, 0 */

#endif
