/* ferry-bench-conntrack: the tracker's figures for make bench, one line each:
 *   "<metric>\t<value>\t<unit>"
 * Modes (argv[1]):
 *   ovs T N B     OVS's `ovstest test-conntrack benchmark T N B` workload, reproduced:
 *                 each of T threads sends N copies (batches of B, all alike) of the
 *                 42-byte UDP frame 10.1.1.1:(1+tid) -> 10.1.1.2:2 through ct(commit) in
 *                 zone 0 at a fixed time. The IPv4 checksum is verified on the first
 *                 pass only (then known good), as OVS does; the UDP checksum is 0.
 *   setup NC B    new connections: NC distinct flows (OVS's benchmark-zones tuples)
 *                 committed in batches of B into a table that held and flushed NC
 *                 before (warm memory), then NC established lookups in a shuffled
 *                 order, batches of 32, no commit.
 *   cleanup NC    the cleanup thread expires NC connections while a worker thread
 *                 runs bursts of 32 lookups: the worst burst time.
 *   nat NC B      NAT next to no NAT in one run: NC new connections committed plain,
 *                 then (table flushed) with ct(commit,nat(src=16 addresses)), batch B;
 *                 then each connection's reply, shuffled, batches of 32: plain replies
 *                 tracked, and SNATed replies found by their reply nodes and rewritten
 *                 back (the worker's rewriter, in place).
 * Nothing here uses EAL: the tracker needs none. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../conntrack/conntrack.h"
#include "../nat/nat_rewrite.h"

#define FRAME_LEN 42

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* benchmarks.md A.4, byte for byte; ports patched in */
static void ovs_frame(uint8_t *f, uint16_t sport, uint16_t dport)
{
	static const uint8_t tmpl[FRAME_LEN] = {
		0x50, 0x54, 0x00, 0x00, 0x00, 0x0a, 0x50, 0x54, 0x00, 0x00, 0x00, 0x09, 0x08, 0x00,
		0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0xa4, 0xcd,
		0x0a, 0x01, 0x01, 0x01, 0x0a, 0x01, 0x01, 0x02,
		0x00, 0x01, 0x00, 0x02, 0x00, 0x08, 0x00, 0x00,
	};
	memcpy(f, tmpl, FRAME_LEN);
	f[34] = (uint8_t)(sport >> 8);
	f[35] = (uint8_t)sport;
	f[36] = (uint8_t)(dport >> 8);
	f[37] = (uint8_t)dport;
}

