/* The foundation's classifier: table 0 matched on in_port. Building resolves, per
 * port, the rule a packet from that port hits, so a lookup is one array load. */
#include "classifier.h"

#include <rte_malloc.h>

struct ferry_classifier {
	uint32_t n_rules;
	uint16_t n_ports;
	const struct ferry_rule *by_port[RTE_MAX_ETHPORTS];
	struct ferry_rule rules[]; /* private copies: the builder's array keeps changing */
};

/* Does a beat b for the same packet? Priority first; on a tie the exact in_port. */
static int rule_beats(const struct ferry_rule *a, const struct ferry_rule *b)
{
	if (b == NULL)
		return 1;
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->in_port != FERRY_PORT_ANY && b->in_port == FERRY_PORT_ANY;
}

struct ferry_classifier *ferry_classifier_build(const struct ferry_rule *rules, uint32_t n,
						uint16_t n_ports)
{
	uint32_t in_use = 0;
	for (uint32_t i = 0; i < n; i++)
		in_use += rules[i].in_use && rules[i].table_id == 0;

	struct ferry_classifier *cls = rte_zmalloc("ferry_cls",
		sizeof(*cls) + (size_t)in_use * sizeof(struct ferry_rule), RTE_CACHE_LINE_SIZE);
	if (cls == NULL)
		return NULL;
	cls->n_ports = n_ports;
	for (uint32_t i = 0; i < n; i++) {
		if (!rules[i].in_use || rules[i].table_id != 0)
			continue;
		struct ferry_rule *r = &cls->rules[cls->n_rules++];
		*r = rules[i];
		for (uint16_t p = 0; p < n_ports && p < RTE_MAX_ETHPORTS; p++) {
			if (r->in_port != FERRY_PORT_ANY && r->in_port != p)
				continue;
			if (rule_beats(r, cls->by_port[p]))
				cls->by_port[p] = r;
		}
	}
	return cls;
}

void ferry_classifier_free(struct ferry_classifier *cls)
{
	rte_free(cls);
}

uint32_t ferry_classifier_size(const struct ferry_classifier *cls)
{
	return cls ? cls->n_rules : 0;
}

enum ferry_cls_result ferry_classifier_lookup_burst(const struct ferry_classifier *cls, uint16_t in_port,
						    struct rte_mbuf **pkts, uint16_t n,
						    const struct ferry_rule **out)
{
	(void)pkts;
	(void)n;
	/* the only field this table matches is the burst's in_port */
	out[0] = likely(in_port < RTE_MAX_ETHPORTS) ? cls->by_port[in_port] : NULL;
	return FERRY_CLS_UNIFORM;
}
