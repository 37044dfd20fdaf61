/* The underlay's neighbour cache: IPv4 next hop -> MAC, per underlay port, shared by
 * every worker and the main lcore. Reads are lock-free (a seqlock per entry, so a
 * worker never sees half a MAC); writes take one spinlock, and they are rare (ARP
 * traffic, configuration, aging). Open addressing over a fixed array: nothing is
 * allocated after create.
 *
 * States (Linux's neighbour states, reduced): INCOMPLETE (asked, no answer yet),
 * REACHABLE (learned from ARP), FAILED (retries ran out; asked again after a retry
 * interval), and STATIC entries (configured; never aged, never replaced by ARP). */
#ifndef FERRY_NEIGH_H
#define FERRY_NEIGH_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include "ferry_proto.h"

#define FERRY_NEIGH_SLOTS 1024u                /* a power of two */
#define FERRY_NEIGH_DEFAULT_TIMEOUT_S 300u     /* a learned entry lives this long unconfirmed */
#define FERRY_NEIGH_DEFAULT_RETRIES 3u         /* requests before an entry is FAILED */
#define FERRY_NEIGH_RETRY_NS 1000000000ull     /* between two requests for one next hop */

struct ferry_neigh_table;

enum ferry_neigh_result {
	FERRY_NEIGH_HIT,     /* *mac is the next hop's */
	FERRY_NEIGH_MISS,    /* not resolved (yet): hold the packet */
	FERRY_NEIGH_FAILED,  /* retries ran out: drop the packet */
};

struct ferry_neigh_table *ferry_neigh_create(int socket);
void ferry_neigh_destroy(struct ferry_neigh_table *t);
/* 0 leaves a value as it is */
void ferry_neigh_set_options(struct ferry_neigh_table *t, uint32_t timeout_s, uint32_t retries);
uint32_t ferry_neigh_retries(const struct ferry_neigh_table *t);

/* Looks up ip on port for a packet about to be sent (any lcore).
 *  HIT: *mac set. *ask is set when the entry passed half its timeout and no request
 *       went out in the last retry interval: the caller sends one (the entry is still
 *       used meanwhile), so a live neighbour never expires.
 *  MISS: an INCOMPLETE entry exists (made now if there was none); *ask is set when a
 *       request is due (none in the last retry interval). After `retries` requests
 *       without an answer the entry becomes FAILED.
 *  FAILED: *ask is set (and the entry turns INCOMPLETE again) once a retry interval
 *       has passed since it failed.
 * With no free slot: MISS with *ask false (counted by the caller as a miss). */
enum ferry_neigh_result ferry_neigh_lookup(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, uint64_t now_ns,
					   struct rte_ether_addr *mac, bool *ask);

/* An ARP packet told us ip is at mac on port (any lcore). Updates an existing
 * non-static entry (confirming it: REACHABLE, timestamp now); creates one only when
 * create is true (a reply to our request, a request addressed to us). Returns true
 * when an entry changed or was created. */
bool ferry_neigh_learn(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, const struct rte_ether_addr *mac,
		       uint64_t now_ns, bool create);

/* Configuration (main lcore): 0, or -ENOSPC when the table is full. */
int ferry_neigh_set_static(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip, const struct rte_ether_addr *mac);
/* 0, or -ENOENT */
int ferry_neigh_del(struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip);
/* Removes learned entries unconfirmed for the timeout, and FAILED/INCOMPLETE ones
 * idle that long (main lcore, now and then). Returns how many. */
uint32_t ferry_neigh_age(struct ferry_neigh_table *t, uint64_t now_ns);

/* Copies up to max entries from slot *cursor on (0 to start) into out[] (flags from
 * enum ferry_neigh_flag, age_ms since last confirmed); *cursor moves past them and
 * *done tells whether the walk reached the end. Returns how many were written. */
uint32_t ferry_neigh_dump(const struct ferry_neigh_table *t, uint32_t *cursor, uint64_t now_ns,
			  struct ferry_neigh_entry *out, uint32_t max, bool *done);
uint32_t ferry_neigh_count(const struct ferry_neigh_table *t);

#endif
