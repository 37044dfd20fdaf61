#include "flow_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

/*
 * The main lcore's own bookkeeping (staged ops, limbo, dead rules) grows with libc's realloc, not
 * rte_realloc: no worker reads it, so it needs no DPDK (hugepage) memory, and a large libc block
 * grows by mremap, its pages moved rather than copied and faulted in again (a bulk load's staging
 * array reached 4 MB through ten copies).
 */
static int grow_array(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	uint32_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *p = realloc(*arr, (size_t)n * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

static void release(void *ptr, struct ferry_obj_pool *pool)
{
	if (pool != NULL)
		ferry_obj_pool_put(pool, ptr);
	else
		rte_free(ptr);
}

static void retire(void *ctx, void *ptr, struct ferry_obj_pool *pool)
{
	struct ferry_flow_table *ft = ctx;
	if (grow_array((void **)&ft->limbo, &ft->cap_limbo, ft->n_limbo + 1, sizeof(ft->limbo[0])) != 0) {
		/* cannot defer: wait for the workers now, then free */
		if (ft->qsv)
			rte_rcu_qsbr_synchronize(ft->qsv, RTE_QSBR_THRID_INVALID);
		release(ptr, pool);
		return;
	}
	ft->limbo[ft->n_limbo++] = (struct ferry_limbo){ ptr, pool };
}

/* rules mapped at start at most (see ferry_flow_table_init) */
#define FERRY_RULES_RESERVED_MAX (256u * 1024u)

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
	ft->visible_version = 1;
	tss_init(&ft->tss, retire, ft);
	ferry_obj_pool_init(&ft->rule_pool, sizeof(struct ferry_rule), RTE_CACHE_LINE_SIZE);
	ft->slot_rule = rte_zmalloc("ferry_slots", (size_t)max_flows * sizeof(ft->slot_rule[0]), 0);
	ft->free_slots = rte_malloc("ferry_free", (size_t)max_flows * sizeof(uint32_t), 0);
	ft->dead_slots = rte_malloc("ferry_dead", (size_t)max_flows * sizeof(uint32_t), 0);
	snprintf(name, sizeof(name), "ferry_flows_%u", instance++);
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = max_flows < 8 ? 8 : max_flows,
		.key_len = sizeof(uint64_t),
		.hash_func = rte_jhash,
		.socket_id = (int)rte_socket_id(),
	};
	ft->by_id = rte_hash_create(&hp);
	if (!ft->slot_rule || !ft->free_slots || !ft->dead_slots || !ft->by_id) {
		ferry_flow_table_fini(ft);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < max_flows; i++)
		ft->free_slots[i] = max_flows - 1 - i; /* pop order 0, 1, 2, ... */
	ft->n_free = max_flows;
	/* Rules for a full table are mapped and touched now, as DPDK populates its mempools at
	 * start: a fresh ferryd's first bulk load then takes no page faults. Up to
	 * FERRY_RULES_RESERVED_MAX of them (about 270 MB): a larger table gets the rest as flows
	 * come. A failed mapping is not fatal: the rest comes lazily, as before. (With
	 * overcommit, memory the host does not have shows as the OOM killer at start.) */
	(void)ferry_obj_pool_reserve(&ft->rule_pool, RTE_MIN(max_flows, FERRY_RULES_RESERVED_MAX));
	return 0;
}

void ferry_flow_table_fini(struct ferry_flow_table *ft)
{
	/* rules (in slots, dead or in limbo) and nodes go with their pools */
	tss_fini(&ft->tss);
	for (uint32_t i = 0; i < ft->n_limbo; i++)
		if (ft->limbo[i].pool == NULL)
			rte_free(ft->limbo[i].ptr);
	ferry_obj_pool_fini(&ft->rule_pool);
	free(ft->limbo); /* grow_array's: libc */
	free(ft->dead);
	free(ft->batch.ops);
	free(ft->bundle.ops);
	rte_hash_free(ft->by_id);
	rte_free(ft->slot_rule);
	rte_free(ft->free_slots);
	rte_free(ft->dead_slots);
	memset(ft, 0, sizeof(*ft));
}

