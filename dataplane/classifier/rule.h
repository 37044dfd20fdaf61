/* A flow as the dataplane holds it. Rules are immutable once linked into the
 * classifier except for their version window: a rule is visible to a lookup at
 * version V when add_version <= V < remove_version (OVS's classifier versions). A
 * bundle's rules get their versions at commit, all at once, so the whole bundle
 * becomes visible with one store of the table version. */
#ifndef FERRY_RULE_H
#define FERRY_RULE_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry_proto.h"

#define FERRY_KEY_WORDS (sizeof(struct ferry_flow_key) / sizeof(uint64_t))
#define FERRY_VERSION_NEVER UINT64_MAX

struct ferry_rule {
	uint64_t add_version;
	uint64_t remove_version;
	uint64_t id;
	uint64_t cookie;
	uint32_t slot;          /* flow_stats slot */
	uint16_t priority;
	uint8_t table_id;
	uint8_t flags;          /* FERRY_FLOW_FLAG_* */
	uint16_t idle_timeout;  /* s */
	uint16_t hard_timeout;  /* s */
	uint16_t actions_len;
	uint16_t pad0;
	uint64_t created_ns;
	struct ferry_flow_key key;  /* already masked */
	struct ferry_flow_key mask;
	uint8_t actions[FERRY_ACTIONS_MAX];
	/* main lcore bookkeeping */
	struct tss_subtable *subtable;
	struct ferry_rule *staged_next; /* open bundle's list */
	bool staged_delete;
	bool linked;
};

static inline bool ferry_rule_visible(const struct ferry_rule *r, uint64_t version)
{
	return r->add_version <= version && version < r->remove_version;
}

static inline const uint64_t *ferry_key_words(const struct ferry_flow_key *k)
{
	return (const uint64_t *)(const void *)k;
}

#endif
