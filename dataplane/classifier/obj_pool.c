/* Fixed-size objects for the flow table's writer (obj_pool.h). */
#include "obj_pool.h"

#include <string.h>
#include <sys/mman.h>
#include <rte_malloc.h>

#define CHUNK_BYTES (2u * 1024u * 1024u)

void ferry_obj_pool_init(struct ferry_obj_pool *p, size_t size, size_t align)
{
	memset(p, 0, sizeof(*p));
	if (align < sizeof(void *))
		align = sizeof(void *);
	p->align = (uint32_t)align;
	p->size = (uint32_t)((size + align - 1) & ~(align - 1));
	p->per_chunk = CHUNK_BYTES / p->size ? CHUNK_BYTES / p->size : 1;
}

void ferry_obj_pool_fini(struct ferry_obj_pool *p)
{
	for (uint32_t i = 0; i < p->n_chunks; i++)
		munmap(p->chunks[i], CHUNK_BYTES);
	rte_free(p->chunks);
	size_t size = p->size, align = p->align;
	ferry_obj_pool_init(p, size, align);
}

/* CHUNK_BYTES of memory on a CHUNK_BYTES boundary, so that the kernel can back it with
 * one transparent huge page: taken one 4 KB page fault at a time, a fresh ferryd's
 * first 100,000 flows spent most of their install time faulting (5.1 us a flow against
 * 0.6 once the memory was there; 0.7 from huge pages). Advice only: where the kernel
 * has none to give it is plain memory. */
static void *map_chunk(void)
{
	size_t span = 2 * (size_t)CHUNK_BYTES;
	uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	uintptr_t at = ((uintptr_t)m + CHUNK_BYTES - 1) & ~(uintptr_t)(CHUNK_BYTES - 1);
	size_t head = at - (uintptr_t)m, tail = span - head - CHUNK_BYTES;
	if (head)
		munmap(m, head);
	if (tail)
		munmap((uint8_t *)at + CHUNK_BYTES, tail);
	(void)madvise((void *)at, CHUNK_BYTES, MADV_HUGEPAGE);
	return (void *)at;
}

/* one more chunk at the end of the list (mapped, not yet carved) */
static int map_one(struct ferry_obj_pool *p)
{
	if (p->n_chunks == p->cap_chunks) {
		uint32_t cap = p->cap_chunks ? p->cap_chunks * 2 : 16;
		void **c = rte_realloc(p->chunks, cap * sizeof(*c), 0);
		if (c == NULL)
			return -1;
		p->chunks = c;
		p->cap_chunks = cap;
	}
	uint8_t *chunk = map_chunk();
	if (chunk == NULL)
		return -1;
	p->chunks[p->n_chunks++] = chunk;
	return 0;
}

/* carving moves on to the next chunk: a reserved one, or a new one */
static int new_chunk(struct ferry_obj_pool *p)
{
	if (p->n_carved == p->n_chunks && map_one(p) != 0)
		return -1;
	p->carve = p->chunks[p->n_carved++];
	p->carve_left = p->per_chunk;
	return 0;
}

int ferry_obj_pool_reserve(struct ferry_obj_pool *p, uint64_t n)
{
	while ((uint64_t)p->n_chunks * p->per_chunk < n) {
		if (map_one(p) != 0)
			return -1;
		/* a write a page faults it in now (the whole huge page where the kernel gives one) */
		volatile uint8_t *c = p->chunks[p->n_chunks - 1];
		for (size_t off = 0; off < CHUNK_BYTES; off += 4096)
			c[off] = 0;
	}
	return 0;
}

void *ferry_obj_pool_get(struct ferry_obj_pool *p)
{
	void *obj = p->free;
	if (obj != NULL) {
		memcpy(&p->free, obj, sizeof(void *));
	} else {
		if (p->carve_left == 0 && new_chunk(p) != 0)
			return NULL;
		obj = p->carve;
		p->carve += p->size;
		p->carve_left--;
	}
	p->in_use++;
	return obj;
}

void ferry_obj_pool_put(struct ferry_obj_pool *p, void *obj)
{
	if (obj == NULL)
		return;
	memcpy(obj, &p->free, sizeof(void *));
	p->free = obj;
	p->in_use--;
}
