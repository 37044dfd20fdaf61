/* The dataplane's flows, owned by the main lcore: ids, stats slots, the classifier,
 * and the versions that make a batch of changes visible at once.
 *
 * Every change is staged first (its rules linked but invisible) and then committed:
 * commit stamps the staged adds and removes with version V+1 and publishes V+1 with
 * one release store, so workers (who read the version once per burst) see all of a
 * batch or none of it. A bundle is a staging that lives across requests until
 * BUNDLE_COMMIT; BUNDLE_ABORT, or a failed op inside it, rolls every op back from an
 * undo log. Removed rules are unlinked one grace period after the version that hides
 * them, and freed one grace period after that. */
#ifndef FERRY_FLOW_TABLE_H
#define FERRY_FLOW_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_rcu_qsbr.h>
#include "rule.h"
#include "tss.h"

typedef void (*ferry_slot_reset_fn)(void *arg, uint32_t slot);

struct ferry_flow_op {          /* one staged change, with what it replaced */
	struct ferry_rule *added;   /* new object, or NULL for a delete */
	struct ferry_rule *removed; /* object it hides at commit, or NULL */
	uint64_t id;
	uint32_t slot;
	bool slot_new;              /* slot allocated by this op */
	bool id_was_mapped;
};

struct ferry_staging {
	struct ferry_flow_op *ops;
	uint32_t n_ops;
	uint32_t cap;
	bool failed;
	bool sweep; /* bundle only: at commit, remove every flow the bundle did not add */
	char why[FERRY_ERR_MSG_LEN];
};

/* an object waiting out a grace period: then back to pool, or rte_free'd when NULL */
struct ferry_limbo {
	void *ptr;
	struct ferry_obj_pool *pool;
};

struct ferry_flow_table {
	/* read by workers */
	uint64_t visible_version __rte_cache_aligned;
	/* 0 when no visible flow matches a header field or rewrites a header: results then
	 * depend on in_port alone and workers skip parsing. Raised before the version that
	 * needs it, lowered only a grace period after the last such flow left. */
	uint32_t headers_needed;
	struct tss tss;
	/* main lcore only */
	struct ferry_rule **slot_rule __rte_cache_aligned; /* [max_flows]: newest object per slot */
	uint32_t max_flows;
	uint32_t n_active;          /* ids mapped */
	uint16_t n_ports;
	struct rte_hash *by_id;     /* id -> slot */
	uint32_t *free_slots;
	uint32_t n_free;
	struct ferry_staging batch;  /* plain requests, committed per drained batch */
	struct ferry_staging bundle; /* open bundle */
	bool bundle_open;
	struct rte_rcu_qsbr *qsv;   /* NULL: no workers (tests) */
	ferry_slot_reset_fn reset_slot;
	void *reset_arg;
	/* rules (every one, live or retired) come from here */
	struct ferry_obj_pool rule_pool;
	/* retirement: objects freed, rules unlinked, slots released after grace periods */
	struct ferry_limbo *limbo;
	uint32_t n_limbo, cap_limbo;
	struct ferry_rule **dead;
	uint32_t n_dead, cap_dead;
	uint32_t *dead_slots;
	uint32_t n_dead_slots;
	uint64_t commits;
	uint32_t n_header_rules;    /* live rules that need parsed headers */
	uint32_t n_timed_rules;     /* live rules with an idle or hard timeout */
};

int ferry_flow_table_init(struct ferry_flow_table *ft, uint32_t max_flows, uint16_t n_ports,
			  struct rte_rcu_qsbr *qsv, ferry_slot_reset_fn reset_slot, void *reset_arg);
void ferry_flow_table_fini(struct ferry_flow_table *ft);

/* Stages an add or replace (same id) of a validated rule template; in_bundle selects
 * the open bundle. FERRY_STATUS_* with a reason naming the field; the slot on OK. */
int ferry_flow_table_add(struct ferry_flow_table *ft, const struct ferry_rule *tmpl, bool in_bundle,
			 uint32_t *slot, char *why, size_t whylen);
int ferry_flow_table_del(struct ferry_flow_table *ft, uint64_t id, bool in_bundle);
/* Stages deleting every flow (plain batch only). Returns how many. */
uint32_t ferry_flow_table_clear(struct ferry_flow_table *ft);
/* Makes the open bundle (opening it) replace the whole table: at its commit every flow it
 * did not add goes, in the same version as its adds. A flow it re-adds under the same id
 * keeps its slot and counters. This is how a restarted control service reconciles: the
 * workers see the old table, then the desired one, never an empty table in between. */
int ferry_flow_table_sweep_bundle(struct ferry_flow_table *ft, char *why, size_t whylen);

/* Makes the plain batch visible (one version). OK or EINTERNAL. */
int ferry_flow_table_commit_batch(struct ferry_flow_table *ft);
/* Bundle: commit (EBUNDLE and rolled back when an op failed), or abort. */
int ferry_flow_table_commit_bundle(struct ferry_flow_table *ft, char *why, size_t whylen);
void ferry_flow_table_abort_bundle(struct ferry_flow_table *ft);
void ferry_flow_table_bundle_fail(struct ferry_flow_table *ft, const char *why);

/* Waits for the workers and frees what the last commits retired. */
void ferry_flow_table_reclaim(struct ferry_flow_table *ft);

/* The current visible rule for id, or NULL (main lcore). */
const struct ferry_rule *ferry_flow_table_get(const struct ferry_flow_table *ft, uint64_t id);

/* Does this rule look at or rewrite packet headers? (metadata, registers, tunnel and
 * ct fields do not come from the headers of an untracked, non-tunnel packet) */
bool ferry_rule_needs_headers(const struct ferry_rule *r);

static inline uint64_t ferry_flow_table_version(const struct ferry_flow_table *ft)
{
	return __atomic_load_n(&ft->visible_version, __ATOMIC_ACQUIRE);
}

#endif
