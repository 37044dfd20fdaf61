/* Tuple space search against a linear scan of the same rules, on 100,000 random
 * (flow set, packet) cases; and the flow table's versions: staged changes invisible
 * until committed, bundles all or nothing, ties refused, slots reused only after
 * their grace period. */
#include <stdlib.h>
#include <string.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "flow_table.h"
#include "obj_pool.h"
#include "tss.h"
#include <rte_hash_crc.h>

#define N_PORTS 4
#define MAX_FLOWS 4096

static struct ferry_flow_table ft;
static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* ---- random masks and keys over a few fields, with small value domains so that
 * packets do hit rules and masks overlap ---- */

static void set_prefix(uint8_t *m, unsigned bits)
{
	memset(m, 0, 4);
	for (unsigned i = 0; i < bits; i++)
		m[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

static void random_mask(struct ferry_flow_key *m)
{
	memset(m, 0, sizeof(*m));
	if (rnd(2)) m->in_port = UINT32_MAX;
	if (rnd(2)) m->eth_type = 0xffff;
	if (rnd(2)) set_prefix(m->nw_src, 8 * rnd(5));
	if (rnd(3) == 0) set_prefix(m->nw_dst, 16 + 8 * rnd(3));
	if (rnd(3) == 0) m->nw_proto = 0xff;
	if (rnd(3) == 0) m->tp_dst = rnd(2) ? 0xffff : 0xff00;
	if (rnd(4) == 0) m->reg[0] = 0x0f;
	if (rnd(4) == 0) m->metadata = 0xff00000000000000ull;
	if (rnd(5) == 0) m->vlan_tci = 0x1fff;
}

static void random_key(struct ferry_flow_key *k)
{
	memset(k, 0, sizeof(*k));
	k->in_port = rnd(N_PORTS);
	k->eth_type = rnd(2) ? 0x0800 : 0x86dd;
	k->nw_src[0] = (uint8_t)(10 + rnd(2));
	k->nw_src[1] = (uint8_t)rnd(3);
	k->nw_src[2] = (uint8_t)rnd(2);
	k->nw_src[3] = (uint8_t)rnd(4);
	k->nw_dst[0] = 192;
	k->nw_dst[1] = 168;
	k->nw_dst[2] = (uint8_t)rnd(3);
	k->nw_dst[3] = (uint8_t)rnd(3);
	k->nw_proto = rnd(2) ? 6 : 17;
	k->tp_dst = (uint16_t)(rnd(3) << 8 | rnd(2));
	k->reg[0] = rnd(4);
	k->metadata = (uint64_t)rnd(3) << 56;
	k->vlan_tci = rnd(2) ? 0 : (uint16_t)(0x1000 | rnd(3));
}

static void mask_key(struct ferry_flow_key *k, const struct ferry_flow_key *m)
{
	uint64_t *kw = (uint64_t *)(void *)k;
	const uint64_t *mw = ferry_key_words(m);
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++)
		kw[w] &= mw[w];
}

static int matches(const struct ferry_rule *r, const struct ferry_flow_key *k)
{
	const uint64_t *kw = ferry_key_words(k), *rw = ferry_key_words(&r->key), *mw = ferry_key_words(&r->mask);
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++)
		if ((kw[w] & mw[w]) != rw[w])
			return 0;
	return 1;
}

static int overlap(const struct ferry_rule *a, const struct ferry_rule *b)
{
	const uint64_t *ak = ferry_key_words(&a->key), *am = ferry_key_words(&a->mask);
	const uint64_t *bk = ferry_key_words(&b->key), *bm = ferry_key_words(&b->mask);
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++)
		if ((ak[w] ^ bk[w]) & am[w] & bm[w])
			return 0;
	return 1;
}

static struct ferry_rule accepted[512];