/* the frame's IPv4 header checksum, computed again after a change */
static void ip4_csum_fix(uint8_t *f)
{
	uint32_t s = 0;
	f[24] = f[25] = 0;
	for (int k = 14; k < 34; k += 2)
		s += (uint32_t)(f[k] << 8 | f[k + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	s = ~s & 0xffff;
	f[24] = (uint8_t)(s >> 8);
	f[25] = (uint8_t)s;
}

static void pkt_of(struct ferry_ct_pkt *p, const uint8_t *f)
{
	p->data = f;
	p->len = FRAME_LEN;
	p->l3_ofs = 14;
	p->eth_type = 0x0800;
	p->flags = 0;
}

/* ---- ovs ---- */

struct ovs_arg {
	struct ferry_ct *ct;
	unsigned tid;
	uint64_t n, batch;
	pthread_barrier_t *start;
	uint64_t checksum;
};

static void *ovs_thread(void *arg)
{
	struct ovs_arg *a = arg;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(a->ct, &t);
	/* B buffers of the same content, as OVS builds its batch */
	static __thread uint8_t frames[FERRY_CT_BURST_MAX][64];
	struct ferry_ct_pkt pkts[FERRY_CT_BURST_MAX];
	struct ferry_ct_result res[FERRY_CT_BURST_MAX];
	struct ferry_ct_action act = { .zone = 0, .flags = FERRY_CT_FLAG_COMMIT };
	const struct ferry_ct_action *ap[FERRY_CT_BURST_MAX];
	for (unsigned i = 0; i < a->batch; i++) {
		ovs_frame(frames[i], (uint16_t)(1 + a->tid), 2);
		pkt_of(&pkts[i], frames[i]);
		ap[i] = &act;
	}
	uint64_t now = now_ns();
	pthread_barrier_wait(a->start);
	for (uint64_t i = 0; i < a->n; i += a->batch)
		ferry_ct_execute(&t, pkts, ap, (unsigned)a->batch, now, res);
	a->checksum = res[0].state;
	pthread_barrier_wait(a->start);
	ferry_ct_thread_fini(&t);
	return NULL;
}

static int mode_ovs(unsigned threads, uint64_t n, unsigned batch)
{
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 3000000 });
	if (ct == NULL)
		return 1;
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, threads + 1);
	pthread_t th[64];
	struct ovs_arg args[64];
	for (unsigned i = 0; i < threads; i++) {
		args[i] = (struct ovs_arg){ .ct = ct, .tid = i, .n = n, .batch = batch, .start = &start };
		pthread_create(&th[i], NULL, ovs_thread, &args[i]);
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = now_ns();
	pthread_barrier_wait(&start);
	uint64_t t1 = now_ns();
	for (unsigned i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	char st[64];
	ferry_ct_state_str((uint32_t)args[0].checksum, st, sizeof(st));
	double mpps = (double)threads * (double)n / ((double)(t1 - t0) / 1e9) / 1e6;
	printf("ct ovs-benchmark %u thread(s) batch %u\t%.2f\tMpps\t(%llu ms, %llu connections, last state %s)\n",
	       threads, batch, mpps, (unsigned long long)((t1 - t0) / 1000000), (unsigned long long)ferry_ct_count(ct), st);
	ferry_ct_destroy(ct);
	return 0;
}

/* ---- setup and established lookups ---- */

static uint8_t *flow_frames(uint32_t nc)
{
	uint8_t *fr = malloc((size_t)nc * FRAME_LEN);
	for (uint32_t i = 0; i < nc; i++) {
		/* benchmark-zones' tuples, made distinct past 65535 by the source address */
		uint16_t sport = (uint16_t)((i >> 16) ? (i >> 16) : 65535);
		uint16_t dport = (uint16_t)((i & 0xffff) ? (i & 0xffff) : 65535);
		uint8_t *f = fr + (size_t)i * FRAME_LEN;
		ovs_frame(f, sport, dport);
		/* the IPv4 checksum does not cover ports; source address bytes are patched
		 * only for i == 0 mod 65536 collisions, with the checksum fixed */
		if (i && (i & 0xffff) == 0) {
			f[29] = (uint8_t)(1 + (i >> 16));
			ip4_csum_fix(f);
		}
	}
	return fr;
}

static double run_flows(struct ferry_ct_thread *t, const uint8_t *fr, const uint32_t *order, uint32_t nc,
			unsigned batch, uint16_t flags, uint64_t now)
{
	struct ferry_ct_pkt pkts[FERRY_CT_BURST_MAX];
	struct ferry_ct_result res[FERRY_CT_BURST_MAX];
	struct ferry_ct_action act = { .zone = 1, .flags = flags };
	const struct ferry_ct_action *ap[FERRY_CT_BURST_MAX];
	for (unsigned i = 0; i < FERRY_CT_BURST_MAX; i++)
		ap[i] = &act;
	uint64_t t0 = now_ns();
	for (uint32_t i = 0; i < nc; i += batch) {
		unsigned k = nc - i < batch ? nc - i : batch;
		for (unsigned j = 0; j < k; j++)
			pkt_of(&pkts[j], fr + (size_t)(order ? order[i + j] : i + j) * FRAME_LEN);
		ferry_ct_execute(t, pkts, ap, k, now, res);
	}
	return (double)nc / ((double)(now_ns() - t0) / 1e9) / 1e6;
}

/* The burst of up to 32 frames from order[i] on, copied into the receive buffer rx;
 * returns how many. */
static unsigned receive(uint8_t (*rx)[64], const uint8_t *fr, const uint32_t *order, uint32_t i, uint32_t nc)
{
	unsigned k = nc - i < 32 ? nc - i : 32;
	for (unsigned j = 0; j < k; j++)
		memcpy(rx[j], fr + (size_t)order[i + j] * FRAME_LEN, FRAME_LEN);
	return k;
}

/* Established lookups, bursts of 32 in 'order': M/s of the tracker's own time. In
 * the worker a packet reaches ct() in an mbuf the parser has just read, hot in the
 * cache, so each burst's frames are copied into a receive buffer first (as a NIC
 * ring's buffers are), and only ferry_ct_execute is timed. Without that, every
 * packet would pay a miss on a 42 MB frame array that no worker has. */
static double run_lookups(struct ferry_ct_thread *t, const uint8_t *fr, const uint32_t *order, uint32_t nc,
			  uint64_t now)
{
	static uint8_t rx[32][64] __attribute__((aligned(64)));
	struct ferry_ct_pkt pkts[32];
	struct ferry_ct_result res[32];
	struct ferry_ct_action act = { .zone = 1 };
	const struct ferry_ct_action *ap[32];
	for (unsigned j = 0; j < 32; j++) {
		ap[j] = &act;
		pkt_of(&pkts[j], rx[j]);
	}
	uint64_t spent = 0;
	for (uint32_t i = 0; i < nc; i += 32) {
		unsigned k = receive(rx, fr, order, i, nc);
		uint64_t t0 = now_ns();
		ferry_ct_execute(t, pkts, ap, k, now, res);
		spent += now_ns() - t0;
	}
	/* the same packets again (untimed) with commit: had any key no entry, the table
	 * would grow, and the figure above would not be of established lookups */
	uint64_t before = ferry_ct_count(t->ct);
	act.flags = FERRY_CT_FLAG_COMMIT;
	for (uint32_t i = 0; i < nc; i += 32)
		ferry_ct_execute(t, pkts, ap, receive(rx, fr, order, i, nc), now, res);
	if (ferry_ct_count(t->ct) != before) {
		fprintf(stderr, "ferry-bench-conntrack: %llu lookups met no entry\n",
			(unsigned long long)(ferry_ct_count(t->ct) - before));
		return 0;
	}
	return (double)nc / ((double)spent / 1e9) / 1e6;
}

/* 0..nc-1 in a random order (fixed by seed) */
static uint32_t *shuffled(uint32_t nc, unsigned seed)
{
	uint32_t *order = malloc(nc * sizeof(*order));
	for (uint32_t i = 0; i < nc; i++)
		order[i] = i;
	srand(seed);
	for (uint32_t i = nc - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % (i + 1));
		uint32_t x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	return order;
}

/* ---- nat ---- */

/* The benchmark's 42-byte UDP frame (checksum 0) between any addresses */
static void frame4(uint8_t *f, const uint8_t *src, const uint8_t *dst, uint16_t sport, uint16_t dport)
{
	ovs_frame(f, sport, dport);
	memcpy(f + 26, src, 4);
	memcpy(f + 30, dst, 4);
	ip4_csum_fix(f);
}

struct reply_frames { uint8_t *fr; uint32_t n; };
static int reply_of(void *arg, const struct ferry_ct_entry *e)
{
	struct reply_frames *r = arg;
	frame4(r->fr + (size_t)r->n * FRAME_LEN, e->reply_src, e->reply_dst, e->reply_sport, e->reply_dport);
	r->n++;
	return 0;
}

/* the replies of every connection in the table, as frames */
static uint32_t replies(struct ferry_ct *ct, uint8_t *fr, uint64_t now)
{
	struct reply_frames r = { fr, 0 };
	bool done;
	ferry_ct_dump(ct, NULL, 0, 0, now, reply_of, &r, &done);
	return r.n;
}

/* Bursts of 32 through ct(nat) (or plain ct), each flagged packet rewritten as the
 * worker does: M/s */
static double run_replies(struct ferry_ct_thread *t, uint8_t *fr, const uint32_t *order, uint32_t nc, uint16_t flags,
			  uint64_t now, uint64_t *rewritten)
{
	struct ferry_ct_pkt pkts[32];
	struct ferry_ct_result res[32];
	uint8_t *at[32];
	struct ferry_ct_action act = { .zone = 1, .flags = flags };
	const struct ferry_ct_action *ap[32];
	for (unsigned i = 0; i < 32; i++)
		ap[i] = &act;
	uint64_t t0 = now_ns();
	for (uint32_t i = 0; i < nc; i += 32) {
		unsigned k = nc - i < 32 ? nc - i : 32;
		for (unsigned j = 0; j < k; j++) {
			at[j] = fr + (size_t)order[i + j] * FRAME_LEN;
			pkt_of(&pkts[j], at[j]);
		}
		ferry_ct_execute(t, pkts, ap, k, now, res);
		for (uint64_t m = t->nat_mask; m; m &= m - 1) {
			unsigned j = (unsigned)__builtin_ctzll(m);
			*rewritten += ferry_nat_rewrite(at[j], FRAME_LEN, 14, 34, 0, &t->rw[j]) == 0;
		}
	}
	return (double)nc / ((double)(now_ns() - t0) / 1e9) / 1e6;
}

static int mode_nat(uint32_t nc, unsigned batch)
{
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = nc + 1024 });
	if (ct == NULL)
		return 1;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	uint8_t *fr = flow_frames(nc), *rfr = malloc((size_t)nc * FRAME_LEN);
	uint32_t *order = shuffled(nc, 11);
	uint64_t now = now_ns(), rewritten = 0;
	struct ferry_ct_action snat = { .zone = 1, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC };
	const uint8_t lo[4] = { 203, 0, 113, 1 }, hi[4] = { 203, 0, 113, 16 };
	memcpy(snat.nat_addr_min, lo, 4);
	memcpy(snat.nat_addr_max, hi, 4);
	/* warm: every page both runs touch (entries, reply nodes, slots) is touched once
	 * before either is timed, by a translated commit of everything and a flush */
	struct ferry_ct_pkt wp[FERRY_CT_BURST_MAX];
	struct ferry_ct_result wr[FERRY_CT_BURST_MAX];
	const struct ferry_ct_action *wa[FERRY_CT_BURST_MAX];
	for (unsigned i = 0; i < FERRY_CT_BURST_MAX; i++)
		wa[i] = &snat;
	for (uint32_t i = 0; i < nc; i += batch) {
		unsigned k = nc - i < batch ? nc - i : batch;
		for (unsigned j = 0; j < k; j++)
			pkt_of(&wp[j], fr + (size_t)(i + j) * FRAME_LEN);
		ferry_ct_execute(&t, wp, wa, k, now, wr);
	}
	ferry_ct_flush(&t, NULL, now);

	double plain_new = run_flows(&t, fr, NULL, nc, batch, FERRY_CT_FLAG_COMMIT, now);
	uint32_t nr = replies(ct, rfr, now);
	uint32_t *rorder = shuffled(nr, 12);
	double plain_rpl = run_replies(&t, rfr, rorder, nr, 0, now, &rewritten);
	free(rorder);
	ferry_ct_flush(&t, NULL, now);

	struct ferry_ct_pkt pkts[FERRY_CT_BURST_MAX];
	struct ferry_ct_result res[FERRY_CT_BURST_MAX];
	const struct ferry_ct_action *ap[FERRY_CT_BURST_MAX];
	for (unsigned i = 0; i < FERRY_CT_BURST_MAX; i++)
		ap[i] = &snat;
	uint64_t t0 = now_ns();
	for (uint32_t i = 0; i < nc; i += batch) {
		unsigned k = nc - i < batch ? nc - i : batch;
		for (unsigned j = 0; j < k; j++)
			pkt_of(&pkts[j], fr + (size_t)(i + j) * FRAME_LEN);
		ferry_ct_execute(&t, pkts, ap, k, now, res);
	}
	double nat_new = (double)nc / ((double)(now_ns() - t0) / 1e9) / 1e6;
	uint64_t natted = ferry_ct_count(ct);
	nr = replies(ct, rfr, now);
	rewritten = 0;
	/* as many replies as connections (the frames' tuples repeat once past 65535) */
	free(order);
	order = shuffled(nr, 13);
	double nat_rpl = run_replies(&t, rfr, order, nr, FERRY_CT_FLAG_NAT, now, &rewritten);

	printf("ct nat new connections/s at %u, batch %u, no NAT\t%.2f\tM/s\n", nc, batch, plain_new);
	printf("ct nat new connections/s at %u, batch %u, SNAT\t%.2f\tM/s\t(%llu committed)\n", nc, batch, nat_new,
	       (unsigned long long)natted);
	printf("ct nat established replies at %u, batch 32, no NAT\t%.2f\tM/s\n", nc, plain_rpl);
	printf("ct nat established replies at %u, batch 32, SNAT reply node + rewrite\t%.2f\tM/s\t(%llu rewritten)\n",
	       nc, nat_rpl, (unsigned long long)rewritten);
	ferry_ct_thread_fini(&t);
	ferry_ct_destroy(ct);
	free(fr);
	free(rfr);
	free(order);
	/* every committed connection's reply found its entry and was translated back */
	return natted > 0 && rewritten == natted ? 0 : 1;
}

