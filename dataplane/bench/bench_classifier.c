/* ferry-bench-classifier: lookups per second on one core, printed as
 *   <metric>\t<ferry Mpps>\t<baseline Mpps>\t<baseline name>
 * for flow tables of 10 / 1,000 / 100,000 flows over 1 / 10 / 50 masks:
 *   - tss: the classifier alone (tuple space search, best-first with early exit)
 *   - emc hit: the exact-match cache path a packet takes when its key was seen
 *   - emc miss: every packet a new key: hash, miss, translate
 * The baseline, run in the same process on the same keys, is DPDK's rte_hash (one
 * exact-match probe per key): what a single hash table costs on this machine. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include "../common/eal_test.h"
#include "../classifier/flow_table.h"
#include "../pipeline/emc.h"
#include "../pipeline/xlate.h"

#define N_KEYS 65536u
#define BATCH 4096u
#define MEASURE_NS 250000000ull /* each figure: as many batches as fit in 0.25 s */

static struct ferry_flow_key keys[N_KEYS];
static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)rng; }

/* mask i: a source prefix and, for some, a destination prefix and an L4 port */
static void mask_of(unsigned i, struct ferry_flow_key *m)
{
	memset(m, 0, sizeof(*m));
	m->eth_type = 0xffff;
	unsigned bits = 8 + i % 25;
	for (unsigned b = 0; b < bits; b++)
		m->nw_src[b / 8] |= (uint8_t)(0x80 >> (b % 8));
	if (i % 2)
		memset(m->nw_dst, 0xff, 2 + (i / 2) % 3);
	if (i % 3 == 0)
		m->tp_dst = 0xffff;
	if (i >= 25)
		m->nw_proto = 0xff;
}

static void random_key(struct ferry_flow_key *k)
{
	memset(k, 0, sizeof(*k));
	k->eth_type = 0x0800;
	k->nw_proto = 17;
	uint32_t a = rnd(), b = rnd();
	memcpy(k->nw_src, &a, 4);
	memcpy(k->nw_dst, &b, 4);
	k->tp_dst = (uint16_t)rnd();
}

static void masked(struct ferry_flow_key *out, const struct ferry_flow_key *k, const struct ferry_flow_key *m)
{
	const uint64_t *kw = ferry_key_words(k), *mw = ferry_key_words(m);
	uint64_t *ow = (uint64_t *)(void *)out;
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++)
		ow[w] = kw[w] & mw[w];
}

static double mpps(uint64_t n, uint64_t cycles)
{
	return (double)n * rte_get_tsc_hz() / (double)cycles / 1e6;
}

/* Runs body(i) for batches of BATCH until MEASURE_NS have passed; returns Mpps. */
#define TIMED(body) ({ \
	uint64_t limit_ = MEASURE_NS * rte_get_tsc_hz() / 1000000000ull, n_ = 0, t0_ = rte_rdtsc(), t_; \
	do { for (uint32_t i = 0; i < BATCH; i++, n_++) { body; } t_ = rte_rdtsc() - t0_; } while (t_ < limit_); \
	mpps(n_, t_); })

static double baseline_rte_hash(unsigned n_flows)
{
	static unsigned inst;
	char name[32];
	snprintf(name, sizeof(name), "bench_h%u", inst++);
	struct rte_hash_parameters hp = { .name = name, .entries = n_flows * 2 + 64,
		.key_len = sizeof(struct ferry_flow_key), .hash_func = rte_hash_crc, .socket_id = 0 };
	struct rte_hash *h = rte_hash_create(&hp);
	for (unsigned i = 0; i < n_flows; i++)
		rte_hash_add_key(h, &keys[i % N_KEYS]);
	volatile int32_t sink = 0;
	unsigned span = n_flows < N_KEYS ? n_flows : N_KEYS;
	double r = TIMED(sink += rte_hash_lookup(h, &keys[(uint32_t)n_ % span]));
	rte_hash_free(h);
	(void)sink;
	return r;
}

