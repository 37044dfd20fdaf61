/* Single-producer single-consumer rings of fixed-size records in the shared segment
 * (struct ferry_ring_ctl). Indices are free-running u32; the producer owns head, the
 * consumer owns tail, each on its own cache line. The producer fills a slot with plain
 * stores and publishes it with a release store of head; the consumer acquires head,
 * reads, and releases tail. The control service does the same with Atomics (seq-cst).
 *
 * The shared control block is writable by the peer, so ferryd never trusts what it
 * holds besides the peer's own index: geometry and our own index live in a private
 * handle, and a peer index that claims more than a ring's worth is clamped. */
#ifndef FERRY_CTL_RING_H
#define FERRY_CTL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry_proto.h"

struct ferry_ring {
	struct ferry_ring_ctl *ctl; /* shared */
	uint8_t *slots;
	uint32_t mask;
	uint32_t slot_size;
	uint32_t own;  /* our index: tail for a consumer, head for a producer */
	uint32_t full_events;
};

static inline size_t ferry_ring_bytes(uint32_t slots, uint32_t slot_size)
{
	return sizeof(struct ferry_ring_ctl) + (size_t)slots * slot_size;
}

/* Lays out a ring at ctl (slots must be a power of two) and returns its handle. */
static inline void ferry_ring_init(struct ferry_ring *r, struct ferry_ring_ctl *ctl,
				   uint32_t slots, uint32_t slot_size)
{
	ctl->head = 0;
	ctl->tail = 0;
	ctl->full_events = 0;
	ctl->slots = slots;
	ctl->slot_size = slot_size;
	ctl->slots_off = sizeof(*ctl);
	r->ctl = ctl;
	r->slots = (uint8_t *)ctl + sizeof(*ctl);
	r->mask = slots - 1;
	r->slot_size = slot_size;
	r->own = 0;
	r->full_events = 0;
}

static inline uint8_t *ferry_ring_slot(const struct ferry_ring *r, uint32_t idx)
{
	return r->slots + (size_t)(idx & r->mask) * r->slot_size;
}

/* ---- consumer side ---- */

/* Records ready to read, from the producer's published head. */
static inline uint32_t ferry_ring_count(const struct ferry_ring *r)
{
	uint32_t head = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
	uint32_t used = head - r->own;
	return used > r->mask + 1 ? r->mask + 1 : used;
}

/* The n-th unread record (n < ferry_ring_count()). */
static inline const uint8_t *ferry_ring_peek(const struct ferry_ring *r, uint32_t n)
{
	return ferry_ring_slot(r, r->own + n);
}

static inline void ferry_ring_release(struct ferry_ring *r, uint32_t n)
{
	r->own += n;
	__atomic_store_n(&r->ctl->tail, r->own, __ATOMIC_RELEASE);
}

/* ---- producer side ---- */

static inline uint32_t ferry_ring_free(const struct ferry_ring *r)
{
	uint32_t tail = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);
	uint32_t used = r->own - tail;
	return used > r->mask ? 0 : r->mask + 1 - used;
}

/* Slot to fill for the n-th record after head (n < ferry_ring_free()). */
static inline uint8_t *ferry_ring_prepare(const struct ferry_ring *r, uint32_t n)
{
	return ferry_ring_slot(r, r->own + n);
}

static inline void ferry_ring_publish(struct ferry_ring *r, uint32_t n)
{
	r->own += n;
	__atomic_store_n(&r->ctl->head, r->own, __ATOMIC_RELEASE);
}

/* Copies one record in; false, and full_events counted, when the ring is full. */
static inline bool ferry_ring_push(struct ferry_ring *r, const void *rec, uint32_t len)
{
	if (ferry_ring_free(r) == 0) {
		r->ctl->full_events = ++r->full_events;
		return false;
	}
	__builtin_memcpy(ferry_ring_prepare(r, 0), rec, len < r->slot_size ? len : r->slot_size);
	ferry_ring_publish(r, 1);
	return true;
}

#endif
