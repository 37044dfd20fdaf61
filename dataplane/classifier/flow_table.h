/* The dataplane's rule set, owned by the main lcore: rules by id, each in a stats slot,
 * changed a batch at a time and published to the workers as a freshly built classifier.
 * Workers read the published pointer once per burst and report quiescence every loop
 * (rte_rcu_qsbr), so an old table, and the slots of deleted rules, are reclaimed only
 * when no worker can still hold them. */
#ifndef FERRY_FLOW_TABLE_H
#define FERRY_FLOW_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_rcu_qsbr.h>
#include "classifier.h"

typedef void (*ferry_slot_reset_fn)(void *arg, uint32_t slot);

struct ferry_flow_table {
	/* read by workers */
	struct ferry_classifier *published __rte_cache_aligned;
	/* main lcore only */
	struct ferry_rule *rules __rte_cache_aligned; /* [max_flows], indexed by slot */
	uint32_t max_flows;
	uint32_t n_active;
	uint32_t generation;
	uint16_t n_ports;
	bool dirty;
	struct rte_hash *by_id;
	uint32_t *free_slots;  /* stack */
	uint32_t n_free;
	uint32_t *pending;     /* slots freed since the last publish */
	uint32_t n_pending;
	struct rte_rcu_qsbr *qsv; /* NULL: no workers to wait for (tests) */
	ferry_slot_reset_fn reset_slot;
	void *reset_arg;
};

int ferry_flow_table_init(struct ferry_flow_table *ft, uint32_t max_flows, uint16_t n_ports,
			  struct rte_rcu_qsbr *qsv, ferry_slot_reset_fn reset_slot, void *reset_arg);
void ferry_flow_table_fini(struct ferry_flow_table *ft);

/* Adds or replaces (same id) a rule; validates it. Returns a FERRY_STATUS_* and the slot. */
int ferry_flow_table_add(struct ferry_flow_table *ft, const struct ferry_rule *rule,
			 uint32_t *slot, const char **why);
int ferry_flow_table_del(struct ferry_flow_table *ft, uint64_t id);
void ferry_flow_table_clear(struct ferry_flow_table *ft);

/* Makes every change since the last call visible to all workers at once, then
 * reclaims what they can no longer see. FERRY_STATUS_OK or EINTERNAL (no memory: the
 * previous table stays in force and the next publish tries again). */
int ferry_flow_table_publish(struct ferry_flow_table *ft);

static inline const struct ferry_classifier *
ferry_flow_table_current(const struct ferry_flow_table *ft)
{
	return __atomic_load_n(&ft->published, __ATOMIC_ACQUIRE);
}

#endif
