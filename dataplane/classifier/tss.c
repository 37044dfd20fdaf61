#include "tss.h"

#include <errno.h>
#include <string.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#define INITIAL_BUCKETS 16u
#define MAX_LOAD 2u /* nodes per bucket before the array grows 4x */

static inline uint64_t load_word(const struct ferry_flow_key *k, unsigned w)
{
	return ferry_key_words(k)[w];
}

uint32_t tss_hash_masked(const struct tss_subtable *s, const struct ferry_flow_key *key)
{
	const uint64_t *kw = ferry_key_words(key), *mw = ferry_key_words(&s->mask);
	uint32_t h = s->n_words;
	for (unsigned i = 0; i < s->n_words; i++) {
		unsigned w = s->words[i];
		h = rte_hash_crc_8byte(kw[w] & mw[w], h);
	}
	return h;
}

static inline int masked_equal(const struct tss_subtable *s, const struct ferry_flow_key *key,
			       const struct tss_node *n)
{
	const uint64_t *kw = ferry_key_words(key), *mw = ferry_key_words(&s->mask);
	uint64_t diff = 0;
	for (unsigned i = 0; i < s->n_words; i++) {
		unsigned w = s->words[i];
		diff |= (kw[w] & mw[w]) ^ n->words[i];
	}
	return diff == 0;
}

static inline size_t node_size(const struct tss_subtable *s)
{
	return sizeof(struct tss_node) + (size_t)s->n_words * sizeof(uint64_t);
}

void tss_init(struct tss *t, tss_retire_fn retire, void *ctx)
{
	memset(t, 0, sizeof(*t));
	t->retire = retire;
	t->retire_ctx = ctx;
	for (unsigned w = 0; w <= FERRY_KEY_WORDS; w++)
		ferry_obj_pool_init(&t->node_pool[w], sizeof(struct tss_node) + w * sizeof(uint64_t), 8);
}

/* a node for subtable s (its n_words), from the pool of that size */
static inline struct tss_node *node_get(struct tss *t, const struct tss_subtable *s)
{
	return ferry_obj_pool_get(&t->node_pool[s->n_words]);
}

static inline struct ferry_obj_pool *node_pool(struct tss *t, const struct tss_subtable *s)
{
	return &t->node_pool[s->n_words];
}

void tss_fini(struct tss *t)
{
	for (unsigned ti = 0; ti < FERRY_N_TABLES; ti++) {
		struct tss_sublist *l = t->table[ti].list;
		if (l == NULL)
			continue;
		for (uint32_t i = 0; i < l->n; i++) {
			struct tss_subtable *s = l->s[i];
			rte_free(s->buckets); /* its nodes go with their pools below */
			rte_free(s);
		}
		rte_free(l);
		t->table[ti].list = NULL;
	}
	for (unsigned w = 0; w <= FERRY_KEY_WORDS; w++)
		ferry_obj_pool_fini(&t->node_pool[w]);
}

uint32_t tss_n_subtables(const struct tss *t, uint8_t table)
{
	const struct tss_sublist *l = __atomic_load_n(&t->table[table].list, __ATOMIC_ACQUIRE);
	return l ? l->n : 0;
}

const struct ferry_rule *tss_lookup(const struct tss *t, uint8_t table, const struct ferry_flow_key *key,
				    uint64_t version, uint32_t *visited)
{
	const struct tss_sublist *l = __atomic_load_n(&t->table[table].list, __ATOMIC_ACQUIRE);
	const struct ferry_rule *best = NULL;
	uint32_t n_visited = 0;
	if (l == NULL)
		goto out;
	for (uint32_t i = 0; i < l->n; i++) {
		const struct tss_subtable *s = l->s[i];
		uint16_t smax = __atomic_load_n(&s->max_priority, __ATOMIC_RELAXED);
		/* subtables come best-first: none further on can beat what we have */
		if (best != NULL && smax <= best->priority)
			break;
		n_visited++;
		uint32_t h = tss_hash_masked(s, key);
		const struct tss_buckets *b = __atomic_load_n(&s->buckets, __ATOMIC_ACQUIRE);
		for (const struct tss_node *n = __atomic_load_n(&b->head[h & b->mask], __ATOMIC_ACQUIRE);
		     n != NULL; n = __atomic_load_n(&n->next, __ATOMIC_ACQUIRE)) {
			if (n->hash != h || (best && n->priority <= best->priority) || !masked_equal(s, key, n))
				continue;
			/* only a match reads the rule: is it visible at this version? */
			if (ferry_rule_visible(n->rule, version))
				best = n->rule;
		}
	}
out:
	if (visited)
		*visited = n_visited;
	return best;
}