static void run(unsigned n_flows, unsigned n_masks)
{
	static struct ferry_flow_table ft;
	static struct ferry_rule r;
	char why[128];
	if (ferry_flow_table_init(&ft, n_flows + 16, 4, NULL, NULL, NULL) != 0) {
		fprintf(stderr, "no memory for %u flows\n", n_flows);
		return;
	}
	/* flows: per mask, masked copies of random packet keys, so packets hit them */
	struct ferry_flow_key m;
	unsigned added = 0;
	uint64_t t_ins = rte_rdtsc();
	for (unsigned i = 0; added < n_flows && i < n_flows * 4; i++) {
		unsigned mi = i % n_masks;
		mask_of(mi, &m);
		memset(&r, 0, sizeof(r));
		r.mask = m;
		masked(&r.key, &keys[i % N_KEYS], &m);
		r.priority = (uint16_t)(1000 - mi); /* one priority per mask: no ties */
		r.id = ((uint64_t)mi << 48) ^ rte_hash_crc(&r.key, sizeof(r.key), mi);
		struct ferry_act_output o = { .hdr = { .type = FERRY_ACTION_TYPE_OUTPUT, .len = sizeof(o) }, .port = 1 };
		memcpy(r.actions, &o, sizeof(o));
		r.actions_len = sizeof(o);
		uint32_t slot;
		if (ferry_flow_table_add(&ft, &r, false, &slot, why, sizeof(why)) == FERRY_STATUS_OK)
			added++;
		if (added % 4096 == 0)
			ferry_flow_table_commit_batch(&ft);
	}
	ferry_flow_table_commit_batch(&ft);
	t_ins = rte_rdtsc() - t_ins;
	uint64_t v = ferry_flow_table_version(&ft);
	if (n_flows >= 100000)
		printf("flow table inserts (staged and committed in C), %u flows / %u masks\t%.3f\t%.3f\tissue target (REST)\n",
		       added, n_masks, mpps(added, t_ins), 0.1);

	/* classifier alone, on packets of installed flows (each key made one flow) */
	volatile uintptr_t sink = 0;
	unsigned span = added < N_KEYS ? added : N_KEYS;
	double m_tss = TIMED(sink += (uintptr_t)tss_lookup(&ft.tss, 0, &keys[(uint32_t)n_ % span], v, NULL));

	/* EMC hit: 1024 distinct keys, all cached */
	struct ferry_emc *emc = rte_zmalloc("bench_emc", sizeof(*emc) + FERRY_EMC_ENTRIES * sizeof(struct ferry_emc_entry), 64);
	emc->mask = FERRY_EMC_ENTRIES - 1;
	for (unsigned i = 0; i < 1024; i++) {
		uint32_t h = ferry_key_hash(&keys[i], 0);
		struct ferry_emc_entry *e = NULL;
		if (ferry_emc_find(emc, h, v, 0, &keys[i], &e) != NULL)
			continue;
		e->key = keys[i];
		e->hash = h;
		e->version = v;
		e->start_table = 0;
		struct ferry_flow_key xk = keys[i];
		ferry_xlate(&ft.tss, v, &xk, 0, &e->prog);
	}
	uint64_t hits = 0, tries = 0;
	double m_hit = TIMED({
		const struct ferry_flow_key *k = &keys[(uint32_t)n_ & 1023];
		uint32_t h = ferry_key_hash(k, 0);
		struct ferry_emc_entry *victim;
		hits += ferry_emc_find(emc, h, v, 0, k, &victim) != NULL;
		tries++;
	});

	/* EMC miss: every packet a key the cache never saw (of an installed flow), translated into it */
	uint32_t uniq = 1;
	double m_miss = TIMED({
		struct ferry_flow_key *k = &keys[(uint32_t)n_ % span];
		k->reg[7] = uniq++; /* never seen: never a hit */
		uint32_t h = ferry_key_hash(k, 0);
		struct ferry_emc_entry *e = NULL;
		if (ferry_emc_find(emc, h, v, 0, k, &e) == NULL) {
			e->key = *k;
			e->hash = h;
			e->version = v;
			struct ferry_flow_key xk = *k;
			ferry_xlate(&ft.tss, v, &xk, 0, &e->prog);
		}
		k->reg[7] = 0;
	});
	(void)sink;

	double base = baseline_rte_hash(n_flows);
	printf("lookup tss, %u flows / %u masks\t%.2f\t%.2f\trte_hash exact\n", added, n_masks, m_tss, base);
	printf("lookup emc hit, %u flows / %u masks\t%.2f\t%.2f\trte_hash exact\n", added, n_masks, m_hit, base);
	printf("lookup emc miss+xlate, %u flows / %u masks\t%.2f\t%.2f\trte_hash exact\n", added, n_masks, m_miss, base);
	fflush(stdout);
	if (hits != tries)
		fprintf(stderr, "emc: %llu of %llu cached keys missed (two-way collisions)\n",
			(unsigned long long)(tries - hits), (unsigned long long)tries);
	rte_free(emc);
	ferry_flow_table_fini(&ft);
}

