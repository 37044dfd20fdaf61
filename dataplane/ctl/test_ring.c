/* SPSC ring: order, full, wraparound of the u32 indices, and a hostile head. */
#include <stdlib.h>
#include <string.h>
#include "../common/ftest.h"
#include "ring.h"

#define SLOTS 8u
#define SLOT 64u

static struct ferry_ring_ctl *new_ctl(void)
{
	struct ferry_ring_ctl *c = aligned_alloc(64, ferry_ring_bytes(SLOTS, SLOT));
	memset(c, 0, ferry_ring_bytes(SLOTS, SLOT));
	return c;
}

static void test_fifo_and_full(void)
{
	struct ferry_ring_ctl *c = new_ctl();
	struct ferry_ring prod, cons;
	ferry_ring_init(&prod, c, SLOTS, SLOT);
	cons = prod; /* both ends over the same shared block */
	for (uint32_t i = 0; i < SLOTS; i++)
		CHECK(ferry_ring_push(&prod, &i, sizeof(i)));
	uint32_t x = 99;
	CHECK(!ferry_ring_push(&prod, &x, sizeof(x)));
	CHECK_EQ(c->full_events, 1);
	CHECK_EQ(ferry_ring_count(&cons), SLOTS);
	for (uint32_t i = 0; i < SLOTS; i++) {
		uint32_t v;
		memcpy(&v, ferry_ring_peek(&cons, i), sizeof(v));
		CHECK_EQ(v, i);
	}
	ferry_ring_release(&cons, SLOTS);
	CHECK_EQ(ferry_ring_count(&cons), 0);
	CHECK_EQ(ferry_ring_free(&prod), SLOTS);
	free(c);
}

static void test_index_wraparound(void)
{
	struct ferry_ring_ctl *c = new_ctl();
	struct ferry_ring prod, cons;
	ferry_ring_init(&prod, c, SLOTS, SLOT);
	cons = prod;
	uint32_t start = UINT32_MAX - 3;
	prod.own = cons.own = c->head = c->tail = start;
	for (uint32_t i = 0; i < 100; i++) {
		CHECK(ferry_ring_push(&prod, &i, sizeof(i)));
		CHECK(ferry_ring_push(&prod, &i, sizeof(i)));
		CHECK_EQ(ferry_ring_count(&cons), 2);
		uint32_t v;
		memcpy(&v, ferry_ring_peek(&cons, 1), sizeof(v));
		CHECK_EQ(v, i);
		ferry_ring_release(&cons, 2);
	}
	CHECK_EQ(c->tail, start + 200);
	free(c);
}

static void test_hostile_head_is_clamped(void)
{
	struct ferry_ring_ctl *c = new_ctl();
	struct ferry_ring cons;
	ferry_ring_init(&cons, c, SLOTS, SLOT);
	c->head = 1000000;  /* a peer claiming more records than slots */
	c->slots = 1u << 30; /* and lying about the geometry */
	CHECK_EQ(ferry_ring_count(&cons), SLOTS);
	/* the handle's own geometry bounds every slot address */
	for (uint32_t i = 0; i < SLOTS; i++)
		CHECK((uint8_t *)ferry_ring_peek(&cons, i) < (uint8_t *)c + ferry_ring_bytes(SLOTS, SLOT));
	free(c);
}

int main(void)
{
	RUN(test_fifo_and_full);
	RUN(test_index_wraparound);
	RUN(test_hostile_head_is_clamped);
	return ftest_finish();
}
