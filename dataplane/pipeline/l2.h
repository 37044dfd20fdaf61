/* MAC learning for the NORMAL action: one table for the switch, shared by the workers
 * without locks. An entry is two 64-bit words (MAC+VLAN, port+time) written with
 * plain atomic stores; a reader re-checks the key word after reading the value, so a
 * racing update gives it either entry, never a mix. Last writer wins, as a learning
 * switch wants. Entries age out (OVS's default: 300 s). */
#ifndef FERRY_L2_H
#define FERRY_L2_H

#include <stdint.h>

#define FERRY_L2_ENTRIES 16384u
#define FERRY_L2_AGING_NS (300ull * 1000000000ull)
#define FERRY_L2_NO_PORT UINT32_MAX

struct ferry_l2_entry {
	uint64_t key;   /* vlan << 48 | mac, 0 = empty */
	uint64_t value; /* port << 48 | seen_ns >> 16 (~65 us resolution) */
};

struct ferry_l2 {
	struct ferry_l2_entry e[FERRY_L2_ENTRIES];
};

void ferry_l2_learn(struct ferry_l2 *t, const uint8_t mac[6], uint16_t vlan, uint32_t port, uint64_t now_ns);
uint32_t ferry_l2_lookup(const struct ferry_l2 *t, const uint8_t mac[6], uint16_t vlan, uint64_t now_ns);

#endif
