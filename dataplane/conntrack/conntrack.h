/* Ferry's connection tracker: OVS's ct() semantics (states new/est/rel/rpl/inv/trk
 * and srpl, zones, mark/label, commit/force, pf TCP window tracking, UDP/other and
 * ICMP state machines, ICMP errors as related) over a table built for bursts:
 *
 *  - connections live in a fixed pool (reserved up front, touched lazily) and are
 *    chained from a power-of-two slot array; every slot belongs to one of n_buckets
 *    lock buckets (slot & (n_buckets - 1)), each an adaptive mutex with the
 *    expiration list of its connections;
 *  - ferry_ct_execute() takes a burst: extracts and hashes every key, prefetches the
 *    slots, then takes each bucket's lock once for all the burst's packets in it;
 *  - a key is stored once, in canonical order (lower endpoint first), so one lookup
 *    finds both directions; the entry remembers which endpoint opened it;
 *  - a cleanup thread (not a worker) walks each bucket's expiration list in steps of
 *    at most sweep_budget entries per lock hold; lookups ignore expired entries at
 *    once, so the sweep only gives memory back;
 *  - all time comes from the caller (now_ns) or the injectable clock, never from
 *    a clock read inside the tracker, so tests expire entries without sleeping.
 *
 *  - NAT (ct_nat.c): a translated connection is found by its reply-direction key
 *    too, through a second chain node; the tracker chooses the translation and says
 *    how each packet's headers change (ferry_ct_thread.nat_mask, rw), the caller rewrites them
 *    (nat/nat_rewrite.h).
 *
 * The tracker reads packets through ferry_ct_pkt and never writes them: it is usable
 * from a worker (mbufs), from ferry-ct-replay (pcap) and from unit tests alike. */
#ifndef FERRY_CONNTRACK_H
#define FERRY_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry_proto.h"
#include "../nat/nat_rewrite.h"

#define FERRY_CT_DEFAULT_MAX_CONNS 3000000u
#define FERRY_CT_DEFAULT_BUCKETS 1024u
#define FERRY_CT_DEFAULT_SWEEP_MS 5000u
#define FERRY_CT_DEFAULT_SWEEP_BUDGET 8u
#define FERRY_CT_BURST_MAX 64u
#define FERRY_CT_N_TM 11u            /* FERRY_CT_TM_* */
#define FERRY_CT_ZONES 65536u
#define FERRY_CT_DUMP_SLOT_MAX 64u  /* entries one slot visit of a dump may give at most */

struct ferry_ct;

struct ferry_ct_config {
	uint32_t max_conns;       /* global limit; 0: FERRY_CT_DEFAULT_MAX_CONNS */
	uint32_t capacity;        /* entries reserved; 0: max_conns. The limit can be raised up to it. */
	uint32_t n_buckets;       /* lock buckets, a power of two; 0: default */
	uint32_t sweep_interval_ms; /* pause between full sweeps of the cleanup thread; 0: default */
	uint32_t sweep_budget;    /* entries per lock hold in a sweep; 0: default */
	bool cleanup_thread;      /* start the cleanup thread (tests call ferry_ct_sweep instead) */
	bool events;              /* publish CT_NEW / CT_DESTROY events (ferry_ct_events_pop) */
	uint32_t event_slots;     /* event queue size, a power of two; 0: 8192 */
	/* the cleanup thread's clock (CLOCK_MONOTONIC ns when NULL) */
	uint64_t (*clock)(void *arg);
	void *clock_arg;
};

/* A packet as the tracker reads it. data[l3_ofs] is the IPv4 or IPv6 header; len
 * counts from data. */
struct ferry_ct_pkt {
	const uint8_t *data;
	uint32_t len;
	uint16_t l3_ofs;
	uint16_t eth_type;        /* 0x0800 or 0x86dd; anything else is inv (NOT_IP) */
	uint16_t flags;           /* FERRY_CT_PKT_* in; the tracker sets *_CSUM_GOOD it verified */
};
#define FERRY_CT_PKT_L3_CSUM_GOOD 0x1 /* the NIC (or an earlier pass) verified it */
#define FERRY_CT_PKT_L4_CSUM_GOOD 0x2
#define FERRY_CT_PKT_REASSEMBLED 0x4  /* a datagram the reassembler built: not a fragment */

