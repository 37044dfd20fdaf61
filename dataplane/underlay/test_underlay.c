/* The underlay's neighbour cache and ARP: the state machine of a next hop (ask once
 * per retry interval, FAILED after the retries, asked again later, refreshed past
 * half its timeout), learning, static entries, aging, a full table with deletes and
 * reuse, dump pages, and lock-free readers racing a writer; ARP parsed, refused in
 * each malformed way, and built byte for byte. */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <rte_arp.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "arp.h"
#include "neigh.h"

#define S 1000000000ull
#define MS 1000000ull
#define R FERRY_NEIGH_RETRY_NS
#define T0 (1000 * S) /* a monotonic clock is well past zero */

static struct rte_mempool *pool;

/* host order; RTE_IPV4 shifts an int into its sign bit */
#define HOST_IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define BASE_IP HOST_IP(10, 0, 0, 0)

static rte_be32_t ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	return rte_cpu_to_be_32(HOST_IP(a, b, c, d));
}

/* distinct addresses for entry n: 10.x.y.z */
static rte_be32_t ip_n(uint32_t n)
{
	return rte_cpu_to_be_32(BASE_IP + n + 1);
}

static struct rte_ether_addr mac_n(uint32_t n)
{
	struct rte_ether_addr m = { { 0x02, 0x00, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, 0x77 } };
	return m;
}

static bool mac_eq(const struct rte_ether_addr *a, const struct rte_ether_addr *b)
{
	return memcmp(a->addr_bytes, b->addr_bytes, RTE_ETHER_ADDR_LEN) == 0;
}

static struct ferry_neigh_table *new_table(void)
{
	struct ferry_neigh_table *t = ferry_neigh_create(SOCKET_ID_ANY);
	CHECK(t != NULL);
	if (t == NULL)
		exit(1);
	return t;
}

/* the one entry dump reports for (port, ip); flags 0 when absent */
static struct ferry_neigh_entry find_dumped(const struct ferry_neigh_table *t, uint16_t port, rte_be32_t ip,
					    uint64_t now)
{
	struct ferry_neigh_entry e[64], found = { .flags = 0 };
	uint32_t cursor = 0;
	bool done = false;
	while (!done) {
		uint32_t n = ferry_neigh_dump(t, &cursor, now, e, RTE_DIM(e), &done);
		for (uint32_t i = 0; i < n; i++)
			if (e[i].port == port && memcmp(e[i].ip, &ip, 4) == 0)
				found = e[i];
	}
	return found;
}

/* ---- neighbour cache ---- */

static void test_miss_asks_once_per_interval(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac;
	bool ask;
	rte_be32_t a = ip4(192, 168, 1, 1);

	CHECK_EQ(ferry_neigh_count(t), 0);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	CHECK_EQ(ferry_neigh_count(t), 1);
	CHECK_EQ(find_dumped(t, 0, a, T0).flags, FERRY_NEIGH_FLAG_INCOMPLETE);

	/* held frames for the same hop do not ask again within the interval */
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + R - 1, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + R, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + R, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	/* a clock a little behind the one that asked (another lcore's) is no wrap */
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + R - 5, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_count(t), 1);
	ferry_neigh_destroy(t);
}

/* lookups every 100 ms until the answer is FAILED: how many asks went out */
static unsigned asks_until_failed(struct ferry_neigh_table *t, rte_be32_t a, uint64_t *now)
{
	struct rte_ether_addr mac;
	unsigned asks = 0;
	bool ask;
	for (int i = 0; i < 1000; i++, *now += 100 * MS) {
		enum ferry_neigh_result r = ferry_neigh_lookup(t, 0, a, *now, &mac, &ask);
		asks += ask;
		if (r == FERRY_NEIGH_FAILED) {
			CHECK(!ask);
			return asks;
		}
		CHECK_EQ(r, FERRY_NEIGH_MISS);
	}
	return 1000;
}

static void test_retries_then_failed(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac;
	bool ask;
	rte_be32_t a = ip4(192, 168, 1, 2);
	uint64_t now = T0;

	CHECK_EQ(ferry_neigh_retries(t), FERRY_NEIGH_DEFAULT_RETRIES);
	CHECK_EQ(asks_until_failed(t, a, &now), FERRY_NEIGH_DEFAULT_RETRIES);
	/* the last request had its whole interval: 3 asks at T0, T0+R, T0+2R, FAILED at T0+3R */
	CHECK_EQ(now, T0 + 3 * R);
	CHECK_EQ(find_dumped(t, 0, a, now).flags, FERRY_NEIGH_FLAG_FAILED);

	/* FAILED stays quiet for an interval, then asks (still dropping that packet) */
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, now + R - 1, &mac, &ask), FERRY_NEIGH_FAILED);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, now + R, &mac, &ask), FERRY_NEIGH_FAILED);
	CHECK(ask);
	/* ... and is INCOMPLETE again: frames are held for a new round of retries */
	CHECK_EQ(find_dumped(t, 0, a, now + R).flags, FERRY_NEIGH_FLAG_INCOMPLETE);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, now + R + 1, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	now += R;
	CHECK_EQ(asks_until_failed(t, a, &now), FERRY_NEIGH_DEFAULT_RETRIES - 1);

	/* an answer ends FAILED too */
	struct rte_ether_addr m = mac_n(9);
	CHECK(ferry_neigh_learn(t, 0, a, &m, now, false));
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, now, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m));

	/* retries from the options; 0 leaves them */
	ferry_neigh_set_options(t, 0, 5);
	CHECK_EQ(ferry_neigh_retries(t), 5);
	ferry_neigh_set_options(t, 0, 0);
	CHECK_EQ(ferry_neigh_retries(t), 5);
	now = T0;
	CHECK_EQ(asks_until_failed(t, ip4(192, 168, 1, 3), &now), 5);
	ferry_neigh_set_options(t, 0, 1);
	now = T0;
	CHECK_EQ(asks_until_failed(t, ip4(192, 168, 1, 4), &now), 1);
	CHECK_EQ(now, T0 + R);
	ferry_neigh_destroy(t);
}