static int mode_setup(uint32_t nc, unsigned batch)
{
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = nc + 1024 });
	if (ct == NULL)
		return 1;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	uint8_t *fr = flow_frames(nc);
	uint32_t *order = shuffled(nc, 7);
	uint64_t now = now_ns();
	/* warm: touch the pool once, as OVS's initial fill does */
	run_flows(&t, fr, NULL, nc, batch, FERRY_CT_FLAG_COMMIT, now);
	ferry_ct_flush(&t, NULL, now);
	double setup = run_flows(&t, fr, NULL, nc, batch, FERRY_CT_FLAG_COMMIT, now);
	uint64_t created = ferry_ct_count(ct);
	const char *reps_env = getenv("FERRY_CT_LOOKUP_REPS");
	int reps = reps_env ? atoi(reps_env) : 1;
	double lookup = 0;
	for (int r = 0; r < reps; r++)
		lookup = run_lookups(&t, fr, order, nc, now);
	printf("ct new connections/s at %u, batch %u\t%.2f\tM/s\t(%llu in table)\n", nc, batch, setup,
	       (unsigned long long)created);
	printf("ct established lookups at %u, batch 32\t%.2f\tM/s\n", nc, lookup);
	ferry_ct_thread_fini(&t);
	ferry_ct_destroy(ct);
	free(fr);
	free(order);
	return 0;
}