/* What ct(...) asks for. */
struct ferry_ct_action {
	uint16_t zone;
	uint16_t flags;           /* FERRY_CT_FLAG_COMMIT, _FORCE, and the NAT ones:
				   * NAT: translate as the connection says (ct(nat));
				   * NAT_SRC / NAT_DST with the range below: the translation a
				   * commit sets up; NAT_RANDOM, NAT_PERSISTENT: how it is chosen */
	uint32_t mark;            /* written at commit under mark_mask */
	uint32_t mark_mask;
	uint8_t label[16];        /* written at commit under label_mask */
	uint8_t label_mask[16];
	/* nat(src|dst=ADDR[-ADDR][:PORT[-PORT]]): an all-zero address range keeps the
	 * address; port_min 0 means no port range (OVS's defaults apply to SNAT) */
	uint8_t nat_addr_min[16], nat_addr_max[16];
	uint16_t nat_port_min, nat_port_max;
	uint8_t nat_is_ipv6;
	uint8_t alg;              /* FERRY_CT_ALG_*: the helper a commit attaches */
};
#define FERRY_CT_FLAGS_NAT_ANY (FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC | FERRY_CT_FLAG_NAT_DST)

/* What a packet comes out with: the metadata the pipeline matches on. */
struct ferry_ct_result {
	uint32_t state;           /* FERRY_CT_STATE_BIT_* (TRK always) */
	uint32_t mark;
	uint16_t zone;
	uint8_t proto;            /* original-direction tuple (ct_nw_proto ...) */
	uint8_t invalid_reason;   /* FERRY_CT_INVALID_REASON_* when state has INV */
	uint16_t tp_src, tp_dst;
	uint8_t label[16];
	uint8_t nw_src[16], nw_dst[16];
};

/* Per-thread context of a tracker user (worker, cleanup, control): a cache of free
 * entries and where its counters go. One per thread, never shared. */
struct ferry_ct_thread {
	struct ferry_ct *ct;
	uint32_t n_free;
	uint32_t free_idx[64];
	/* counters (a worker points these at its shared worker_stats) */
	uint64_t *packets;        /* -> ct_packets */
	uint64_t *created;        /* -> ct_created */
	uint64_t *limit_refused;
	uint64_t *early_drops;
	uint64_t *nat_created;    /* -> ct_nat_created */
	uint64_t *nat_exhausted;  /* -> ct_nat_exhausted */
	uint64_t *exp_created;    /* -> ct_exp_created */
	uint64_t *exp_matched;    /* -> ct_exp_matched */
	uint64_t *invalid;        /* -> ct_invalid[FERRY_CT_INVALID_REASONS] */
	uint64_t local[8 + FERRY_CT_INVALID_REASONS]; /* default targets */
	uint8_t last_invalid;     /* the reason last counted: what the result reports */
	uint32_t held1, held2;    /* internal: the bucket locks held (CT_NIL: none) */
	/* out of ferry_ct_execute: bit i of nat_mask set, packet i is to be rewritten
	 * as rw[i] says */
	uint64_t nat_mask;
	struct ferry_nat_rewrite rw[FERRY_CT_BURST_MAX];
	/* bit i of edit_mask: packet i is a TCP segment to edit as edit[i] says (after
	 * rw[i]): an ALG's payload change and the sequence shift it leaves behind */
	uint64_t edit_mask;
	struct ferry_nat_tcp_edit edit[FERRY_CT_BURST_MAX];
};

struct ferry_ct *ferry_ct_create(const struct ferry_ct_config *cfg);
void ferry_ct_destroy(struct ferry_ct *ct); /* stops the cleanup thread */

void ferry_ct_thread_init(struct ferry_ct *ct, struct ferry_ct_thread *t);
void ferry_ct_thread_fini(struct ferry_ct_thread *t); /* returns its cached entries */

/* Tracks n packets (n <= FERRY_CT_BURST_MAX). act[i] is packet i's action (the same
 * pointer may repeat). Writes res[i]; never fails: a packet the tracker cannot
 * handle gets inv|trk with the reason counted. pkts[i].flags may gain *_CSUM_GOOD. */
void ferry_ct_execute(struct ferry_ct_thread *t, struct ferry_ct_pkt *pkts, const struct ferry_ct_action *const *act,
		      unsigned n, uint64_t now_ns, struct ferry_ct_result *res);

/* ---- control ---- */

/* Sets the global maximum (capped at capacity), the default zone limit (0 =
 * unlimited), or a zone's limit (0 blocks every new connection in it; clear: the
 * zone follows the default again). Returns 0, or -1 for a bad target. */