/* Inserts at one priority beside other masks (the tie check): n host routes (/32) into a
 * table that already holds n /24 prefixes at the same priority, none overlapping (or the
 * other way round: prefixes_last), against the same n flows alone. A tie is refused at
 * insert, so each insert looks for an overlapping rule in every other subtable at its
 * priority. */
static double insert_hosts(unsigned n, bool beside, bool prefixes_last)
{
	static struct ferry_flow_table ft;
	static struct ferry_rule r;
	char why[128];
	if (ferry_flow_table_init(&ft, 2 * n + 16, 4, NULL, NULL, NULL) != 0)
		return 0;
	for (unsigned pass = beside ? 0 : 1; pass < 2; pass++) {
		bool host = (pass == 1) != prefixes_last; /* this pass adds /32s */
		uint64_t t0 = rte_rdtsc();
		for (unsigned i = 0; i < n; i++) {
			memset(&r, 0, sizeof(r));
			r.key.eth_type = 0x0800;
			r.mask.eth_type = 0xffff;
			/* /24s in 10.0.0.0/8, hosts in 11.0.0.0/8: no packet matches both */
			uint8_t a[4] = { host ? 11 : 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), host ? (uint8_t)i : 0 };
			memcpy(r.key.nw_src, a, 4);
			memset(r.mask.nw_src, 0xff, host ? 4 : 3);
			r.priority = 100;
			r.id = (uint64_t)pass << 48 | i;
			struct ferry_act_output o = { .hdr = { .type = FERRY_ACTION_TYPE_OUTPUT, .len = sizeof(o) }, .port = 1 };
			memcpy(r.actions, &o, sizeof(o));
			r.actions_len = sizeof(o);
			uint32_t slot;
			if (ferry_flow_table_add(&ft, &r, false, &slot, why, sizeof(why)) != FERRY_STATUS_OK) {
				fprintf(stderr, "insert %u of pass %u refused: %s\n", i, pass, why);
				ferry_flow_table_fini(&ft);
				return 0;
			}
			if (i % 4096 == 4095)
				ferry_flow_table_commit_batch(&ft);
		}
		ferry_flow_table_commit_batch(&ft);
		if (pass == 1) {
			double rate = mpps(n, rte_rdtsc() - t0);
			ferry_flow_table_fini(&ft);
			return rate;
		}
	}
	return 0;
}

int main(void)
{
	ferry_test_eal_init("bench-cls", NULL, 0);
	for (unsigned i = 0; i < N_KEYS; i++)
		random_key(&keys[i]);
	static const unsigned flows[] = { 10, 1000, 100000 }, masks[] = { 1, 10, 50 };
	/* FERRY_BENCH_CLS=FLOWS:MASKS runs that one table only (for profiling) */
	unsigned only_f = 0, only_m = 0;
	const char *only = getenv("FERRY_BENCH_CLS");
	if (only != NULL && sscanf(only, "%u:%u", &only_f, &only_m) == 2 && only_f && only_m) {
		run(only_f, only_m);
		rte_eal_cleanup();
		return 0;
	}
	for (unsigned f = 0; f < 3; f++)
		for (unsigned m = 0; m < 3; m++)
			if (masks[m] <= flows[f])
				run(flows[f], masks[m]);
	/* warm the heap first: both figures then pay the same page faults */
	(void)insert_hosts(20000, false, false);
	double alone = insert_hosts(20000, false, false), beside = insert_hosts(20000, true, false);
	printf("flow table inserts, 20000 /32 flows at one priority beside 20000 /24 flows (tie check)\t%.3f\t%.3f\tthe same /32 flows alone\n",
	       beside, alone);
	alone = insert_hosts(20000, false, true);
	beside = insert_hosts(20000, true, true);
	printf("flow table inserts, 20000 /24 flows at one priority beside 20000 /32 flows (tie check)\t%.3f\t%.3f\tthe same /24 flows alone\n",
	       beside, alone);
	rte_eal_cleanup();
	return 0;
}
