/* Fixed-size objects for the flow table's writer (the main lcore): rules and the
 * classifier's nodes. They are carved from chunks and recycled through a free list,
 * instead of one rte_malloc each: DPDK's heap walks its free lists on every call, which
 * cost microseconds an object at 10^5 flows (most of an insert). A chunk is 2 MB on a
 * 2 MB boundary, mapped by the pool and advised for a transparent huge page: the TLB
 * sees few pages, as with DPDK's hugepage heap, and a fresh table does not take a 4 KB
 * page fault per few rules (with --no-huge, where the heap is 4 KB pages, those faults
 * were 85% of installing 100,000 flows). Chunks are unmapped only at ferry_obj_pool_fini.
 * Not thread-safe: one writer. */
#ifndef FERRY_OBJ_POOL_H
#define FERRY_OBJ_POOL_H

#include <stddef.h>
#include <stdint.h>

struct ferry_obj_pool {
	uint32_t size;          /* of an object, a multiple of align */
	uint32_t align;
	uint32_t per_chunk;
	uint32_t carve_left;    /* objects not yet handed out in the chunk being carved */
	uint8_t *carve;         /* the next of them */
	void *free;             /* recycled objects, linked through their first word */
	void **chunks;
	uint32_t n_chunks, cap_chunks;
	uint32_t n_carved;      /* chunks carving has reached; the rest were reserved ahead */
	uint64_t in_use;
};

/* size and align (a power of two, at least 8) of the objects */
void ferry_obj_pool_init(struct ferry_obj_pool *p, size_t size, size_t align);
/* every chunk back to the heap: every object handed out is gone */
void ferry_obj_pool_fini(struct ferry_obj_pool *p);
/* Maps and touches chunks until the pool holds room for n objects, so that the first n
 * gets take no page fault (zeroing a fresh huge page was half of a fresh ferryd's time
 * installing its first 100,000 flows). 0, or -1 when no more memory could be mapped (the
 * pool keeps what it got; the rest comes as objects are asked for). */
int ferry_obj_pool_reserve(struct ferry_obj_pool *p, uint64_t n);
/* an object (contents undefined), or NULL when the heap has no chunk left */
void *ferry_obj_pool_get(struct ferry_obj_pool *p);
void ferry_obj_pool_put(struct ferry_obj_pool *p, void *obj);

#endif