static void test_random_against_linear_scan(void)
{
	enum { SETS = 1000, PACKETS = 100 };
	unsigned mismatches = 0, wrong_ties = 0, cases = 0, hits = 0;
	static struct ferry_rule r;
	char why[128];
	for (int set = 0; set < SETS; set++) {
		ferry_flow_table_clear(&ft);
		ferry_flow_table_commit_batch(&ft);
		struct ferry_flow_key masks[10];
		unsigned n_masks = 1 + rnd(10), n_acc = 0;
		for (unsigned i = 0; i < n_masks; i++)
			random_mask(&masks[i]);
		unsigned n_rules = 1 + rnd(200);
		for (unsigned i = 0; i < n_rules && n_acc < 512; i++) {
			memset(&r, 0, sizeof(r));
			r.mask = masks[rnd(n_masks)];
			random_key(&r.key);
			mask_key(&r.key, &r.mask);
			r.priority = (uint16_t)rnd(60);
			r.table_id = (uint8_t)rnd(2);
			/* the id stands for (table, priority, match), as ferry-control derives it */
			r.id = rte_hash_crc(&r.key, sizeof(r.key), rte_hash_crc(&r.mask, sizeof(r.mask),
					    (uint32_t)r.priority << 8 | r.table_id)) | (uint64_t)r.priority << 32 |
			       (uint64_t)r.table_id << 48;
			uint32_t slot;
			int st = ferry_flow_table_add(&ft, &r, false, &slot, why, sizeof(why));
			/* a refusal must be a real tie, an acceptance must not create one */
			int tie = 0;
			for (unsigned j = 0; j < n_acc; j++)
				if (accepted[j].table_id == r.table_id && accepted[j].priority == r.priority &&
				    accepted[j].id != r.id && overlap(&accepted[j], &r))
					tie = 1;
			if (st == FERRY_STATUS_EEXIST) {
				wrong_ties += !tie;
				continue;
			}
			wrong_ties += tie;
			if (st != FERRY_STATUS_OK)
				continue;
			unsigned j;
			for (j = 0; j < n_acc && accepted[j].id != r.id; j++)
				;
			accepted[j] = r; /* a replace of the same id keeps one entry */
			if (j == n_acc)
				n_acc++;
		}
		ferry_flow_table_commit_batch(&ft);
		uint64_t v = ferry_flow_table_version(&ft);
		for (int p = 0; p < PACKETS; p++) {
			struct ferry_flow_key k;
			random_key(&k);
			uint8_t table = (uint8_t)rnd(2);
			const struct ferry_rule *want = NULL;
			for (unsigned j = 0; j < n_acc; j++)
				if (accepted[j].table_id == table && matches(&accepted[j], &k) &&
				    (want == NULL || accepted[j].priority > want->priority))
					want = &accepted[j];
			const struct ferry_rule *got = tss_lookup(&ft.tss, table, &k, v, NULL);
			if ((got == NULL) != (want == NULL) || (got && got->id != want->id))
				mismatches++;
			hits += want != NULL;
			cases++;
		}
	}
	/* every rule and node of those 1000 tables went back to its pool */
	CHECK(ft.rule_pool.in_use > 0 && ft.rule_pool.n_chunks > 0);
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
	ferry_flow_table_reclaim(&ft);
	CHECK_EQ(ft.rule_pool.in_use, 0);
	uint64_t nodes = 0;
	for (unsigned w = 0; w <= FERRY_KEY_WORDS; w++)
		nodes += ft.tss.node_pool[w].in_use;
	CHECK_EQ(nodes, 0);
	CHECK_EQ(cases, SETS * PACKETS);
	CHECK_EQ(mismatches, 0);
	CHECK_EQ(wrong_ties, 0);
	CHECK(hits > cases / 10); /* the domains are small enough that rules really match */
	printf("  %u cases, %u hits\n", cases, hits);
}

/* ---- versions ---- */

static struct ferry_rule mk(uint64_t id, uint16_t prio, uint32_t in_port)
{
	struct ferry_rule r;
	memset(&r, 0, sizeof(r));
	r.id = id;
	r.priority = prio;
	r.key.in_port = in_port;
	r.mask.in_port = UINT32_MAX;
	return r;
}

static const struct ferry_rule *lookup_port(uint32_t port)
{
	struct ferry_flow_key k;
	memset(&k, 0, sizeof(k));
	k.in_port = port;
	return tss_lookup(&ft.tss, 0, &k, ferry_flow_table_version(&ft), NULL);
}