bool ferry_rule_needs_headers(const struct ferry_rule *r)
{
	const uint8_t *m = (const uint8_t *)&r->mask;
	size_t from = offsetof(struct ferry_flow_key, eth_type);
	for (size_t i = from; i < sizeof(r->mask); i++)
		if (m[i])
			return true;
	if (r->mask.nw_frag || r->mask.ipv6_label)
		return true;
	for (uint32_t off = 0; off + sizeof(struct ferry_act_hdr) <= r->actions_len;) {
		const struct ferry_act_hdr *h = (const void *)(r->actions + off);
		if (h->len == 0)
			break;
		switch (h->type) {
		case FERRY_ACTION_TYPE_SET_FIELD: {
			const struct ferry_act_set_field *a = (const void *)h;
			if (a->field < FERRY_FIELD_ID_TUN_ID)
				return true;
			break;
		}
		case FERRY_ACTION_TYPE_PUSH_VLAN:
		case FERRY_ACTION_TYPE_POP_VLAN:
		case FERRY_ACTION_TYPE_DEC_TTL:
		case FERRY_ACTION_TYPE_NORMAL:
		case FERRY_ACTION_TYPE_CT:
			return true;
		default:
			break;
		}
		off += h->len;
	}
	return false;
}

/* ---- ties: two live rules of one table with the same priority must not overlap ---- */

static bool keys_overlap(const struct ferry_rule *a, const struct ferry_flow_key *bk,
			 const struct ferry_flow_key *bm)
{
	const uint64_t *ak = ferry_key_words(&a->key), *am = ferry_key_words(&a->mask);
	const uint64_t *k = ferry_key_words(bk), *m = ferry_key_words(bm);
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++)
		if ((ak[w] ^ k[w]) & am[w] & m[w])
			return false;
	return true;
}

static bool rule_live(const struct ferry_rule *r)
{
	return r->remove_version == FERRY_VERSION_NEVER && !r->staged_delete;
}

/* a tie with template t among rules whose keys already agree with t's on all t and they
 * both match (tss_subtable_find's pick) */
static bool ties_with(const struct ferry_rule *r, const void *arg)
{
	const struct ferry_rule *t = arg;
	return r->priority == t->priority && r->id != t->id && rule_live(r);
}

/* A subtable's rules that could tie with t are found by hash lookups rather than a
 * scan when there are fewer keys to try than rules: a rule of s overlaps t exactly when
 * its key is t's on the bits both masks hold, whatever it is on the bits only s's mask
 * holds (k of them): 2^k keys, each one hash chain. A /32 beside /24s: one lookup; a /24
 * beside /32s: 256. */
#define TIE_PROBE_MAX_BITS 16u

static const struct ferry_rule *tie_by_probes(const struct tss_subtable *s, const struct ferry_rule *t, bool *done)
{
	const uint64_t *sw = ferry_key_words(&s->mask), *mw = ferry_key_words(&t->mask);
	uint8_t word[TIE_PROBE_MAX_BITS];
	uint64_t bit[TIE_PROBE_MAX_BITS];
	unsigned k = 0;
	*done = false;
	for (unsigned i = 0; i < s->n_words; i++) {
		unsigned w = s->words[i];
		for (uint64_t d = sw[w] & ~mw[w]; d != 0; d &= d - 1) {
			if (k == TIE_PROBE_MAX_BITS)
				return NULL; /* too many keys to try: scan */
			word[k] = (uint8_t)w;
			bit[k++] = d & -d;
		}
	}
	if ((1ull << k) > s->n_nodes)
		return NULL; /* fewer rules than keys: scan */
	*done = true;
	struct ferry_flow_key probe = t->key; /* masked by t's mask: zero on the k bits */
	uint64_t *pw = (uint64_t *)(void *)&probe;
	for (uint32_t c = 0; c < (1u << k); c++) {
		/* the k bits of probe are c's (the rest stays t's key) */
		for (unsigned j = 0; j < k; j++)
			pw[word[j]] = (c & (1u << j)) ? pw[word[j]] | bit[j] : pw[word[j]] & ~bit[j];
		const struct ferry_rule *r = tss_subtable_find(s, &probe, ties_with, t);
		if (r != NULL)
			return r;
	}
	return NULL;
}

/* A live rule other than id, same table and priority, that some packet could match
 * together with the template: OpenFlow leaves such ties undefined, Ferry refuses them. */