int ferry_ct_set_limit(struct ferry_ct *ct, const struct ferry_ct_limit_req *req);
uint32_t ferry_ct_zone_limit(const struct ferry_ct *ct, uint16_t zone); /* in force; 0 unlimited */
uint32_t ferry_ct_zone_count(const struct ferry_ct *ct, uint16_t zone);
uint64_t ferry_ct_count(const struct ferry_ct *ct);
uint32_t ferry_ct_max_conns(const struct ferry_ct *ct);

/* A zone's timeouts (seconds by FERRY_CT_TM_*, 0 = default); clear restores the
 * defaults. Takes effect at each entry's next update. -1 when no policy slot is left. */
int ferry_ct_set_timeout_policy(struct ferry_ct *ct, const struct ferry_ct_timeout_policy_req *req);
/* The timeout in force for a zone and attribute, in seconds. */
uint32_t ferry_ct_timeout(const struct ferry_ct *ct, uint16_t zone, unsigned tm);
extern const uint32_t ferry_ct_default_timeouts[FERRY_CT_N_TM];

void ferry_ct_set_tcp_seq_check(struct ferry_ct *ct, bool on);
void ferry_ct_set_events(struct ferry_ct *ct, bool on);

/* Walks entries matching f from cursor (0 = start), calling cb for each with the
 * entry filled in, until the table ends (returns 0 and *done = true) or at least
 * max entries (0 = no limit) were given (returns the cursor to go on from). cb
 * returning non-zero stops the walk too, once the entries of the slot it is in are
 * given (a cursor is a slot: a chain is never split). Takes each bucket lock briefly. */
typedef int (*ferry_ct_entry_cb)(void *arg, const struct ferry_ct_entry *e);
uint64_t ferry_ct_dump(struct ferry_ct *ct, const struct ferry_ct_filter *f, uint64_t cursor, uint32_t max,
		       uint64_t now_ns, ferry_ct_entry_cb cb, void *arg, bool *done);

/* Removes every entry matching f (NULL: all); returns how many. */
uint64_t ferry_ct_flush(struct ferry_ct_thread *t, const struct ferry_ct_filter *f, uint64_t now_ns);

/* Counts by protocol and TCP state (the higher of both peers) by walking the table,
 * and the zones with entries from zone_start (up to FERRY_CT_STATS_ZONES). */
void ferry_ct_stats(struct ferry_ct *ct, uint32_t zone_start, uint64_t now_ns, struct ferry_ct_stats_resp *out);

/* One full sweep of the cleanup thread, done by the caller: expires entries whose
 * time is up at now_ns. Returns how many it removed. */
uint64_t ferry_ct_sweep(struct ferry_ct_thread *t, uint64_t now_ns);

/* counters kept by the table itself */
struct ferry_ct_counters {
	uint64_t expired;         /* removed by a sweep or found expired by a lookup */
	uint64_t flushed;
	uint64_t sweeps;
	uint64_t events_dropped;
	uint64_t sweep_max_hold_ns; /* the longest a sweep held one bucket lock */
	uint64_t sweep_holds;       /* the sweep's lock holds, and those over 50 us */
	uint64_t sweep_long_holds;
	uint64_t exp_expired;       /* expectations that timed out unused */
};
void ferry_ct_counters(const struct ferry_ct *ct, struct ferry_ct_counters *out);

/* ---- ALG expectations ---- */
#define FERRY_CT_EXP_MAX 4096u            /* pending at once; more are refused */
#define FERRY_CT_EXP_TIMEOUT_SEC 60u      /* an expectation unused this long is dropped */

uint32_t ferry_ct_exp_count(const struct ferry_ct *ct);
/* Calls cb for each pending expectation from cursor (0 = start) until max were given
 * (0 = no limit; returns the cursor to go on from) or all were (*done, returns 0). */
typedef int (*ferry_ct_exp_cb)(void *arg, const struct ferry_ct_exp_entry *e);
uint32_t ferry_ct_exp_dump(struct ferry_ct *ct, uint32_t cursor, uint32_t max, uint64_t now, ferry_ct_exp_cb cb,
			   void *arg, bool *done);

/* Takes the oldest pending event; false when none. */
bool ferry_ct_events_pop(struct ferry_ct *ct, uint16_t *type, struct ferry_ct_event *ev);

/* ---- ct_state in OVS's notation ("new|trk", "est|rpl|trk", "inv|trk") ---- */
size_t ferry_ct_state_str(uint32_t state, char *buf, size_t len);

#endif
