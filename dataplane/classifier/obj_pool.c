/* Fixed-size objects for the flow table's writer (obj_pool.h). */
#include "obj_pool.h"

#include <string.h>
#include <rte_malloc.h>

#define CHUNK_BYTES (64u * 1024u)

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
		rte_free(p->chunks[i]);
	rte_free(p->chunks);
	size_t size = p->size, align = p->align;
	ferry_obj_pool_init(p, size, align);
}

static int new_chunk(struct ferry_obj_pool *p)
{
	if (p->n_chunks == p->cap_chunks) {
		uint32_t cap = p->cap_chunks ? p->cap_chunks * 2 : 16;
		void **c = rte_realloc(p->chunks, cap * sizeof(*c), 0);
		if (c == NULL)
			return -1;
		p->chunks = c;
		p->cap_chunks = cap;
	}
	uint8_t *chunk = rte_malloc("ferry_obj_pool", (size_t)p->per_chunk * p->size, p->align);
	if (chunk == NULL)
		return -1;
	p->chunks[p->n_chunks++] = chunk;
	p->carve = chunk;
	p->carve_left = p->per_chunk;
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
