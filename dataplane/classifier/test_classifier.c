/* The in_port classifier against a linear scan of the same rules, and the flow
 * table's slot bookkeeping. */
#include <string.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "classifier.h"
#include "flow_table.h"

#define N_PORTS 6

/* Reference: the rule a packet from port hits, by scanning every rule. */
static const struct ferry_rule *linear(const struct ferry_rule *rules, uint32_t n, uint16_t port)
{
	const struct ferry_rule *best = NULL;
	for (uint32_t i = 0; i < n; i++) {
		const struct ferry_rule *r = &rules[i];
		if (!r->in_use || r->table_id != 0 || (r->in_port != FERRY_PORT_ANY && r->in_port != port))
			continue;
		if (best == NULL || r->priority > best->priority ||
		    (r->priority == best->priority && r->in_port != FERRY_PORT_ANY &&
		     best->in_port == FERRY_PORT_ANY))
			best = r;
	}
	return best;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void test_priorities(void)
{
	struct ferry_rule rules[3] = {
		{ .id = 1, .priority = 10, .in_port = FERRY_PORT_ANY, .action = FERRY_FLOW_ACTION_DROP, .in_use = 1 },
		{ .id = 2, .priority = 20, .in_port = 1, .action = FERRY_FLOW_ACTION_OUTPUT, .out_port = 2, .in_use = 1 },
		{ .id = 3, .priority = 10, .in_port = 3, .action = FERRY_FLOW_ACTION_OUTPUT, .out_port = 0, .in_use = 1 },
	};
	struct ferry_classifier *cls = ferry_classifier_build(rules, 3, N_PORTS);
	const struct ferry_rule *out[5];
	uint16_t ports[5] = { 0, 1, 3, 5, 200 };
	for (int i = 0; i < 5; i++)
		CHECK_EQ(ferry_classifier_lookup_burst(cls, ports[i], NULL, 1, &out[i]), FERRY_CLS_UNIFORM);
	CHECK(out[0] && out[0]->id == 1);
	CHECK(out[1] && out[1]->id == 2);
	CHECK(out[2] && out[2]->id == 3); /* exact in_port beats the wildcard at equal priority */
	CHECK(out[3] && out[3]->id == 1);
	CHECK(out[4] == NULL);            /* a port the table does not know misses */
	CHECK_EQ(ferry_classifier_size(cls), 3);
	ferry_classifier_free(cls);
}

static void test_random_against_linear_scan(void)
{
	enum { CASES = 2000, MAX_RULES = 40 };
	unsigned mismatches = 0;
	for (int c = 0; c < CASES; c++) {
		struct ferry_rule rules[MAX_RULES];
		uint32_t n = 1 + rnd(MAX_RULES);
		memset(rules, 0, sizeof(rules));
		for (uint32_t i = 0; i < n; i++) {
			rules[i].id = i;
			rules[i].priority = rnd(4); /* few priorities: many ties */
			rules[i].in_port = rnd(3) == 0 ? FERRY_PORT_ANY : (uint16_t)rnd(N_PORTS);
			rules[i].in_use = rnd(8) != 0;
			rules[i].table_id = rnd(10) == 0 ? 1 : 0;
		}
		/* equal (priority, match) cannot coexist: the id is derived from them */
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t j = 0; j < i; j++)
				if (rules[j].in_use && rules[i].priority == rules[j].priority &&
				    rules[i].in_port == rules[j].in_port && rules[i].table_id == rules[j].table_id)
					rules[i].in_use = 0;
		struct ferry_classifier *cls = ferry_classifier_build(rules, n, N_PORTS);
		for (uint16_t p = 0; p < N_PORTS; p++) {
			const struct ferry_rule *got;
			ferry_classifier_lookup_burst(cls, p, NULL, 1, &got);
			const struct ferry_rule *want = linear(rules, n, p);
			if ((got == NULL) != (want == NULL) || (got && got->id != want->id))
				mismatches++;
		}
		ferry_classifier_free(cls);
	}
	CHECK_EQ(mismatches, 0);
}

static unsigned resets;
static void count_reset(void *arg, uint32_t slot) { (void)arg; (void)slot; resets++; }

static void test_flow_table_slots(void)
{
	struct ferry_flow_table ft;
	CHECK(ferry_flow_table_init(&ft, 4, N_PORTS, NULL, count_reset, NULL) == 0);
	const char *why;
	uint32_t slot[5];
	for (uint64_t i = 0; i < 4; i++) {
		struct ferry_rule r = { .id = i + 1, .priority = (uint32_t)i, .in_port = 0,
					.action = FERRY_FLOW_ACTION_DROP };
		CHECK_EQ(ferry_flow_table_add(&ft, &r, &slot[i], &why), FERRY_STATUS_OK);
	}
	struct ferry_rule r5 = { .id = 5, .in_port = 0, .action = FERRY_FLOW_ACTION_DROP };
	CHECK_EQ(ferry_flow_table_add(&ft, &r5, &slot[4], &why), FERRY_STATUS_ENOSPC);
	CHECK(why != NULL);
	CHECK_EQ(resets, 4);
	CHECK_EQ(ferry_flow_table_publish(&ft), FERRY_STATUS_OK);
	CHECK_EQ(ferry_classifier_size(ferry_flow_table_current(&ft)), 4);
	/* a deleted slot is reused only after the publish that retires it */
	CHECK_EQ(ferry_flow_table_del(&ft, 2), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_add(&ft, &r5, &slot[4], &why), FERRY_STATUS_ENOSPC);
	CHECK_EQ(ferry_flow_table_publish(&ft), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_add(&ft, &r5, &slot[4], &why), FERRY_STATUS_OK);
	CHECK_EQ(slot[4], slot[1]);
	CHECK_EQ(resets, 5);
	CHECK_EQ(ferry_flow_table_publish(&ft), FERRY_STATUS_OK);
	CHECK_EQ(ft.generation, 3);
	/* publishing with nothing changed does not rebuild */
	CHECK_EQ(ferry_flow_table_publish(&ft), FERRY_STATUS_OK);
	CHECK_EQ(ft.generation, 3);
	ferry_flow_table_fini(&ft);
}

int main(void)
{
	ferry_test_eal_init("classifier", NULL, 0);
	RUN(test_priorities);
	RUN(test_random_against_linear_scan);
	RUN(test_flow_table_slots);
	rte_eal_cleanup();
	return ftest_finish();
}