/* ---- cleanup while a worker runs ---- */

struct clock_ctl {
	volatile uint64_t offset; /* added to the real clock: jumps to expire everything */
};

static uint64_t shifted_clock(void *arg)
{
	struct clock_ctl *c = arg;
	return now_ns() + c->offset;
}

/* Burst times of one phase: a histogram in microseconds (the last bin: 1 ms or more) */
#define BURST_BINS 1001u
struct burst_stats {
	uint64_t worst_ns, bursts, over_50us;
	uint32_t bin[BURST_BINS];
};

static void burst_add(struct burst_stats *s, uint64_t d)
{
	if (d > s->worst_ns)
		s->worst_ns = d;
	s->over_50us += d > 50000;
	s->bursts++;
	uint64_t us = d / 1000;
	s->bin[us < BURST_BINS - 1 ? us : BURST_BINS - 1]++;
}

/* the burst time (us, upper bound of its bin) that a fraction q of the bursts stay within */
static double burst_quantile(const struct burst_stats *s, double q)
{
	uint64_t want = (uint64_t)((double)s->bursts * q), seen = 0;
	if (s->bursts == 0)
		return 0;
	for (unsigned b = 0; b < BURST_BINS; b++) {
		seen += s->bin[b];
		if (seen >= want && seen > 0)
			return b + 1;
	}
	return BURST_BINS;
}

