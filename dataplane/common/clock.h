/* Time for the dataplane: CLOCK_MONOTONIC nanoseconds (the clock the control service
 * reads through process.hrtime), and a TSC-based conversion workers use once per
 * burst so the per-packet path makes no syscall. */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <stdint.h>
#include <time.h>
#include <rte_cycles.h>

static inline uint64_t ferry_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Maps TSC readings onto CLOCK_MONOTONIC: ns = base_ns + (tsc - base_tsc) * mult >> 32. */
struct ferry_tsc_clock {
	uint64_t base_tsc;
	uint64_t base_ns;
	uint64_t mult; /* ns per cycle in 32.32 fixed point */
};

static inline void ferry_tsc_clock_init(struct ferry_tsc_clock *c)
{
	uint64_t hz = rte_get_tsc_hz();
	c->base_ns = ferry_monotonic_ns();
	c->base_tsc = rte_rdtsc();
	c->mult = hz ? (1000000000ull << 32) / hz : 0;
}

static inline uint64_t ferry_tsc_to_ns(const struct ferry_tsc_clock *c, uint64_t tsc)
{
	uint64_t d = tsc - c->base_tsc;
	/* split to avoid overflow: (hi * 2^32 + lo) * mult >> 32 */
	return c->base_ns + (d >> 32) * c->mult + (((d & 0xffffffffull) * c->mult) >> 32);
}

#endif