/* ---- writer side ---- */

const struct ferry_rule *tss_subtable_find(const struct tss_subtable *s, const struct ferry_flow_key *key,
					   bool (*pick)(const struct ferry_rule *r, const void *arg), const void *arg)
{
	uint32_t h = tss_hash_masked(s, key);
	const struct tss_buckets *b = s->buckets;
	for (const struct tss_node *n = b->head[h & b->mask]; n != NULL; n = n->next)
		if (n->hash == h && masked_equal(s, key, n) && pick(n->rule, arg))
			return n->rule;
	return NULL;
}

static int mask_equal(const struct ferry_flow_key *a, const struct ferry_flow_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* Publishes a copy of table's list with s inserted (or removed when remove) and the
 * order restored; retires the old list. */
static int republish(struct tss *t, uint8_t table, struct tss_subtable *add, struct tss_subtable *remove)
{
	struct tss_sublist *old = t->table[table].list;
	uint32_t n_old = old ? old->n : 0;
	struct tss_sublist *l = rte_malloc("tss_list", sizeof(*l) + (n_old + 1) * sizeof(l->s[0]), 0);
	if (l == NULL)
		return -ENOMEM;
	l->n = 0;
	for (uint32_t i = 0; i < n_old; i++)
		if (old->s[i] != remove)
			l->s[l->n++] = old->s[i];
	if (add)
		l->s[l->n++] = add;
	/* insertion sort by max_priority, best first (lists are short) */
	for (uint32_t i = 1; i < l->n; i++) {
		struct tss_subtable *x = l->s[i];
		uint32_t j = i;
		while (j > 0 && l->s[j - 1]->max_priority < x->max_priority) {
			l->s[j] = l->s[j - 1];
			j--;
		}
		l->s[j] = x;
	}
	__atomic_store_n(&t->table[table].list, l, __ATOMIC_RELEASE);
	if (old)
		t->retire(t->retire_ctx, old, NULL);
	return 0;
}

static struct tss_subtable *find_subtable(struct tss *t, uint8_t table, const struct ferry_flow_key *mask)
{
	struct tss_sublist *l = t->table[table].list;
	for (uint32_t i = 0; l && i < l->n; i++)
		if (mask_equal(&l->s[i]->mask, mask))
			return l->s[i];
	return NULL;
}

static struct tss_subtable *new_subtable(const struct ferry_flow_key *mask)
{
	struct tss_subtable *s = rte_zmalloc("tss_sub", sizeof(*s), RTE_CACHE_LINE_SIZE);
	struct tss_buckets *b = rte_zmalloc("tss_buckets", sizeof(*b) + INITIAL_BUCKETS * sizeof(b->head[0]),
					    RTE_CACHE_LINE_SIZE);
	if (s == NULL || b == NULL) {
		rte_free(s);
		rte_free(b);
		return NULL;
	}
	b->mask = INITIAL_BUCKETS - 1;
	s->buckets = b;
	s->mask = *mask;
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++)
		if (load_word(mask, w) != 0)
			s->words[s->n_words++] = (uint8_t)w;
	return s;
}

/* Replaces the bucket array with one four times larger. Nodes sit in one chain each,
 * so the new array gets fresh nodes and the old ones are retired with it. */