static const struct ferry_rule *find_tie(const struct ferry_flow_table *ft, const struct ferry_rule *t)
{
	const struct tss_sublist *l = ft->tss.table[t->table_id].list;
	for (uint32_t i = 0; l && i < l->n; i++) {
		const struct tss_subtable *s = l->s[i];
		if (s->max_priority < t->priority)
			break; /* sorted best first: nothing further holds this priority */
		if (s->min_priority > t->priority)
			continue; /* holds no rule at this priority */
		if (memcmp(&s->mask, &t->mask, sizeof(t->mask)) == 0) {
			/* same mask: overlap means the same match, hence the same id (a replace) */
			continue;
		}
		bool done;
		const struct ferry_rule *r = tie_by_probes(s, t, &done);
		if (r != NULL)
			return r;
		if (done)
			continue;
		/* otherwise every rule of s is a candidate */
		const struct tss_buckets *b = s->buckets;
		for (uint32_t j = 0; j <= b->mask; j++)
			for (const struct tss_node *n = b->head[j]; n; n = n->next) {
				const struct ferry_rule *r = n->rule;
				if (r->priority == t->priority && r->id != t->id && rule_live(r) &&
				    keys_overlap(r, &t->key, &t->mask))
					return r;
			}
	}
	return NULL;
}

/* ---- staging ---- */

static struct ferry_staging *staging_for(struct ferry_flow_table *ft, bool in_bundle, int *status,
					 char *why, size_t whylen)
{
	*status = FERRY_STATUS_OK;
	if (in_bundle) {
		ft->bundle_open = true;
		if (ft->bundle.failed) {
			*status = FERRY_STATUS_EBUNDLE;
			snprintf(why, whylen, "bundle already failed: %.100s", ft->bundle.why);
			return NULL;
		}
		return &ft->bundle;
	}
	if (ft->bundle_open) {
		*status = FERRY_STATUS_EBUNDLE;
		snprintf(why, whylen, "a bundle is open: commit or abort it first");
		return NULL;
	}
	return &ft->batch;
}

static struct ferry_flow_op *push_op(struct ferry_staging *st)
{
	if (grow_array((void **)&st->ops, &st->cap, st->n_ops + 1, sizeof(st->ops[0])) != 0)
		return NULL;
	struct ferry_flow_op *op = &st->ops[st->n_ops++];
	memset(op, 0, sizeof(*op));
	return op;
}

int ferry_flow_table_add(struct ferry_flow_table *ft, const struct ferry_rule *tmpl, bool in_bundle,
			 uint32_t *slot_out, char *why, size_t whylen)
{
	int status;
	struct ferry_staging *st = staging_for(ft, in_bundle, &status, why, whylen);
	if (st == NULL)
		return status;
	const struct ferry_rule *tie = find_tie(ft, tmpl);
	if (tie != NULL) {
		snprintf(why, whylen, "priority: overlaps flow %016llx at the same priority %u in table %u",
			 (unsigned long long)tie->id, tmpl->priority, tmpl->table_id);
		return FERRY_STATUS_EEXIST;
	}
	struct ferry_rule *r = ferry_obj_pool_get(&ft->rule_pool);
	struct ferry_flow_op *op = r ? push_op(st) : NULL;
	if (op == NULL) {
		ferry_obj_pool_put(&ft->rule_pool, r);
		snprintf(why, whylen, "out of memory");
		return FERRY_STATUS_EINTERNAL;
	}
	*r = *tmpl;
	r->add_version = FERRY_VERSION_NEVER;
	r->remove_version = FERRY_VERSION_NEVER;
	r->staged_delete = false;
	r->linked = false;
	r->subtable = NULL;

	void *data;
	uint32_t s;
	op->id = r->id;
	op->added = r;
	if (rte_hash_lookup_data(ft->by_id, &r->id, &data) >= 0) {
		s = (uint32_t)(uintptr_t)data; /* replace: same slot, counters kept (as OVS) */
		op->id_was_mapped = true;
		op->removed = ft->slot_rule[s];
		if (op->removed)
			op->removed->staged_delete = true;
	} else {
		if (ft->n_free == 0) {
			st->n_ops--;
			ferry_obj_pool_put(&ft->rule_pool, r);
			snprintf(why, whylen, "flow table full (--max-flows %u)", ft->max_flows);
			return FERRY_STATUS_ENOSPC;
		}
		s = ft->free_slots[--ft->n_free];
		rte_hash_add_key_data(ft->by_id, &r->id, (void *)(uintptr_t)s);
		if (ft->reset_slot)
			ft->reset_slot(ft->reset_arg, s); /* unreachable by workers since its last grace period */
		op->slot_new = true;
		ft->n_active++;
	}
	op->slot = s;
	r->slot = s;
	ft->slot_rule[s] = r;
	if (tss_insert(&ft->tss, r) != 0) {
		/* undo just this op */
		if (op->removed)
			op->removed->staged_delete = false;
		ft->slot_rule[s] = op->removed;
		if (op->slot_new) {
			rte_hash_del_key(ft->by_id, &r->id);
			ft->free_slots[ft->n_free++] = s;
			ft->n_active--;
		}
		st->n_ops--;
		ferry_obj_pool_put(&ft->rule_pool, r);
		snprintf(why, whylen, "out of memory linking the flow");
		return FERRY_STATUS_EINTERNAL;
	}
	*slot_out = s;
	return FERRY_STATUS_OK;
}