struct worker_arg {
	struct ferry_ct *ct;
	struct clock_ctl *clk;
	const uint8_t *fr;
	uint32_t n_live;
	volatile int stop;
	volatile int phase;            /* 0: before the sweep (the baseline), 1: sweeping */
	volatile int reset;            /* set by the bench: the worker clears phase 0's figures */
	struct burst_stats st[2];
};

static void *cleanup_worker(void *arg)
{
	struct worker_arg *a = arg;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(a->ct, &t);
	struct ferry_ct_pkt pkts[32];
	struct ferry_ct_result res[32];
	struct ferry_ct_action act = { .zone = 2, .flags = FERRY_CT_FLAG_COMMIT };
	const struct ferry_ct_action *ap[32];
	for (unsigned i = 0; i < 32; i++)
		ap[i] = &act;
	uint32_t at = 0;
	while (!a->stop) {
		for (unsigned j = 0; j < 32; j++) {
			pkt_of(&pkts[j], a->fr + (size_t)at * FRAME_LEN);
			at = at + 1 == a->n_live ? 0 : at + 1;
		}
		if (a->reset) {
			memset(&a->st[0], 0, sizeof(a->st[0]));
			a->reset = 0;
		}
		int phase = a->phase;
		uint64_t t0 = now_ns();
		ferry_ct_execute(&t, pkts, ap, 32, t0 + a->clk->offset, res);
		burst_add(&a->st[phase], now_ns() - t0);
	}
	ferry_ct_thread_fini(&t);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* The cleanup thread's work (conntrack.c's cleanup_main calls ferry_ct_sweep the same
 * way), started when the bench says: sweeps at the shifted clock, back to back rather
 * than every sweep_interval_ms, until only the worker's entries are left. */
