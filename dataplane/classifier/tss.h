/* Tuple space search: per OpenFlow table, one hash table per distinct mask
 * (subtable), visited in order of the best priority each holds, stopping as soon as
 * no later subtable can beat the match in hand. Only the 64-bit words of the key a
 * subtable's mask uses are hashed and compared (OVS's miniflow idea).
 *
 * One writer (the main lcore) and lock-free readers (workers): nodes are linked
 * with release stores, bucket arrays and subtable lists are replaced whole and the
 * old ones retired through the caller's RCU. Visibility of a rule is by version
 * (rule.h), not by being linked. */
#ifndef FERRY_TSS_H
#define FERRY_TSS_H

#include <stdbool.h>
#include <stdint.h>
#include "rule.h"
#include "obj_pool.h"

/* A rule in a subtable. The masked key words the subtable compares, and the priority,
 * are kept in the node so a visit reads one node, not node -> rule -> key. */
struct tss_node {
	struct tss_node *next;
	const struct ferry_rule *rule;
	uint32_t hash;
	uint16_t priority;
	uint16_t pad0;
	uint64_t words[]; /* the rule's key at the subtable's words[] */
};

struct tss_buckets {
	uint32_t mask;       /* n_buckets - 1 */
	struct tss_node *head[];
};

struct tss_subtable {
	struct tss_buckets *buckets;  /* published */
	uint16_t max_priority;        /* over linked rules; only grows until a rebuild */
	uint8_t n_words;
	uint8_t words[FERRY_KEY_WORDS];
	struct ferry_flow_key mask;
	/* writer only */
	uint16_t min_priority;        /* with max_priority: the range its rules span (may be wider) */
	uint32_t n_rules;
	uint32_t n_nodes;
};

struct tss_sublist {
	uint32_t n;
	struct tss_subtable *s[];
};

struct tss_table {
	struct tss_sublist *list; /* published, sorted by max_priority, best first */
};

/* Deferred frees: after a grace period the caller gives ptr back to pool, or
 * rte_frees it when pool is NULL. */
typedef void (*tss_retire_fn)(void *ctx, void *ptr, struct ferry_obj_pool *pool);

struct tss {
	struct tss_table table[FERRY_N_TABLES];
	tss_retire_fn retire;
	void *retire_ctx;
	struct ferry_obj_pool node_pool[FERRY_KEY_WORDS + 1]; /* by the subtable's n_words */
	uint64_t lookups_subtables; /* writer-side stat for tests: last lookup's visits */
};

void tss_init(struct tss *t, tss_retire_fn retire, void *ctx);
void tss_fini(struct tss *t);

/* Links a rule (its key already masked); 0 or -ENOMEM. */
int tss_insert(struct tss *t, struct ferry_rule *r);
/* Unlinks a rule no reader can see any more (after a grace period past its
 * remove_version becoming visible). The node is retired. */
void tss_remove(struct tss *t, struct ferry_rule *r);

/* The best rule visible at version for key in table (NULL on a miss). Reader side. */
const struct ferry_rule *tss_lookup(const struct tss *t, uint8_t table, const struct ferry_flow_key *key,
				    uint64_t version, uint32_t *subtables_visited);

/* Hash of the words a subtable's mask selects, over a key. */
uint32_t tss_hash_masked(const struct tss_subtable *s, const struct ferry_flow_key *key);

/* Writer side: the rules of subtable s whose key equals key on s's mask (one hash
 * chain), each given to pick until it returns true; that rule, or NULL. */
const struct ferry_rule *tss_subtable_find(const struct tss_subtable *s, const struct ferry_flow_key *key,
					   bool (*pick)(const struct ferry_rule *r, const void *arg), const void *arg);

/* Subtables of a table (reader view). */
uint32_t tss_n_subtables(const struct tss *t, uint8_t table);

#endif
