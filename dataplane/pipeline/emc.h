/* Per-worker exact-match cache: the full key (and start table) of a packet to the
 * program its translation produced at a table version. An entry from another version
 * is a miss, so a flow change invalidates the cache at once without touching it. */
#ifndef FERRY_EMC_H
#define FERRY_EMC_H

#include <stdint.h>
#include <string.h>
#include <smmintrin.h>
#include <rte_hash_crc.h>
#include "../classifier/rule.h"
#include "xlate.h"

#define FERRY_EMC_ENTRIES 8192u

struct ferry_emc_entry {
	uint64_t version;
	uint32_t hash;
	uint8_t start_table;
	uint8_t pad[3];
	struct ferry_flow_key key;
	struct ferry_program prog;
} __rte_cache_aligned;

struct ferry_emc {
	uint32_t mask;
	struct ferry_emc_entry e[];
};

/* Four independent CRC lanes over the key's words: crc32 has a latency of three
 * cycles and a throughput of one, so one chain would leave the unit idle. */
static inline uint32_t ferry_key_hash(const struct ferry_flow_key *k, uint8_t start_table)
{
	const uint64_t *w = ferry_key_words(k);
	uint32_t a = start_table, b = 0x9e3779b9u, c = 0x85ebca6bu, d = 0xc2b2ae35u;
	unsigned i = 0;
	for (; i + 3 < FERRY_KEY_WORDS; i += 4) {
		a = rte_hash_crc_8byte(w[i], a);
		b = rte_hash_crc_8byte(w[i + 1], b);
		c = rte_hash_crc_8byte(w[i + 2], c);
		d = rte_hash_crc_8byte(w[i + 3], d);
	}
	for (; i < FERRY_KEY_WORDS; i++)
		a = rte_hash_crc_8byte(w[i], a);
	return a ^ (b << 7 | b >> 25) ^ (c << 13 | c >> 19) ^ (d << 21 | d >> 11);
}

/* Whole-key equality in 16-byte lanes, without a call into libc's memcmp. */
static inline int ferry_key_equal(const struct ferry_flow_key *x, const struct ferry_flow_key *y)
{
	_Static_assert(sizeof(*x) % 16 == 0, "the key is a whole number of 16-byte lanes");
	const __m128i *a = (const __m128i *)(const void *)x, *b = (const __m128i *)(const void *)y;
	__m128i acc = _mm_setzero_si128();
	for (unsigned i = 0; i < sizeof(*x) / 16; i++)
		acc = _mm_or_si128(acc, _mm_xor_si128(_mm_loadu_si128(a + i), _mm_loadu_si128(b + i)));
	return _mm_testz_si128(acc, acc);
}

static inline int ferry_emc_hit(const struct ferry_emc_entry *e, uint32_t hash, uint64_t version,
				uint8_t start_table, const struct ferry_flow_key *key)
{
	return e->hash == hash && e->version == version && e->start_table == start_table &&
	       ferry_key_equal(&e->key, key);
}

/* Two ways, as OVS's EMC: the entry for a key is at one of two places its hash
 * names. Returns the hit, or (through *victim) the place to translate into: a stale
 * entry if either is, else the second way. */
static inline struct ferry_emc_entry *ferry_emc_find(struct ferry_emc *emc, uint32_t hash, uint64_t version,
						     uint8_t start_table, const struct ferry_flow_key *key,
						     struct ferry_emc_entry **victim)
{
	struct ferry_emc_entry *a = &emc->e[hash & emc->mask];
	struct ferry_emc_entry *b = &emc->e[(hash >> 16 ^ hash * 0x9e37u) & emc->mask];
	if (ferry_emc_hit(a, hash, version, start_table, key))
		return a;
	if (ferry_emc_hit(b, hash, version, start_table, key))
		return b;
	*victim = a->version != version ? a : b;
	return NULL;
}

#endif
