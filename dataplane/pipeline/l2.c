#include "l2.h"

#include <rte_hash_crc.h>

static inline uint64_t l2_key(const uint8_t mac[6], uint16_t vlan)
{
	uint64_t m = (uint64_t)mac[0] << 40 | (uint64_t)mac[1] << 32 | (uint64_t)mac[2] << 24 |
		     (uint64_t)mac[3] << 16 | (uint64_t)mac[4] << 8 | mac[5];
	return (uint64_t)(vlan & 0x0fff) << 48 | m | 1ull << 63; /* bit 63: never 0 */
}

static inline struct ferry_l2_entry *slot(const struct ferry_l2 *t, uint64_t key)
{
	return (struct ferry_l2_entry *)&t->e[rte_hash_crc_8byte(key, 0) & (FERRY_L2_ENTRIES - 1)];
}

void ferry_l2_learn(struct ferry_l2 *t, const uint8_t mac[6], uint16_t vlan, uint32_t port, uint64_t now_ns)
{
	if (mac[0] & 1)
		return; /* never learn a multicast source */
	uint64_t key = l2_key(mac, vlan);
	struct ferry_l2_entry *e = slot(t, key);
	uint64_t value = (uint64_t)port << 48 | (now_ns >> 16);
	if (__atomic_load_n(&e->key, __ATOMIC_RELAXED) == key &&
	    __atomic_load_n(&e->value, __ATOMIC_RELAXED) >> 48 == port &&
	    ((value - __atomic_load_n(&e->value, __ATOMIC_RELAXED)) & 0xffffffffffffull) < (1ull << 14))
		return; /* fresh enough: save the cache line a write */
	__atomic_store_n(&e->key, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->value, value, __ATOMIC_RELEASE);
	__atomic_store_n(&e->key, key, __ATOMIC_RELEASE);
}

uint32_t ferry_l2_lookup(const struct ferry_l2 *t, const uint8_t mac[6], uint16_t vlan, uint64_t now_ns)
{
	uint64_t key = l2_key(mac, vlan);
	const struct ferry_l2_entry *e = slot(t, key);
	if (__atomic_load_n(&e->key, __ATOMIC_ACQUIRE) != key)
		return FERRY_L2_NO_PORT;
	uint64_t value = __atomic_load_n(&e->value, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&e->key, __ATOMIC_ACQUIRE) != key)
		return FERRY_L2_NO_PORT;
	uint64_t seen = (value & 0xffffffffffffull) << 16;
	if (now_ns > seen && now_ns - seen > FERRY_L2_AGING_NS)
		return FERRY_L2_NO_PORT;
	return (uint32_t)(value >> 48);
}