static void test_staged_invisible_until_commit(void)
{
	char why[128];
	uint32_t slot;
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
	struct ferry_rule a = mk(1, 10, 1);
	CHECK_EQ(ferry_flow_table_add(&ft, &a, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK(lookup_port(1) == NULL);
	uint64_t v = ferry_flow_table_version(&ft);
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(ferry_flow_table_version(&ft), v + 1);
	CHECK(lookup_port(1) && lookup_port(1)->id == 1);
	/* replace: same slot, new object, old one gone after the commit */
	struct ferry_rule a2 = mk(1, 10, 1);
	a2.cookie = 77;
	uint32_t slot2;
	CHECK_EQ(ferry_flow_table_add(&ft, &a2, false, &slot2, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(slot2, slot);
	CHECK(lookup_port(1) && lookup_port(1)->cookie == 0);
	ferry_flow_table_commit_batch(&ft);
	CHECK(lookup_port(1) && lookup_port(1)->cookie == 77);
	CHECK_EQ(ft.n_active, 1);
}

static void test_ties_are_refused(void)
{
	char why[128];
	uint32_t slot;
	struct ferry_rule wide = mk(50, 10, 0);
	wide.mask.in_port = 0;
	wide.key.in_port = 0; /* every port, priority 10: overlaps rule 1 */
	CHECK_EQ(ferry_flow_table_add(&ft, &wide, false, &slot, why, sizeof(why)), FERRY_STATUS_EEXIST);
	CHECK(strstr(why, "priority") != NULL);
	wide.priority = 11;
	CHECK_EQ(ferry_flow_table_add(&ft, &wide, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	ferry_flow_table_commit_batch(&ft);
	CHECK(lookup_port(1)->id == 50);
	CHECK_EQ(ferry_flow_table_del(&ft, 50, false), FERRY_STATUS_OK);
	ferry_flow_table_commit_batch(&ft);
	CHECK(lookup_port(1)->id == 1);
}

static void test_bundle_all_or_nothing(void)
{
	char why[128];
	uint32_t slot;
	struct ferry_rule b = mk(2, 10, 2), c = mk(3, 10, 3);
	CHECK_EQ(ferry_flow_table_add(&ft, &b, true, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_del(&ft, 1, true), FERRY_STATUS_OK);
	/* plain changes wait for the bundle */
	CHECK_EQ(ferry_flow_table_add(&ft, &c, false, &slot, why, sizeof(why)), FERRY_STATUS_EBUNDLE);
	ferry_flow_table_commit_batch(&ft);
	CHECK(lookup_port(2) == NULL);
	CHECK(lookup_port(1) != NULL);
	uint64_t v = ferry_flow_table_version(&ft);
	CHECK_EQ(ferry_flow_table_commit_bundle(&ft, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_version(&ft), v + 1); /* one version for the whole bundle */
	CHECK(lookup_port(2) && lookup_port(2)->id == 2);
	CHECK(lookup_port(1) == NULL);

	/* a failing op rolls the whole bundle back, the replaced and deleted flows included */
	struct ferry_rule b2 = mk(2, 10, 2), d = mk(4, 10, 0);
	b2.cookie = 9;
	CHECK_EQ(ferry_flow_table_add(&ft, &b2, true, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_add(&ft, &d, true, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_del(&ft, 4, true), FERRY_STATUS_OK);
	ferry_flow_table_bundle_fail(&ft, "actions[0]: output port 9 does not exist");
	struct ferry_rule e = mk(5, 10, 3);
	CHECK_EQ(ferry_flow_table_add(&ft, &e, true, &slot, why, sizeof(why)), FERRY_STATUS_EBUNDLE);
	CHECK_EQ(ferry_flow_table_commit_bundle(&ft, why, sizeof(why)), FERRY_STATUS_EBUNDLE);
	CHECK(strstr(why, "port 9") != NULL);
	CHECK(lookup_port(2) && lookup_port(2)->cookie == 0);
	CHECK(lookup_port(0) == NULL);
	CHECK_EQ(ft.n_active, 1);
	CHECK(ferry_flow_table_get(&ft, 2) != NULL && ferry_flow_table_get(&ft, 4) == NULL);

	/* abort */
	CHECK_EQ(ferry_flow_table_del(&ft, 2, true), FERRY_STATUS_OK);
	ferry_flow_table_abort_bundle(&ft);
	CHECK(lookup_port(2) != NULL);
	CHECK_EQ(ferry_flow_table_add(&ft, &c, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	ferry_flow_table_commit_batch(&ft);
	CHECK(lookup_port(3) != NULL);
}

static void test_slots_and_capacity(void)
{
	struct ferry_flow_table small;
	char why[128];
	uint32_t s[4];
	CHECK(ferry_flow_table_init(&small, 3, N_PORTS, NULL, NULL, NULL) == 0);
	for (uint64_t i = 0; i < 3; i++) {
		struct ferry_rule r = mk(i + 1, (uint16_t)i, (uint32_t)i);
		CHECK_EQ(ferry_flow_table_add(&small, &r, false, &s[i], why, sizeof(why)), FERRY_STATUS_OK);
	}
	struct ferry_rule x = mk(9, 9, 0);
	CHECK_EQ(ferry_flow_table_add(&small, &x, false, &s[3], why, sizeof(why)), FERRY_STATUS_ENOSPC);
	CHECK(strstr(why, "max-flows") != NULL);
	ferry_flow_table_commit_batch(&small);
	CHECK_EQ(ferry_flow_table_del(&small, 2, false), FERRY_STATUS_OK);
	/* the slot of a deleted flow comes back only once its commit is done */
	CHECK_EQ(ferry_flow_table_add(&small, &x, false, &s[3], why, sizeof(why)), FERRY_STATUS_ENOSPC);
	ferry_flow_table_commit_batch(&small);
	CHECK_EQ(ferry_flow_table_add(&small, &x, false, &s[3], why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(s[3], s[1]);
	ferry_flow_table_fini(&small);
}

/* The timed-rule count lets the main lcore skip its expiry sweep when nothing can expire. */
static void test_timed_rules_are_counted(void)
{
	char why[128];
	uint32_t slot;
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(ft.n_timed_rules, 0);
	struct ferry_rule t = mk(60, 10, 1);
	t.idle_timeout = 5;
	CHECK_EQ(ferry_flow_table_add(&ft, &t, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	CHECK_EQ(ft.n_timed_rules, 0); /* staged: not yet live */
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(ft.n_timed_rules, 1);
	struct ferry_rule u = mk(60, 10, 1); /* the same flow without a timeout replaces it */
	CHECK_EQ(ferry_flow_table_add(&ft, &u, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(ft.n_timed_rules, 0);
	t.hard_timeout = 9;
	CHECK_EQ(ferry_flow_table_add(&ft, &t, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(ft.n_timed_rules, 1);
	CHECK_EQ(ferry_flow_table_del(&ft, 60, false), FERRY_STATUS_OK);
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(ft.n_timed_rules, 0);
}

static void test_subtables_visited_in_priority_order(void)
{
	char why[128];
	uint32_t slot;
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
	/* 8 masks; the best-priority subtable matching stops the search */
	for (unsigned i = 0; i < 8; i++) {
		struct ferry_rule r;
		memset(&r, 0, sizeof(r));
		r.id = 100 + i;
		r.priority = (uint16_t)(100 - i);
		set_prefix(r.mask.nw_src, 8 + i);
		r.key.nw_src[0] = 10;
		CHECK_EQ(ferry_flow_table_add(&ft, &r, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	}
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(tss_n_subtables(&ft.tss, 0), 8);
	struct ferry_flow_key k;
	memset(&k, 0, sizeof(k));
	k.nw_src[0] = 10;
	uint32_t visited = 0;
	const struct ferry_rule *r = tss_lookup(&ft.tss, 0, &k, ferry_flow_table_version(&ft), &visited);
	CHECK(r && r->id == 100);
	CHECK_EQ(visited, 1);
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
	CHECK_EQ(tss_n_subtables(&ft.tss, 0), 0); /* empty subtables go away */
}

/* A rule at nw_src a.b.c.d/len, priority 100, table 0 */
static struct ferry_rule prefix_rule(uint64_t id, uint8_t a, uint8_t b, uint8_t c, uint8_t d, unsigned len)
{
	struct ferry_rule r;
	memset(&r, 0, sizeof(r));
	r.id = id;
	r.priority = 100;
	r.key.eth_type = 0x0800;
	r.mask.eth_type = 0xffff;
	for (unsigned bit = 0; bit < len; bit++)
		r.mask.nw_src[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	const uint8_t addr[4] = { a, b, c, d };
	for (unsigned i = 0; i < 4; i++)
		r.key.nw_src[i] = addr[i] & r.mask.nw_src[i];
	return r;
}

/* Ties between nested masks are found by hash probes when there are fewer keys to try
 * than rules (flow_table.c, tie_by_probes): a /32 beside /24s (one probe), a /24 beside
 * 300 /32s (256 probes), a /31 beside them (two), and the scan otherwise. Each refusal
 * names the rule it overlaps; what overlaps nothing goes in. */
static void test_ties_between_nested_masks(void)
{
	char why[128];
	uint32_t slot;
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
	/* hosts 10.0.0.1-200 and 10.0.1.1-100 (never .0: a probe of the prefix's own key
	 * alone finds nothing) */
	for (unsigned i = 0; i < 300; i++) {
		struct ferry_rule h = prefix_rule(1000 + i, 10, 0, (uint8_t)(i / 200), (uint8_t)(1 + i % 200), 32);
		CHECK_EQ(ferry_flow_table_add(&ft, &h, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	}
	struct ferry_rule p = prefix_rule(1, 10, 0, 1, 0, 24); /* holds 10.0.1.0..99 */
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_EEXIST);
	CHECK(strstr(why, "00000000000004") != NULL); /* a host of 10.0.1.x: ids 1200..1299 (0x4b0..) */
	p = prefix_rule(2, 10, 0, 2, 0, 24);            /* no host in it */
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	p = prefix_rule(3, 10, 0, 0, 0, 31);            /* 10.0.0.0-1: host .1 */
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_EEXIST);
	CHECK(strstr(why, "00000000000003e8") != NULL); /* id 1000 */
	p = prefix_rule(4, 10, 0, 0, 202, 31);          /* 10.0.0.202-203: none */
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	p = prefix_rule(5, 10, 0, 0, 0, 16);            /* 2^16 keys, more than rules: the scan */
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_EEXIST);
	struct ferry_rule h = prefix_rule(6, 10, 0, 2, 7, 32); /* inside rule 2's /24 */
	CHECK_EQ(ferry_flow_table_add(&ft, &h, false, &slot, why, sizeof(why)), FERRY_STATUS_EEXIST);
	CHECK(strstr(why, "0000000000000002") != NULL);
	h = prefix_rule(7, 10, 0, 3, 7, 32);
	CHECK_EQ(ferry_flow_table_add(&ft, &h, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	/* a rule at another priority never ties */
	p = prefix_rule(8, 10, 0, 1, 0, 24);
	p.priority = 101;
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	/* the host deleted (staged): the /31 goes in */
	CHECK_EQ(ferry_flow_table_del(&ft, 1000, false), FERRY_STATUS_OK);
	p = prefix_rule(3, 10, 0, 0, 0, 31);
	CHECK_EQ(ferry_flow_table_add(&ft, &p, false, &slot, why, sizeof(why)), FERRY_STATUS_OK);
	ferry_flow_table_clear(&ft);
	ferry_flow_table_commit_batch(&ft);
}

/* A reserved pool hands out its objects from the chunks mapped ahead, carving them in
 * order, and maps more only past them; objects are distinct and inside their chunks. */
static void test_pool_reserve(void)
{
	struct ferry_obj_pool p;
	ferry_obj_pool_init(&p, 1000, 64);
	const uint64_t n = 3 * (uint64_t)p.per_chunk + 7; /* four chunks' worth */
	CHECK_EQ(ferry_obj_pool_reserve(&p, n), 0);
	CHECK_EQ(p.n_chunks, 4);
	CHECK_EQ(p.n_carved, 0);
	CHECK_EQ(ferry_obj_pool_reserve(&p, n), 0); /* already there: nothing more */
	CHECK_EQ(p.n_chunks, 4);
	uint8_t **objs = calloc(n + 1, sizeof(*objs));
	CHECK(objs != NULL);
	for (uint64_t i = 0; i < n; i++) {
		objs[i] = ferry_obj_pool_get(&p);
		CHECK(objs[i] != NULL);
		/* carved in order: object i is in chunk i / per_chunk */
		uint8_t *c = p.chunks[i / p.per_chunk];
		CHECK(objs[i] >= c && objs[i] + p.size <= c + 2u * 1024u * 1024u);
		memset(objs[i], (int)(i & 0xff), p.size);
	}
	CHECK_EQ(p.n_chunks, 4);
	for (uint64_t i = 0; i < n; i++)
		CHECK(objs[i][p.size - 1] == (uint8_t)(i & 0xff)); /* no two overlap */
	/* the last reserved chunk still has room; past it a new chunk is mapped */
	uint64_t left = 4 * (uint64_t)p.per_chunk - n;
	for (uint64_t i = 0; i < left; i++)
		CHECK(ferry_obj_pool_get(&p) != NULL);
	CHECK_EQ(p.n_chunks, 4);
	objs[n] = ferry_obj_pool_get(&p);
	CHECK(objs[n] != NULL);
	CHECK_EQ(p.n_chunks, 5);
	CHECK_EQ(p.in_use, 4 * (uint64_t)p.per_chunk + 1);
	free(objs);
	ferry_obj_pool_fini(&p);
	CHECK_EQ(p.n_chunks, 0);
}

int main(void)
{
	ferry_test_eal_init("classifier", NULL, 0);
	if (ferry_flow_table_init(&ft, MAX_FLOWS, N_PORTS, NULL, NULL, NULL) != 0)
		return 1;
	RUN(test_pool_reserve);
	RUN(test_random_against_linear_scan);
	RUN(test_staged_invisible_until_commit);
	RUN(test_ties_are_refused);
	RUN(test_bundle_all_or_nothing);
	RUN(test_slots_and_capacity);
	RUN(test_timed_rules_are_counted);
	RUN(test_subtables_visited_in_priority_order);
	RUN(test_ties_between_nested_masks); /* clears the table */
	ferry_flow_table_fini(&ft);
	rte_eal_cleanup();
	return ftest_finish();
}
