/* A reader of a seqlocked record never accepts a torn copy while a writer rewrites it. */
#include <pthread.h>
#include <stdint.h>
#include "../common/ftest.h"
#include "seqlock.h"

struct rec {
	uint32_t seq;
	uint64_t a, b, c;
};

static struct rec shared;
static volatile int stop;

static void *writer(void *arg)
{
	(void)arg;
	for (uint64_t i = 1; !stop; i++) {
		ferry_seq_write_begin(&shared.seq);
		__atomic_store_n(&shared.a, i, __ATOMIC_RELAXED);
		__atomic_store_n(&shared.b, i * 3, __ATOMIC_RELAXED);
		__atomic_store_n(&shared.c, i * 7, __ATOMIC_RELAXED);
		ferry_seq_write_end(&shared.seq);
	}
	return NULL;
}

static void test_no_torn_reads(void)
{
	pthread_t t;
	pthread_create(&t, NULL, writer, NULL);
	unsigned torn = 0, reads = 0;
	while (reads < 200000) {
		uint32_t s = ferry_seq_read_begin(&shared.seq);
		uint64_t a = __atomic_load_n(&shared.a, __ATOMIC_RELAXED);
		uint64_t b = __atomic_load_n(&shared.b, __ATOMIC_RELAXED);
		uint64_t c = __atomic_load_n(&shared.c, __ATOMIC_RELAXED);
		if (ferry_seq_read_retry(&shared.seq, s))
			continue;
		reads++;
		torn += b != a * 3 || c != a * 7;
	}
	stop = 1;
	pthread_join(t, NULL);
	CHECK_EQ(torn, 0);
	CHECK_EQ(reads, 200000);
}

int main(void)
{
	RUN(test_no_torn_reads);
	return ftest_finish();
}