int ferry_flow_table_del(struct ferry_flow_table *ft, uint64_t id, bool in_bundle)
{
	int status;
	char why[FERRY_ERR_MSG_LEN];
	struct ferry_staging *st = staging_for(ft, in_bundle, &status, why, sizeof(why));
	if (st == NULL)
		return status;
	void *data;
	if (rte_hash_lookup_data(ft->by_id, &id, &data) < 0)
		return FERRY_STATUS_ENOENT;
	struct ferry_flow_op *op = push_op(st);
	if (op == NULL)
		return FERRY_STATUS_EINTERNAL;
	uint32_t s = (uint32_t)(uintptr_t)data;
	op->id = id;
	op->slot = s;
	op->id_was_mapped = true;
	op->removed = ft->slot_rule[s];
	if (op->removed)
		op->removed->staged_delete = true;
	ft->slot_rule[s] = NULL;
	rte_hash_del_key(ft->by_id, &id);
	ft->n_active--;
	return FERRY_STATUS_OK;
}

uint32_t ferry_flow_table_clear(struct ferry_flow_table *ft)
{
	uint32_t n = 0;
	for (uint32_t s = 0; s < ft->max_flows; s++) {
		struct ferry_rule *r = ft->slot_rule[s];
		if (r != NULL && ferry_flow_table_del(ft, r->id, false) == FERRY_STATUS_OK)
			n++;
	}
	return n;
}

int ferry_flow_table_sweep_bundle(struct ferry_flow_table *ft, char *why, size_t whylen)
{
	int status;
	struct ferry_staging *st = staging_for(ft, true, &status, why, whylen);
	if (st == NULL)
		return status;
	st->sweep = true;
	return FERRY_STATUS_OK;
}

/* Stages the deletes of a sweeping bundle: every live flow not (re)added by it. A rule the
 * bundle staged still has add_version NEVER; a deleted one has left slot_rule already. */
static int stage_sweep(struct ferry_flow_table *ft)
{
	for (uint32_t s = 0; s < ft->max_flows; s++) {
		const struct ferry_rule *r = ft->slot_rule[s];
		if (r == NULL || r->add_version == FERRY_VERSION_NEVER)
			continue;
		int st = ferry_flow_table_del(ft, r->id, true);
		if (st != FERRY_STATUS_OK)
			return st;
	}
	return FERRY_STATUS_OK;
}

static inline bool rule_timed(const struct ferry_rule *r)
{
	return r->idle_timeout != 0 || r->hard_timeout != 0;
}

static int push_dead(struct ferry_flow_table *ft, struct ferry_rule *r)
{
	if (grow_array((void **)&ft->dead, &ft->cap_dead, ft->n_dead + 1, sizeof(ft->dead[0])) != 0)
		return -ENOMEM;
	ft->dead[ft->n_dead++] = r;
	return 0;
}

static void synchronize(struct ferry_flow_table *ft)
{
	if (ft->qsv != NULL)
		rte_rcu_qsbr_synchronize(ft->qsv, RTE_QSBR_THRID_INVALID);
}

void ferry_flow_table_reclaim(struct ferry_flow_table *ft)
{
	if (ft->n_dead == 0 && ft->n_limbo == 0 && ft->n_dead_slots == 0)
		return;
	/* 1: no worker still looks up at a version that could see the dead rules */
	synchronize(ft);
	if (ft->n_header_rules == 0)
		__atomic_store_n(&ft->headers_needed, 0, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i < ft->n_dead; i++) {
		tss_remove(&ft->tss, ft->dead[i]); /* retires its node */
		retire(ft, ft->dead[i], &ft->rule_pool);
	}
	ft->n_dead = 0;
	while (ft->n_dead_slots > 0)
		ft->free_slots[ft->n_free++] = ft->dead_slots[--ft->n_dead_slots];
	/* 2: no worker still walks a chain through what was just unlinked */
	synchronize(ft);
	for (uint32_t i = 0; i < ft->n_limbo; i++)
		release(ft->limbo[i].ptr, ft->limbo[i].pool);
	ft->n_limbo = 0;
}