static void test_learn(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac, m1 = mac_n(1), m2 = mac_n(2);
	bool ask;
	rte_be32_t a = ip4(172, 16, 0, 1), b = ip4(172, 16, 0, 2), c = ip4(172, 16, 0, 3);

	/* an answer to our request resolves the INCOMPLETE entry */
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ferry_neigh_learn(t, 0, a, &m1, T0 + 1, false));
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + 2, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	CHECK(mac_eq(&mac, &m1));
	CHECK_EQ(find_dumped(t, 0, a, T0 + 2).flags, FERRY_NEIGH_FLAG_REACHABLE);

	/* a confirmation is no news; a moved MAC is */
	CHECK(!ferry_neigh_learn(t, 0, a, &m1, T0 + 3, false));
	CHECK(ferry_neigh_learn(t, 0, a, &m2, T0 + 4, false));
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + 5, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m2));

	/* create=true makes an entry for an unknown address */
	CHECK(ferry_neigh_learn(t, 0, b, &m1, T0, true));
	CHECK_EQ(ferry_neigh_lookup(t, 0, b, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	CHECK(mac_eq(&mac, &m1));

	/* create=false on an unknown address does nothing */
	CHECK(!ferry_neigh_learn(t, 0, c, &m1, T0, false));
	CHECK_EQ(ferry_neigh_count(t), 2);
	/* nor does an ARP probe's sender, 0.0.0.0 */
	CHECK(!ferry_neigh_learn(t, 0, 0, &m1, T0, true));
	CHECK_EQ(ferry_neigh_count(t), 2);
	CHECK_EQ(find_dumped(t, 0, c, T0).flags, 0);
	CHECK_EQ(ferry_neigh_lookup(t, 0, c, T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	ferry_neigh_destroy(t);
}

static void test_refresh(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac, m1 = mac_n(1);
	bool ask;
	rte_be32_t a = ip4(172, 16, 1, 1), s = ip4(172, 16, 1, 2);
	const uint64_t half = 5 * S;

	ferry_neigh_set_options(t, 10, 0);
	CHECK_EQ(ferry_neigh_retries(t), FERRY_NEIGH_DEFAULT_RETRIES);
	CHECK(ferry_neigh_learn(t, 0, a, &m1, T0, true));
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + half, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	/* past half the timeout: ask, and keep using the entry */
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + half + 1, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(ask);
	CHECK(mac_eq(&mac, &m1));
	/* at most once per retry interval */
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + half + 1, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + half + R, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0 + half + 1 + R, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(ask);
	/* an answer makes it young again; after half a timeout more, asked at once */
	uint64_t c = T0 + half + R + R / 2;
	CHECK(!ferry_neigh_learn(t, 0, a, &m1, c, false));
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, c + R, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, c + half + 1, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(ask);

	/* a static entry never asks */
	CHECK_EQ(ferry_neigh_set_static(t, 0, s, &m1), 0);
	CHECK_EQ(ferry_neigh_lookup(t, 0, s, T0 + 1000 * S, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	ferry_neigh_destroy(t);
}

static void test_age(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac, m1 = mac_n(1);
	bool ask;
	rte_be32_t learned = ip4(10, 9, 0, 1), stat = ip4(10, 9, 0, 2), inc = ip4(10, 9, 0, 3), fail = ip4(10, 9, 0, 4);
	const uint64_t timeout = 20 * S;

	ferry_neigh_set_options(t, 20, 0);
	CHECK(ferry_neigh_learn(t, 0, learned, &m1, T0, true));
	CHECK_EQ(ferry_neigh_set_static(t, 0, stat, &m1), 0);
	CHECK_EQ(ferry_neigh_lookup(t, 0, inc, T0, &mac, &ask), FERRY_NEIGH_MISS);
	uint64_t now = T0;
	CHECK_EQ(asks_until_failed(t, fail, &now), FERRY_NEIGH_DEFAULT_RETRIES); /* last request at T0 + 2R */
	CHECK_EQ(ferry_neigh_count(t), 4);

	CHECK_EQ(ferry_neigh_age(t, T0 + timeout - 1), 0);
	CHECK(!ferry_neigh_learn(t, 0, learned, &m1, T0 + 5 * S, false)); /* confirmed again */
	/* the INCOMPLETE entry, idle since its one request */
	CHECK_EQ(ferry_neigh_age(t, T0 + timeout), 1);
	CHECK_EQ(find_dumped(t, 0, inc, T0 + timeout).flags, 0);
	CHECK_EQ(ferry_neigh_count(t), 3);
	/* the FAILED one, idle since its last request */
	CHECK_EQ(ferry_neigh_age(t, T0 + 2 * R + timeout - 1), 0);
	CHECK_EQ(ferry_neigh_age(t, T0 + 2 * R + timeout), 1);
	CHECK_EQ(find_dumped(t, 0, fail, T0 + 2 * R + timeout).flags, 0);
	/* the learned one, from its last confirmation */
	CHECK_EQ(ferry_neigh_age(t, T0 + 5 * S + timeout - 1), 0);
	CHECK_EQ(ferry_neigh_age(t, T0 + 5 * S + timeout), 1);
	CHECK_EQ(ferry_neigh_lookup(t, 0, learned, T0 + 5 * S + timeout, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	/* static: never */
	CHECK_EQ(ferry_neigh_age(t, T0 + 100000 * S), 1); /* only the new INCOMPLETE one */
	CHECK_EQ(ferry_neigh_count(t), 1);
	CHECK_EQ(ferry_neigh_lookup(t, 0, stat, T0 + 100000 * S, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m1));
	ferry_neigh_destroy(t);
}

static void test_static(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac, m1 = mac_n(1), m2 = mac_n(2), m3 = mac_n(3);
	bool ask;
	rte_be32_t a = ip4(10, 8, 0, 1), b = ip4(10, 8, 0, 2);

	CHECK_EQ(ferry_neigh_set_static(t, 3, a, &m1), 0);
	CHECK_EQ(find_dumped(t, 3, a, T0).flags, FERRY_NEIGH_FLAG_STATIC | FERRY_NEIGH_FLAG_REACHABLE);
	CHECK_EQ(find_dumped(t, 3, a, T0).age_ms, 0);
	/* ARP does not replace it, created or not */
	CHECK(!ferry_neigh_learn(t, 3, a, &m2, T0, true));
	CHECK(!ferry_neigh_learn(t, 3, a, &m2, T0, false));
	CHECK_EQ(ferry_neigh_lookup(t, 3, a, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(!ask);
	CHECK(mac_eq(&mac, &m1));
	/* configuration does */
	CHECK_EQ(ferry_neigh_set_static(t, 3, a, &m3), 0);
	CHECK_EQ(ferry_neigh_lookup(t, 3, a, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m3));
	CHECK_EQ(ferry_neigh_count(t), 1);

	/* a learned entry made static stays static */
	CHECK(ferry_neigh_learn(t, 3, b, &m1, T0, true));
	CHECK_EQ(ferry_neigh_set_static(t, 3, b, &m2), 0);
	CHECK(!ferry_neigh_learn(t, 3, b, &m1, T0, false));
	CHECK_EQ(ferry_neigh_lookup(t, 3, b, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m2));
	CHECK_EQ(ferry_neigh_age(t, T0 + 100000 * S), 0);

	/* del: static or learned, then gone */
	CHECK_EQ(ferry_neigh_del(t, 3, a), 0);
	CHECK_EQ(ferry_neigh_del(t, 3, a), -ENOENT);
	CHECK_EQ(ferry_neigh_del(t, 4, b), -ENOENT);
	CHECK_EQ(ferry_neigh_count(t), 1);
	CHECK_EQ(ferry_neigh_lookup(t, 3, a, T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	CHECK(ferry_neigh_learn(t, 3, a, &m2, T0, false));
	CHECK_EQ(ferry_neigh_del(t, 3, a), 0);
	CHECK_EQ(ferry_neigh_del(t, 3, b), 0);
	CHECK_EQ(ferry_neigh_count(t), 0);
	ferry_neigh_destroy(t);
}

static void test_two_ports(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac, m1 = mac_n(1), m2 = mac_n(2);
	bool ask;
	rte_be32_t a = ip4(10, 7, 0, 1);

	CHECK(ferry_neigh_learn(t, 0, a, &m1, T0, true));
	CHECK(ferry_neigh_learn(t, 1, a, &m2, T0, true));
	CHECK_EQ(ferry_neigh_count(t), 2);
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m1));
	CHECK_EQ(ferry_neigh_lookup(t, 1, a, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m2));
	CHECK_EQ(ferry_neigh_lookup(t, 2, a, T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	CHECK_EQ(ferry_neigh_del(t, 0, a), 0);
	CHECK_EQ(ferry_neigh_lookup(t, 1, a, T0, &mac, &ask), FERRY_NEIGH_HIT);
	CHECK(mac_eq(&mac, &m2));
	CHECK_EQ(ferry_neigh_lookup(t, 0, a, T0, &mac, &ask), FERRY_NEIGH_MISS);
	ferry_neigh_destroy(t);
}

/* every entry n in [from, to) step `step` is a HIT with mac_n(n + salt) */
static unsigned count_hits(struct ferry_neigh_table *t, uint32_t from, uint32_t to, uint32_t step, uint32_t salt)
{
	unsigned good = 0;
	for (uint32_t n = from; n < to; n += step) {
		struct rte_ether_addr mac, want = mac_n(n + salt);
		bool ask;
		good += ferry_neigh_lookup(t, 0, ip_n(n), T0, &mac, &ask) == FERRY_NEIGH_HIT && mac_eq(&mac, &want);
	}
	return good;
}

static void test_full_table(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac, m = mac_n(0);
	const uint32_t N = FERRY_NEIGH_SLOTS;
	bool ask;

	for (uint32_t n = 0; n < N; n++) {
		struct rte_ether_addr mn = mac_n(n);
		CHECK_EQ(ferry_neigh_set_static(t, 0, ip_n(n), &mn), 0);
	}
	CHECK_EQ(ferry_neigh_count(t), N);
	CHECK_EQ(count_hits(t, 0, N, 1, 0), N);

	/* full: no new entry of any kind; existing ones still update */
	CHECK_EQ(ferry_neigh_set_static(t, 0, ip_n(N), &m), -ENOSPC);
	CHECK_EQ(ferry_neigh_lookup(t, 0, ip_n(N), T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	CHECK(!ferry_neigh_learn(t, 0, ip_n(N), &m, T0, true));
	CHECK_EQ(ferry_neigh_count(t), N);
	struct rte_ether_addr m5 = mac_n(5);
	CHECK_EQ(ferry_neigh_set_static(t, 0, ip_n(5), &m5), 0);

	/* delete every other: the rest are still found past the holes */
	for (uint32_t n = 0; n < N; n += 2)
		CHECK_EQ(ferry_neigh_del(t, 0, ip_n(n)), 0);
	CHECK_EQ(ferry_neigh_count(t), N / 2);
	CHECK_EQ(count_hits(t, 1, N, 2, 0), N / 2);
	CHECK_EQ(find_dumped(t, 0, ip_n(0), T0).flags, 0);

	/* the freed slots are reused: by misses, then by learning */
	for (uint32_t n = N; n < N + N / 2; n++) {
		CHECK_EQ(ferry_neigh_lookup(t, 0, ip_n(n), T0, &mac, &ask), FERRY_NEIGH_MISS);
		CHECK(ask);
	}
	CHECK_EQ(ferry_neigh_count(t), N);
	CHECK_EQ(ferry_neigh_lookup(t, 0, ip_n(0), T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);
	for (uint32_t n = N; n < N + N / 2; n++) {
		struct rte_ether_addr mn = mac_n(n + 7);
		CHECK(ferry_neigh_learn(t, 0, ip_n(n), &mn, T0, false));
	}
	CHECK_EQ(count_hits(t, N, N + N / 2, 1, 7), N / 2);
	CHECK_EQ(count_hits(t, 1, N, 2, 0), N / 2);

	/* empty it in another order, and fill it again with other keys */
	for (uint32_t n = N + N / 2; n-- > N;)
		CHECK_EQ(ferry_neigh_del(t, 0, ip_n(n)), 0);
	for (uint32_t n = 1; n < N; n += 2)
		CHECK_EQ(ferry_neigh_del(t, 0, ip_n(n)), 0);
	CHECK_EQ(ferry_neigh_count(t), 0);
	uint32_t cursor = 0;
	bool done;
	struct ferry_neigh_entry e[8];
	CHECK_EQ(ferry_neigh_dump(t, &cursor, T0, e, RTE_DIM(e), &done), 0);
	CHECK(done);
	for (uint32_t n = 2 * N; n < 3 * N; n++) {
		struct rte_ether_addr mn = mac_n(n);
		CHECK(ferry_neigh_learn(t, 0, ip_n(n), &mn, T0, true));
	}
	CHECK_EQ(ferry_neigh_count(t), N);
	CHECK_EQ(count_hits(t, 2 * N, 3 * N, 1, 0), N);
	CHECK_EQ(ferry_neigh_lookup(t, 0, ip_n(0), T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(!ask);

	/* aging frees a full table too */
	CHECK_EQ(ferry_neigh_age(t, T0 + FERRY_NEIGH_DEFAULT_TIMEOUT_S * S), N);
	CHECK_EQ(ferry_neigh_count(t), 0);
	CHECK_EQ(ferry_neigh_lookup(t, 0, ip_n(0), T0, &mac, &ask), FERRY_NEIGH_MISS);
	CHECK(ask);
	ferry_neigh_destroy(t);
}

static void test_dump_pages(void)
{
	struct ferry_neigh_table *t = new_table();
	struct rte_ether_addr mac;
	bool ask;
	enum { N_LEARNED = 100, N_STATIC = 50, N_INCOMPLETE = 30, N_FAILED = 20 };
	const uint32_t total = N_LEARNED + N_STATIC + N_INCOMPLETE + N_FAILED;
	uint32_t want_flags[N_LEARNED + N_STATIC + N_INCOMPLETE + N_FAILED];
	uint32_t n = 0;

	ferry_neigh_set_options(t, 0, 1);
	for (uint32_t i = 0; i < N_LEARNED; i++, n++) {
		struct rte_ether_addr m = mac_n(n);
		CHECK(ferry_neigh_learn(t, (uint16_t)(n % 3), ip_n(n), &m, T0, true));
		want_flags[n] = FERRY_NEIGH_FLAG_REACHABLE;
	}
	for (uint32_t i = 0; i < N_STATIC; i++, n++) {
		struct rte_ether_addr m = mac_n(n);
		CHECK_EQ(ferry_neigh_set_static(t, (uint16_t)(n % 3), ip_n(n), &m), 0);
		want_flags[n] = FERRY_NEIGH_FLAG_STATIC | FERRY_NEIGH_FLAG_REACHABLE;
	}
	for (uint32_t i = 0; i < N_INCOMPLETE + N_FAILED; i++, n++) {
		CHECK_EQ(ferry_neigh_lookup(t, (uint16_t)(n % 3), ip_n(n), T0, &mac, &ask), FERRY_NEIGH_MISS);
		want_flags[n] = FERRY_NEIGH_FLAG_INCOMPLETE;
		if (i >= N_INCOMPLETE) { /* one retry: FAILED an interval later */
			CHECK_EQ(ferry_neigh_lookup(t, (uint16_t)(n % 3), ip_n(n), T0 + R, &mac, &ask),
				 FERRY_NEIGH_FAILED);
			want_flags[n] = FERRY_NEIGH_FLAG_FAILED;
		}
	}
	CHECK_EQ(ferry_neigh_count(t), total);

	uint8_t seen[N_LEARNED + N_STATIC + N_INCOMPLETE + N_FAILED] = { 0 };
	struct ferry_neigh_entry e[7];
	uint32_t cursor = 0, got = 0, pages = 0, bad = 0;
	bool done = false;
	const uint64_t now = T0 + 1500 * MS;
	while (!done && pages < 1000) {
		uint32_t k = ferry_neigh_dump(t, &cursor, now, e, RTE_DIM(e), &done);
		pages++;
		CHECK(k == RTE_DIM(e) || done);
		CHECK(k > 0); /* done comes with the last entries, not on an empty page after them */
		for (uint32_t i = 0; i < k; i++) {
			rte_be32_t ip;
			memcpy(&ip, e[i].ip, sizeof(ip));
			uint32_t id = rte_be_to_cpu_32(ip) - BASE_IP - 1;
			if (id >= total) {
				bad++;
				continue;
			}
			seen[id]++;
			got++;
			bad += e[i].port != id % 3 || e[i].flags != want_flags[id];
			if (want_flags[id] & FERRY_NEIGH_FLAG_REACHABLE) {
				struct rte_ether_addr m = mac_n(id);
				bad += memcmp(e[i].mac, m.addr_bytes, 6) != 0;
			}
			if (want_flags[id] == FERRY_NEIGH_FLAG_REACHABLE)
				bad += e[i].age_ms != 1500;
			if (want_flags[id] & FERRY_NEIGH_FLAG_STATIC)
				bad += e[i].age_ms != 0;
		}
	}
	CHECK(done);
	CHECK_EQ(got, total);
	CHECK_EQ(bad, 0);
	CHECK_EQ(pages, (total + RTE_DIM(e) - 1) / RTE_DIM(e));
	uint32_t once = 0;
	for (uint32_t i = 0; i < total; i++)
		once += seen[i] == 1;
	CHECK_EQ(once, total);

	/* a finished cursor stays finished */
	CHECK_EQ(ferry_neigh_dump(t, &cursor, now, e, RTE_DIM(e), &done), 0);
	CHECK(done);
	ferry_neigh_destroy(t);
}

/* Random configuration, learning, misses and deletes over more keys than slots,
 * against a plain model: tombstones and sweeps must never lose an entry, and a full
 * table must refuse exactly when the model is full. */
static void test_random_against_model(void)
{
	enum { KEYS = 1400, OPS = 300000 };
	enum { M_ABSENT, M_INCOMPLETE, M_REACHABLE, M_STATIC };
	static uint8_t state[KEYS];
	static uint32_t macn[KEYS];
	struct ferry_neigh_table *t = new_table();
	uint32_t live = 0, bad = 0, rng = 12345;

	memset(state, 0, sizeof(state));
	for (uint32_t op = 0; op < OPS; op++) {
		rng = rng * 1103515245u + 12345u;
		uint32_t k = (rng >> 8) % KEYS, what = (rng >> 24) % 8, v = op;
		uint16_t port = (uint16_t)(k & 1);
		rte_be32_t ip = ip_n(k >> 1);
		struct rte_ether_addr m = mac_n(v), got;
		bool room = live < FERRY_NEIGH_SLOTS, ask;

		switch (what) {
		case 0: /* configure */
			if (ferry_neigh_set_static(t, port, ip, &m) != ((state[k] != M_ABSENT || room) ? 0 : -ENOSPC))
				bad++;
			if (state[k] != M_ABSENT || room) {
				live += state[k] == M_ABSENT;
				state[k] = M_STATIC;
				macn[k] = v;
			}
			break;
		case 1: case 2: /* delete */
			if (ferry_neigh_del(t, port, ip) != (state[k] != M_ABSENT ? 0 : -ENOENT))
				bad++;
			live -= state[k] != M_ABSENT;
			state[k] = M_ABSENT;
			break;
		case 3: case 4: /* ARP */
			ferry_neigh_learn(t, port, ip, &m, T0, (v & 1) != 0);
			if (state[k] == M_INCOMPLETE || state[k] == M_REACHABLE || (state[k] == M_ABSENT && (v & 1) && room)) {
				live += state[k] == M_ABSENT;
				state[k] = M_REACHABLE;
				macn[k] = v;
			}
			break;
		default: { /* a packet */
			enum ferry_neigh_result r = ferry_neigh_lookup(t, port, ip, T0, &got, &ask);
			struct rte_ether_addr want = mac_n(macn[k]);
			switch (state[k]) {
			case M_ABSENT:
				bad += r != FERRY_NEIGH_MISS || ask != room;
				if (room) {
					state[k] = M_INCOMPLETE;
					live++;
				}
				break;
			case M_INCOMPLETE:
				bad += r != FERRY_NEIGH_MISS || ask;
				break;
			default:
				bad += r != FERRY_NEIGH_HIT || ask || !mac_eq(&got, &want);
				break;
			}
		}
		}
		bad += ferry_neigh_count(t) != live;
		if (bad != 0) {
			fprintf(stderr, "  diverged at op %u (key %u, op kind %u)\n", op, k, what);
			break;
		}
	}

	/* every modelled entry is still reachable */
	uint32_t found = 0;
	for (uint32_t k = 0; k < KEYS; k++) {
		struct rte_ether_addr got;
		bool ask;
		if (state[k] == M_REACHABLE || state[k] == M_STATIC)
			found += ferry_neigh_lookup(t, (uint16_t)(k & 1), ip_n(k >> 1), T0, &got, &ask) == FERRY_NEIGH_HIT;
		else if (state[k] == M_INCOMPLETE)
			found += ferry_neigh_lookup(t, (uint16_t)(k & 1), ip_n(k >> 1), T0, &got, &ask) == FERRY_NEIGH_MISS;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(found, live);
	CHECK_EQ(ferry_neigh_count(t), live);
	ferry_neigh_destroy(t);
}

/* ---- lock-free readers against a writer ---- */

static const struct rte_ether_addr mac_a = { { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 } };
static const struct rte_ether_addr mac_b = { { 0x0a, 0xee, 0xdd, 0xcc, 0xbb, 0xaa } };

struct race {
	struct ferry_neigh_table *t;
	rte_be32_t ip, other;
	int stop;
	uint64_t writes;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint64_t i = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		ferry_neigh_learn(r->t, 0, r->ip, (i & 1) ? &mac_b : &mac_a, T0, true);
		/* now and then the entry and a neighbour go away and come back, so the
		 * reader also races deletes, tombstones and sweeps */
		if ((i & 255) == 255) {
			ferry_neigh_del(r->t, 0, r->ip);
			ferry_neigh_learn(r->t, 0, r->other, &mac_a, T0, true);
			ferry_neigh_del(r->t, 0, r->other);
		}
		i++;
		__atomic_store_n(&r->writes, i, __ATOMIC_RELAXED);
	}
	return NULL;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_concurrent_readers(void)
{
	struct race r = { .t = new_table(), .ip = ip4(10, 66, 0, 1), .other = ip4(10, 66, 0, 2) };
	uint64_t lookups = 0, hits = 0, torn = 0, saw_a = 0, saw_b = 0;
	pthread_t th;

	/* neighbours of the raced entry, so probes cross other slots too */
	for (uint32_t n = 0; n < 64; n++) {
		struct rte_ether_addr m = mac_n(n);
		CHECK_EQ(ferry_neigh_set_static(r.t, 0, ip_n(n), &m), 0);
	}
	CHECK(ferry_neigh_learn(r.t, 0, r.ip, &mac_a, T0, true));
	CHECK_EQ(pthread_create(&th, NULL, race_writer, &r), 0);

	double deadline = wall_s() + 30;
	while ((lookups < 4000000 || __atomic_load_n(&r.writes, __ATOMIC_RELAXED) < 10000) && wall_s() < deadline) {
		for (int k = 0; k < 1000; k++, lookups++) {
			struct rte_ether_addr mac;
			bool ask;
			if (ferry_neigh_lookup(r.t, 0, r.ip, T0, &mac, &ask) != FERRY_NEIGH_HIT)
				continue;
			hits++;
			if (mac_eq(&mac, &mac_a))
				saw_a++;
			else if (mac_eq(&mac, &mac_b))
				saw_b++;
			else
				torn++;
		}
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);

	printf("  %lu lookups, %lu hits (%lu a, %lu b), %lu writes\n", (unsigned long)lookups, (unsigned long)hits,
	       (unsigned long)saw_a, (unsigned long)saw_b, (unsigned long)r.writes);
	CHECK_EQ(torn, 0);
	CHECK(saw_a > 0 && saw_b > 0);
	CHECK(r.writes >= 10000);
	/* the statics were never disturbed */
	CHECK_EQ(count_hits(r.t, 0, 64, 1, 0), 64);
	ferry_neigh_destroy(r.t);
}

/* ---- ARP ---- */

static const struct rte_ether_addr our_mac = { { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 } };
static const struct rte_ether_addr peer_mac = { { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef } };

/* a frame: dst/src, optional tag (VID 100), then ARP; padded to 60 with pad_byte */
static uint32_t arp_frame(uint8_t *b, bool vlan, uint16_t op, const struct rte_ether_addr *sha, rte_be32_t spa,
			  rte_be32_t tpa, uint8_t pad_byte)
{
	uint32_t o = 0;
	memset(b, pad_byte, FERRY_ARP_FRAME_LEN);
	memset(b, 0xff, 6);
	memcpy(b + 6, sha->addr_bytes, 6);
	o = 12;
	if (vlan) {
		b[o++] = 0x81, b[o++] = 0x00, b[o++] = 0x00, b[o++] = 100;
	}
	b[o++] = 0x08, b[o++] = 0x06;
	b[o++] = 0x00, b[o++] = 0x01; /* htype */
	b[o++] = 0x08, b[o++] = 0x00; /* ptype */
	b[o++] = 6, b[o++] = 4;
	b[o++] = (uint8_t)(op >> 8), b[o++] = (uint8_t)op;
	memcpy(b + o, sha->addr_bytes, 6), o += 6;
	memcpy(b + o, &spa, 4), o += 4;
	memset(b + o, 0, 6), o += 6;
	memcpy(b + o, &tpa, 4), o += 4;
	return o;
}

static void test_arp_parse(void)
{
	uint8_t b[FERRY_ARP_FRAME_LEN];
	struct ferry_arp_info info;
	rte_be32_t peer = ip4(10, 0, 0, 2), us = ip4(10, 0, 0, 1);

	for (int vlan = 0; vlan < 2; vlan++) {
		uint32_t len = arp_frame(b, vlan, RTE_ARP_OP_REQUEST, &peer_mac, peer, us, 0);
		CHECK_EQ(len, vlan ? 46 : 42);
		memset(&info, 0x5a, sizeof(info));
		CHECK(ferry_arp_parse(b, len, &info));
		CHECK_EQ(info.op, RTE_ARP_OP_REQUEST);
		CHECK(mac_eq(&info.sha, &peer_mac));
		CHECK_EQ(info.spa, peer);
		CHECK(rte_is_zero_ether_addr(&info.tha));
		CHECK_EQ(info.tpa, us);
		CHECK(ferry_arp_parse(b, FERRY_ARP_FRAME_LEN, &info)); /* padding is fine */

		/* truncated anywhere */
		unsigned refused = 0;
		for (uint32_t l = 0; l < len; l++)
			refused += !ferry_arp_parse(b, l, &info);
		CHECK_EQ(refused, len);

		len = arp_frame(b, vlan, RTE_ARP_OP_REPLY, &peer_mac, peer, us, 0);
		memset(&info, 0, sizeof(info));
		CHECK(ferry_arp_parse(b, len, &info));
		CHECK_EQ(info.op, RTE_ARP_OP_REPLY);
		CHECK(mac_eq(&info.sha, &peer_mac));
		CHECK_EQ(info.spa, peer);
		CHECK_EQ(info.tpa, us);

		/* a probe (spa 0) is a request we may answer, never a reply */
		len = arp_frame(b, vlan, RTE_ARP_OP_REQUEST, &peer_mac, 0, us, 0);
		CHECK(ferry_arp_parse(b, len, &info));
		CHECK_EQ(info.spa, 0);
		len = arp_frame(b, vlan, RTE_ARP_OP_REPLY, &peer_mac, 0, us, 0);
		CHECK(!ferry_arp_parse(b, len, &info));

		/* each field wrong in turn */
		const uint32_t a = vlan ? 18 : 14; /* ARP header */
		static const struct {
			uint32_t at;
			uint8_t val;
		} bad[] = {
			{ 0, 0x01 }, { 1, 0x06 },   /* htype 257, 6 (IEEE 802) */
			{ 2, 0x86 }, { 3, 0xdd },   /* ptype */
			{ 4, 8 },                   /* hlen */
			{ 5, 16 },                  /* plen */
			{ 7, 0 }, { 7, 3 }, { 6, 1 }, /* op 0, 3 (RARP), 257 */
			{ 8, 0x01 },                /* sha multicast (group bit) */
			{ 8, 0x03 },                /* sha multicast, locally administered */
		};
		for (unsigned i = 0; i < RTE_DIM(bad); i++) {
			len = arp_frame(b, vlan, RTE_ARP_OP_REQUEST, &peer_mac, peer, us, 0);
			b[a + bad[i].at] = bad[i].val;
			if (ferry_arp_parse(b, len, &info)) {
				fprintf(stderr, "  accepted bad ARP #%u (vlan %d)\n", i, vlan);
				CHECK(false);
			}
		}
		static const struct rte_ether_addr bcast = { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
		static const struct rte_ether_addr zero;
		len = arp_frame(b, vlan, RTE_ARP_OP_REQUEST, &bcast, peer, us, 0);
		CHECK(!ferry_arp_parse(b, len, &info));
		len = arp_frame(b, vlan, RTE_ARP_OP_REPLY, &zero, peer, us, 0);
		CHECK(!ferry_arp_parse(b, len, &info));

		/* not ARP */
		len = arp_frame(b, vlan, RTE_ARP_OP_REQUEST, &peer_mac, peer, us, 0);
		b[a - 2] = 0x08, b[a - 1] = 0x00;
		CHECK(!ferry_arp_parse(b, len, &info));
	}

	/* two tags, or a QinQ outer tag, are not spoken here */
	uint8_t q[FERRY_ARP_FRAME_LEN + 4];
	uint32_t len = arp_frame(q + 4, true, RTE_ARP_OP_REQUEST, &peer_mac, peer, us, 0);
	memmove(q, q + 4, 12);
	q[12] = 0x81, q[13] = 0x00, q[14] = 0x00, q[15] = 200;
	CHECK(!ferry_arp_parse(q, len + 4, &info));
	len = arp_frame(b, true, RTE_ARP_OP_REQUEST, &peer_mac, peer, us, 0);
	b[12] = 0x88, b[13] = 0xa8;
	CHECK(!ferry_arp_parse(b, len, &info));
}

static struct rte_mbuf *mbuf_with(const uint8_t *data, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	CHECK(m != NULL);
	if (m == NULL)
		exit(1);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)len);
	CHECK(p != NULL);
	memcpy(p, data, len);
	return m;
}

static void test_arp_build_request(void)
{
	static const uint8_t want[FERRY_ARP_FRAME_LEN] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* dst: broadcast */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* src: ours */
		0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, /* Ethernet, IPv4, 6, 4, request */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 168, 10, 1, /* sha, spa */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 10, 254, /* tha (unknown), tpa */
		/* 18 bytes of zero padding */
	};
	uint8_t junk[200];
	memset(junk, 0xa5, sizeof(junk));

	/* a used mbuf, with data and another segment chained, is made over */
	unsigned avail = rte_mempool_avail_count(pool);
	struct rte_mbuf *m = mbuf_with(junk, sizeof(junk));
	struct rte_mbuf *tail = mbuf_with(junk, 50);
	CHECK_EQ(rte_pktmbuf_chain(m, tail), 0);
	rte_pktmbuf_adj(m, 10);
	m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_BAD;
	m->packet_type = RTE_PTYPE_L3_IPV4;

	ferry_arp_build_request(m, &our_mac, ip4(192, 168, 10, 1), ip4(192, 168, 10, 254));
	CHECK_EQ(m->pkt_len, FERRY_ARP_FRAME_LEN);
	CHECK_EQ(m->data_len, FERRY_ARP_FRAME_LEN);
	CHECK_EQ(m->nb_segs, 1);
	CHECK(m->next == NULL);
	CHECK_EQ(m->ol_flags, 0);
	CHECK_EQ(m->data_off, RTE_PKTMBUF_HEADROOM);
	CHECK(memcmp(rte_pktmbuf_mtod(m, uint8_t *), want, sizeof(want)) == 0);
	CHECK_EQ(rte_mempool_avail_count(pool), avail - 1);

	/* and it parses as what it is */
	struct ferry_arp_info info;
	CHECK(ferry_arp_parse(rte_pktmbuf_mtod(m, uint8_t *), m->data_len, &info));
	CHECK_EQ(info.op, RTE_ARP_OP_REQUEST);
	CHECK(mac_eq(&info.sha, &our_mac));
	CHECK_EQ(info.tpa, ip4(192, 168, 10, 254));
	rte_pktmbuf_free(m);
	CHECK_EQ(rte_mempool_avail_count(pool), avail);
}

static void test_arp_make_reply(void)
{
	static const uint8_t want[FERRY_ARP_FRAME_LEN] = {
		0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, /* dst: the requester */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, /* src: ours */
		0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, /* reply */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, /* sha: ours, spa: the address asked for */
		0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 10, 0, 0, 2, /* tha, tpa: the requester */
		/* padding zeroed */
	};
	static const uint8_t want_vlan[FERRY_ARP_FRAME_LEN] = {
		0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x81, 0x00, 0x00, 100, /* the tag stays */
		0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1,
		0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 10, 0, 0, 2,
	};
	uint8_t b[FERRY_ARP_FRAME_LEN];
	struct ferry_arp_info req;

	for (int vlan = 0; vlan < 2; vlan++) {
		/* padding that is not zero must not go back out */
		arp_frame(b, vlan, RTE_ARP_OP_REQUEST, &peer_mac, ip4(10, 0, 0, 2), ip4(10, 0, 0, 1), 0xcc);
		CHECK(ferry_arp_parse(b, sizeof(b), &req));
		struct rte_mbuf *m = mbuf_with(b, sizeof(b));
		ferry_arp_make_reply(m, &req, &our_mac);
		CHECK_EQ(m->pkt_len, FERRY_ARP_FRAME_LEN);
		CHECK(memcmp(rte_pktmbuf_mtod(m, uint8_t *), vlan ? want_vlan : want, FERRY_ARP_FRAME_LEN) == 0);

		struct ferry_arp_info rep;
		CHECK(ferry_arp_parse(rte_pktmbuf_mtod(m, uint8_t *), m->data_len, &rep));
		CHECK_EQ(rep.op, RTE_ARP_OP_REPLY);
		CHECK(mac_eq(&rep.sha, &our_mac));
		CHECK(mac_eq(&rep.tha, &peer_mac));
		CHECK_EQ(rep.spa, req.tpa);
		CHECK_EQ(rep.tpa, req.spa);
		rte_pktmbuf_free(m);
	}

	/* an unpadded request (42 bytes) keeps its length */
	uint32_t len = arp_frame(b, false, RTE_ARP_OP_REQUEST, &peer_mac, ip4(10, 0, 0, 2), ip4(10, 0, 0, 1), 0);
	CHECK(ferry_arp_parse(b, len, &req));
	struct rte_mbuf *m = mbuf_with(b, len);
	ferry_arp_make_reply(m, &req, &our_mac);
	CHECK_EQ(m->pkt_len, len);
	CHECK(memcmp(rte_pktmbuf_mtod(m, uint8_t *), want, len) == 0);
	rte_pktmbuf_free(m);
}

int main(void)
{
	ferry_test_eal_init("underlay", NULL, 0);
	pool = rte_pktmbuf_pool_create("test_underlay", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "no mbuf pool\n");
		return 1;
	}

	RUN(test_miss_asks_once_per_interval);
	RUN(test_retries_then_failed);
	RUN(test_learn);
	RUN(test_refresh);
	RUN(test_age);
	RUN(test_static);
	RUN(test_two_ports);
	RUN(test_full_table);
	RUN(test_dump_pages);
	RUN(test_random_against_model);
	RUN(test_concurrent_readers);
	RUN(test_arp_parse);
	RUN(test_arp_build_request);
	RUN(test_arp_make_reply);

	rte_mempool_free(pool);
	rte_eal_cleanup();
	return ftest_finish();
}
