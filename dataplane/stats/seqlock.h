/* Single-writer seqlock over a record in shared memory: the writer makes seq odd,
 * writes, and makes it even again; a reader retries while seq is odd or changed.
 * Used for port info and hardware stats, which the main lcore rewrites whole; the
 * per-worker counters need none (one writer each, aligned 64-bit stores). */
#ifndef FERRY_STATS_SEQLOCK_H
#define FERRY_STATS_SEQLOCK_H

#include <stdint.h>

static inline void ferry_seq_write_begin(uint32_t *seq)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void ferry_seq_write_end(uint32_t *seq)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

/* Reader side, for tests and C tools: returns the seq to pass to read_retry. */
static inline uint32_t ferry_seq_read_begin(const uint32_t *seq)
{
	uint32_t s;
	while ((s = __atomic_load_n(seq, __ATOMIC_ACQUIRE)) & 1u)
		;
	return s;
}

static inline int ferry_seq_read_retry(const uint32_t *seq, uint32_t start)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(seq, __ATOMIC_RELAXED) != start;
}

#endif