static int commit(struct ferry_flow_table *ft, struct ferry_staging *st)
{
	if (st->n_ops == 0)
		return FERRY_STATUS_OK;
	uint64_t v = ft->visible_version + 1;
	for (uint32_t i = 0; i < st->n_ops; i++) {
		struct ferry_flow_op *op = &st->ops[i];
		if (op->added) {
			op->added->add_version = v;
			ft->n_header_rules += ferry_rule_needs_headers(op->added);
			ft->n_timed_rules += rule_timed(op->added);
		}
		if (op->removed) {
			/* counted when it became visible (earlier, or by an op before this one) */
			if (op->removed->add_version != FERRY_VERSION_NEVER) {
				ft->n_header_rules -= ferry_rule_needs_headers(op->removed);
				ft->n_timed_rules -= rule_timed(op->removed);
			}
			if (op->removed->add_version == FERRY_VERSION_NEVER)
				op->removed->add_version = v; /* added and removed in one staging */
			op->removed->remove_version = v;
			op->removed->staged_delete = false;
			/* without memory for the dead list it just stays linked, invisible */
			(void)push_dead(ft, op->removed);
		}
		if (op->added == NULL && !op->slot_new)
			ft->dead_slots[ft->n_dead_slots++] = op->slot;
	}
	if (ft->n_header_rules > 0)
		__atomic_store_n(&ft->headers_needed, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&ft->visible_version, v, __ATOMIC_RELEASE);
	st->n_ops = 0;
	ft->commits++;
	ferry_flow_table_reclaim(ft);
	return FERRY_STATUS_OK;
}

static void rollback(struct ferry_flow_table *ft, struct ferry_staging *st)
{
	for (uint32_t i = st->n_ops; i-- > 0;) {
		struct ferry_flow_op *op = &st->ops[i];
		if (op->added) {
			tss_remove(&ft->tss, op->added);
			retire(ft, op->added, &ft->rule_pool);
		}
		if (op->removed)
			op->removed->staged_delete = false;
		ft->slot_rule[op->slot] = op->removed;
		if (op->slot_new) {
			rte_hash_del_key(ft->by_id, &op->id);
			ft->free_slots[ft->n_free++] = op->slot;
			ft->n_active--;
		} else if (op->added == NULL) {
			rte_hash_add_key_data(ft->by_id, &op->id, (void *)(uintptr_t)op->slot);
			ft->n_active++;
		}
	}
	st->n_ops = 0;
	st->failed = false;
	st->sweep = false;
	st->why[0] = '\0';
	ferry_flow_table_reclaim(ft);
}

int ferry_flow_table_commit_batch(struct ferry_flow_table *ft)
{
	return commit(ft, &ft->batch);
}

void ferry_flow_table_bundle_fail(struct ferry_flow_table *ft, const char *why)
{
	if (!ft->bundle.failed) {
		ft->bundle.failed = true;
		snprintf(ft->bundle.why, sizeof(ft->bundle.why), "%s", why);
	}
	ft->bundle_open = true;
}

int ferry_flow_table_commit_bundle(struct ferry_flow_table *ft, char *why, size_t whylen)
{
	if (ft->bundle.failed) {
		snprintf(why, whylen, "bundle rolled back: %s", ft->bundle.why);
		rollback(ft, &ft->bundle);
		ft->bundle_open = false;
		return FERRY_STATUS_EBUNDLE;
	}
	if (ft->bundle.sweep) {
		int st = stage_sweep(ft);
		if (st != FERRY_STATUS_OK) {
			snprintf(why, whylen, "bundle rolled back: out of memory staging the table's replacement");
			rollback(ft, &ft->bundle);
			ft->bundle_open = false;
			return st;
		}
		ft->bundle.sweep = false;
	}
	int st = commit(ft, &ft->bundle);
	ft->bundle_open = false;
	return st;
}

void ferry_flow_table_abort_bundle(struct ferry_flow_table *ft)
{
	rollback(ft, &ft->bundle);
	ft->bundle_open = false;
}

const struct ferry_rule *ferry_flow_table_get(const struct ferry_flow_table *ft, uint64_t id)
{
	void *data;
	if (rte_hash_lookup_data(ft->by_id, &id, &data) < 0)
		return NULL;
	return ft->slot_rule[(uint32_t)(uintptr_t)data];
}
