/* Ferry's minimal C unit-test harness: CHECK records a failure and goes on, the
 * runner prints one closing line "N passed, N failed" and exits non-zero on failure. */
#ifndef FERRY_FTEST_H
#define FERRY_FTEST_H

#include <stdio.h>
#include <stdlib.h>

static unsigned ftest_checks_failed;
static unsigned ftest_cases_passed;
static unsigned ftest_cases_failed;

#define CHECK(cond) do { \
	if (!(cond)) { \
		ftest_checks_failed++; \
		fprintf(stderr, "  CHECK failed %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	unsigned long long ftest_a_ = (unsigned long long)(a), ftest_b_ = (unsigned long long)(b); \
	if (ftest_a_ != ftest_b_) { \
		ftest_checks_failed++; \
		fprintf(stderr, "  CHECK_EQ failed %s:%d: %s == %s (%llu != %llu)\n", \
			__FILE__, __LINE__, #a, #b, ftest_a_, ftest_b_); \
	} \
} while (0)

#define RUN(test) do { \
	unsigned ftest_before_ = ftest_checks_failed; \
	test(); \
	if (ftest_checks_failed == ftest_before_) { \
		ftest_cases_passed++; \
		printf("ok - %s\n", #test); \
	} else { \
		ftest_cases_failed++; \
		printf("FAIL - %s\n", #test); \
	} \
} while (0)

static inline int ftest_finish(void)
{
	printf("%u passed, %u failed\n", ftest_cases_passed, ftest_cases_failed);
	return ftest_cases_failed == 0 && ftest_cases_passed > 0 ? 0 : 1;
}

#endif