struct sweeper_arg {
	struct ferry_ct *ct;
	struct clock_ctl *clk;
	uint32_t keep;
};

static void *sweeper(void *arg)
{
	struct sweeper_arg *a = arg;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(a->ct, &t);
	pthread_setname_np(pthread_self(), "ferry-ct-clean");
	while (ferry_ct_count(a->ct) > a->keep)
		ferry_ct_sweep(&t, shifted_clock(a->clk));
	ferry_ct_thread_fini(&t);
	return NULL;
}

/* The worker's bursts while a cleanup thread expires nc connections, next to its
 * bursts in the same run just before with no cleanup thread at all (the baseline).
 * On a machine that takes CPUs away (a VM's host, the kernel), both see the same
 * stalls; the sweep's own cost is the difference between them. */
static int mode_cleanup(uint32_t nc)
{
	struct clock_ctl clk = { 0 };
	uint32_t live = 65536;
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){
		.max_conns = nc + live + 1024, .cleanup_thread = false, .clock = shifted_clock, .clock_arg = &clk });
	if (ct == NULL)
		return 1;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	/* the worker's zone 2 outlives the clock's jump (an hour for every state), so both
	 * phases of its bursts are lookups of its live entries: only zone 1 expires */
	struct ferry_ct_timeout_policy_req tp = { .zone = 2 };
	for (unsigned i = 0; i < sizeof(tp.seconds) / sizeof(tp.seconds[0]); i++)
		tp.seconds[i] = 3600;
	if (ferry_ct_set_timeout_policy(ct, &tp) != 0)
		return 1;
	uint8_t *fr = flow_frames(nc > live ? nc : live);
	uint64_t now = now_ns();
	run_flows(&t, fr, NULL, nc, 32, FERRY_CT_FLAG_COMMIT, now); /* zone 1: to be expired */
	struct worker_arg *wa = calloc(1, sizeof(*wa));
	*wa = (struct worker_arg){ .ct = ct, .clk = &clk, .fr = fr, .n_live = live };
	pthread_t w;
	pthread_create(&w, NULL, cleanup_worker, wa);
	sleep_ms(200); /* its entries made, its caches warm */
	wa->reset = 1; /* the worker clears its figures itself: it is writing them */
	while (wa->reset)
		sleep_ms(1);
	sleep_ms(2000);
	uint64_t base_s = 2;
	struct ferry_ct_counters c0;
	ferry_ct_counters(ct, &c0);
	/* a minute later: every UDP entry of zone 1 is over, the worker's zone 2 is not */
	wa->phase = 1;
	uint64_t t0 = now_ns();
	clk.offset = 61ull * 1000000000ull;
	struct sweeper_arg sa = { .ct = ct, .clk = &clk, .keep = live };
	pthread_t sw;
	pthread_create(&sw, NULL, sweeper, &sa);
	pthread_join(sw, NULL);
	uint64_t took = now_ns() - t0;
	wa->stop = 1;
	pthread_join(w, NULL);
	struct ferry_ct_counters cc;
	ferry_ct_counters(ct, &cc);
	const struct burst_stats *b = &wa->st[0], *s = &wa->st[1];
	/* a worker waits on the sweep at most as long as the sweep holds a lock; that hold
	 * is the sweeper's CPU time, which on a VM whose host does not report steal time
	 * includes the host's preemptions */
	printf("ct longest bucket-lock hold of the cleanup thread (its CPU time) expiring %u\t%.1f\tus\t(%llu holds, %llu over 50 us)\n",
	       nc, (double)cc.sweep_max_hold_ns / 1000.0, (unsigned long long)(cc.sweep_holds - c0.sweep_holds),
	       (unsigned long long)(cc.sweep_long_holds - c0.sweep_long_holds));
	printf("ct worst worker burst while the cleanup thread expires %u\t%.1f\tus\t(%llu bursts of 32 in %.2f s, %llu over 50 us; p99.9 %.0f us, p99.99 %.0f us; %llu left)\n",
	       nc, (double)s->worst_ns / 1000.0, (unsigned long long)s->bursts, (double)took / 1e9,
	       (unsigned long long)s->over_50us, burst_quantile(s, 0.999), burst_quantile(s, 0.9999),
	       (unsigned long long)ferry_ct_count(ct));
	printf("ct worst worker burst with no cleanup thread (baseline, just before)\t%.1f\tus\t(%llu bursts of 32 in %llu s, %llu over 50 us; p99.9 %.0f us, p99.99 %.0f us)\n",
	       (double)b->worst_ns / 1000.0, (unsigned long long)b->bursts, (unsigned long long)base_s,
	       (unsigned long long)b->over_50us, burst_quantile(b, 0.999), burst_quantile(b, 0.9999));
	/* per million, at least one burst's worth (a ratio of two zeros says nothing) */
	double floor_s = s->bursts ? 1e6 / (double)s->bursts : 0, floor_b = b->bursts ? 1e6 / (double)b->bursts : 0;
	double per_s = s->bursts ? 1e6 * (double)s->over_50us / (double)s->bursts : 0;
	double per_b = b->bursts ? 1e6 * (double)b->over_50us / (double)b->bursts : 0;
	printf("ct worker bursts over 50 us per million, sweeping\t%.1f\tper M\n", per_s > floor_s ? per_s : floor_s);
	printf("ct worker bursts over 50 us per million, baseline\t%.1f\tper M\n", per_b > floor_b ? per_b : floor_b);
	ferry_ct_thread_fini(&t);
	ferry_ct_destroy(ct);
	free(wa);
	free(fr);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "ovs") == 0)
		return mode_ovs((unsigned)atoi(argv[2]), strtoull(argv[3], NULL, 10), (unsigned)atoi(argv[4]));
	if (argc >= 4 && strcmp(argv[1], "nat") == 0)
		return mode_nat((uint32_t)strtoul(argv[2], NULL, 10), (unsigned)atoi(argv[3]));
	if (argc >= 4 && strcmp(argv[1], "setup") == 0)
		return mode_setup((uint32_t)strtoul(argv[2], NULL, 10), (unsigned)atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "cleanup") == 0)
		return mode_cleanup((uint32_t)strtoul(argv[2], NULL, 10));
	fprintf(stderr, "usage: ferry-bench-conntrack ovs T N B | setup NC B | cleanup NC | nat NC B\n");
	return 2;
}