static int grow(struct tss *t, struct tss_subtable *s)
{
	struct tss_buckets *old = s->buckets;
	uint32_t n = (old->mask + 1) * 4;
	struct tss_buckets *b = rte_zmalloc("tss_buckets", sizeof(*b) + n * sizeof(b->head[0]), RTE_CACHE_LINE_SIZE);
	if (b == NULL)
		return -ENOMEM;
	b->mask = n - 1;
	for (uint32_t i = 0; i <= old->mask; i++) {
		for (struct tss_node *o = old->head[i]; o; o = o->next) {
			struct tss_node *c = node_get(t, s);
			if (c == NULL)
				goto nomem;
			memcpy(c, o, node_size(s));
			c->next = b->head[c->hash & b->mask];
			b->head[c->hash & b->mask] = c;
		}
	}
	__atomic_store_n(&s->buckets, b, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i <= old->mask; i++) {
		struct tss_node *o = old->head[i];
		while (o) {
			struct tss_node *next = o->next;
			t->retire(t->retire_ctx, o, node_pool(t, s));
			o = next;
		}
	}
	t->retire(t->retire_ctx, old, NULL);
	return 0;
nomem:
	for (uint32_t i = 0; i <= b->mask; i++) {
		struct tss_node *c = b->head[i];
		while (c) {
			struct tss_node *next = c->next;
			ferry_obj_pool_put(node_pool(t, s), c);
			c = next;
		}
	}
	rte_free(b);
	return -ENOMEM;
}

int tss_insert(struct tss *t, struct ferry_rule *r)
{
	uint8_t table = r->table_id;
	struct tss_subtable *s = find_subtable(t, table, &r->mask);
	int created = 0;
	if (s == NULL) {
		s = new_subtable(&r->mask);
		if (s == NULL)
			return -ENOMEM;
		s->max_priority = r->priority;
		s->min_priority = r->priority;
		created = 1;
	}
	struct tss_node *n = node_get(t, s);
	if (n == NULL)
		goto nomem;
	n->rule = r;
	n->priority = r->priority;
	n->pad0 = 0;
	for (unsigned i = 0; i < s->n_words; i++)
		n->words[i] = ferry_key_words(&r->key)[s->words[i]];
	n->hash = tss_hash_masked(s, &r->key);
	struct tss_buckets *b = s->buckets;
	n->next = b->head[n->hash & b->mask];
	__atomic_store_n(&b->head[n->hash & b->mask], n, __ATOMIC_RELEASE);
	s->n_nodes++;
	s->n_rules++;
	if (r->priority < s->min_priority)
		s->min_priority = r->priority;
	r->subtable = s;
	r->linked = true;

	if (created) {
		if (republish(t, table, s, NULL) != 0) {
			s->n_rules = 0; /* unwind: never published */
			ferry_obj_pool_put(node_pool(t, s), n);
			r->linked = false;
			goto nomem;
		}
	} else if (r->priority > s->max_priority) {
		__atomic_store_n(&s->max_priority, r->priority, __ATOMIC_RELEASE);
		republish(t, table, NULL, NULL); /* reorder; on ENOMEM the old order only costs visits */
	}
	if (s->n_nodes > MAX_LOAD * (s->buckets->mask + 1))
		grow(t, s); /* on ENOMEM chains just get longer */
	return 0;
nomem:
	if (created) {
		rte_free(s->buckets);
		rte_free(s);
	}
	return -ENOMEM;
}

void tss_remove(struct tss *t, struct ferry_rule *r)
{
	struct tss_subtable *s = r->subtable;
	if (!r->linked || s == NULL)
		return;
	struct tss_buckets *b = s->buckets;
	uint32_t h = tss_hash_masked(s, &r->key);
	struct tss_node **pp = &b->head[h & b->mask];
	for (struct tss_node *n = *pp; n; pp = &n->next, n = n->next) {
		if (n->rule != r)
			continue;
		__atomic_store_n(pp, n->next, __ATOMIC_RELEASE);
		t->retire(t->retire_ctx, n, node_pool(t, s));
		s->n_nodes--;
		break;
	}
	r->linked = false;
	r->subtable = NULL;
	if (--s->n_rules == 0) {
		uint8_t table = r->table_id;
		if (republish(t, table, NULL, s) == 0) {
			t->retire(t->retire_ctx, s->buckets, NULL);
			t->retire(t->retire_ctx, s, NULL);
		}
	}
}
