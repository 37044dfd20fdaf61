#include "flow_table.h"

#include <stdio.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

int ferry_flow_table_init(struct ferry_flow_table *ft, uint32_t max_flows, uint16_t n_ports,
			  struct rte_rcu_qsbr *qsv, ferry_slot_reset_fn reset_slot, void *reset_arg)
{
	static unsigned instance;
	char name[RTE_HASH_NAMESIZE];

	memset(ft, 0, sizeof(*ft));
	ft->max_flows = max_flows;
	ft->n_ports = n_ports;
	ft->qsv = qsv;
	ft->reset_slot = reset_slot;
	ft->reset_arg = reset_arg;
	ft->rules = rte_zmalloc("ferry_rules", (size_t)max_flows * sizeof(*ft->rules), 0);
	ft->free_slots = rte_malloc("ferry_free", (size_t)max_flows * sizeof(uint32_t), 0);
	ft->pending = rte_malloc("ferry_pend", (size_t)max_flows * sizeof(uint32_t), 0);
	snprintf(name, sizeof(name), "ferry_flows_%u", instance++);
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = max_flows < 8 ? 8 : max_flows,
		.key_len = sizeof(uint64_t),
		.hash_func = rte_jhash,
		.socket_id = (int)rte_socket_id(),
	};
	ft->by_id = rte_hash_create(&hp);
	if (!ft->rules || !ft->free_slots || !ft->pending || !ft->by_id) {
		ferry_flow_table_fini(ft);
		return -ENOMEM;
	}
	/* pop order 0, 1, 2...: slots stay dense */
	for (uint32_t i = 0; i < max_flows; i++)
		ft->free_slots[i] = max_flows - 1 - i;
	ft->n_free = max_flows;
	ft->published = ferry_classifier_build(ft->rules, 0, n_ports);
	return ft->published ? 0 : -ENOMEM;
}

void ferry_flow_table_fini(struct ferry_flow_table *ft)
{
	ferry_classifier_free(ft->published);
	rte_hash_free(ft->by_id);
	rte_free(ft->rules);
	rte_free(ft->free_slots);
	rte_free(ft->pending);
	memset(ft, 0, sizeof(*ft));
}

static const char *validate(const struct ferry_flow_table *ft, const struct ferry_rule *r, int *status)
{
	*status = FERRY_STATUS_EINVAL;
	if (r->action != FERRY_FLOW_ACTION_DROP && r->action != FERRY_FLOW_ACTION_OUTPUT)
		return "action: unknown action";
	if (r->table_id != 0) {
		*status = FERRY_STATUS_EUNSUPPORTED;
		return "table_id: only table 0 exists in this dataplane";
	}
	if (r->in_port != FERRY_PORT_ANY && r->in_port >= ft->n_ports) {
		*status = FERRY_STATUS_ENOPORT;
		return "in_port: no such port";
	}
	if (r->action == FERRY_FLOW_ACTION_OUTPUT && r->out_port >= ft->n_ports) {
		*status = FERRY_STATUS_ENOPORT;
		return "out_port: no such port";
	}
	*status = FERRY_STATUS_OK;
	return NULL;
}

int ferry_flow_table_add(struct ferry_flow_table *ft, const struct ferry_rule *rule,
			 uint32_t *slot, const char **why)
{
	int status;
	*why = validate(ft, rule, &status);
	if (status != FERRY_STATUS_OK)
		return status;

	void *data;
	uint32_t s;
	if (rte_hash_lookup_data(ft->by_id, &rule->id, &data) >= 0) {
		s = (uint32_t)(uintptr_t)data; /* replace in place; counters kept, as OVS does */
	} else {
		if (ft->n_free == 0) {
			*why = "flow table full (--max-flows)";
			return FERRY_STATUS_ENOSPC;
		}
		s = ft->free_slots[--ft->n_free];
		if (rte_hash_add_key_data(ft->by_id, &rule->id, (void *)(uintptr_t)s) < 0) {
			ft->free_slots[ft->n_free++] = s;
			*why = "flow id index full";
			return FERRY_STATUS_ENOSPC;
		}
		/* the slot is unreachable by workers (never published or reclaimed after a
		 * grace period), so its counters can be reset without racing a writer */
		if (ft->reset_slot)
			ft->reset_slot(ft->reset_arg, s);
		ft->n_active++;
	}
	ft->rules[s] = *rule;
	ft->rules[s].slot = s;
	ft->rules[s].in_use = 1;
	ft->dirty = true;
	*slot = s;
	return FERRY_STATUS_OK;
}

static void remove_slot(struct ferry_flow_table *ft, uint32_t s)
{
	rte_hash_del_key(ft->by_id, &ft->rules[s].id);
	ft->rules[s].in_use = 0;
	ft->pending[ft->n_pending++] = s;
	ft->n_active--;
	ft->dirty = true;
}

int ferry_flow_table_del(struct ferry_flow_table *ft, uint64_t id)
{
	void *data;
	if (rte_hash_lookup_data(ft->by_id, &id, &data) < 0)
		return FERRY_STATUS_ENOENT;
	remove_slot(ft, (uint32_t)(uintptr_t)data);
	return FERRY_STATUS_OK;
}

void ferry_flow_table_clear(struct ferry_flow_table *ft)
{
	for (uint32_t s = 0; s < ft->max_flows; s++)
		if (ft->rules[s].in_use)
			remove_slot(ft, s);
}

int ferry_flow_table_publish(struct ferry_flow_table *ft)
{
	if (!ft->dirty)
		return FERRY_STATUS_OK;
	struct ferry_classifier *next = ferry_classifier_build(ft->rules, ft->max_flows, ft->n_ports);
	if (next == NULL)
		return FERRY_STATUS_EINTERNAL;
	struct ferry_classifier *old = ft->published;
	__atomic_store_n(&ft->published, next, __ATOMIC_RELEASE);
	if (ft->qsv != NULL)
		rte_rcu_qsbr_synchronize(ft->qsv, RTE_QSBR_THRID_INVALID);
	ferry_classifier_free(old);
	while (ft->n_pending > 0)
		ft->free_slots[ft->n_free++] = ft->pending[--ft->n_pending];
	ft->generation++;
	ft->dirty = false;
	return FERRY_STATUS_OK;
}
