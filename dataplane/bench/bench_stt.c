/* ferry-bench-stt: STT encapsulation and decapsulation throughput on one core, one line
 * per run. Modes (argv[1]):
 *   encap <inner_len> <n_frames> <mss>
 *       ferry_stt_encap in software mode (tx_offloads 0: every segment's TCP checksum
 *       computed here) of an Eth/IPv4/TCP inner frame of inner_len bytes: one mbuf up to
 *       2 KB, else a chain of 2 KB mbufs. Timed: encap + freeing the segments (what tx
 *       completion would do). Not timed: making each frame's private copy of the inner
 *       frame (encap consumes it), done a batch (BATCH_BYTES) at a time before.
 *       Prints encap_gbps (inner bits/s) encap_mpps (inner frames/s) segs_mpps.
 *   decap <inner_len> <n_frames> <mss>
 *       The segments ferry_stt_encap makes of that frame, each copied into one flat
 *       mbuf as a NIC would deliver it, fed in order to one reassembler. Timed:
 *       ferry_stt_reasm_add of every segment (outer TCP checksum verified in software,
 *       headers stripped, chained, head made contiguous) + freeing the inner frame.
 *       Not timed: copying the segments from templates, a batch (BATCH_BYTES) at a time
 *       (so they are warm in cache, as NIC DMA into LLC would leave them). Run twice: software
 *       checksum (decap_*), then with RX_L4_CKSUM_GOOD set as a NIC would (decap_hw_*).
 *   baseline <len> <n>
 *       The same byte volume through rte_pktmbuf_copy + rte_raw_cksum of every mbuf +
 *       free: touching each byte twice, the reference a copy-free decap should beat.
 * EAL: --no-huge -m 512 --no-pci, a file prefix of our own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include "../common/eal_test.h"
#include "../stt/stt.h"
#include "../common/mbuf_bytes.h"

#define BATCH 32u
/* frames are prepared (untimed) a batch at a time, with at most this many bytes of
 * buffers per batch: the data stays in L2 as a NIC's DMA would leave it in LLC, and the
 * comparison with the (hot) baseline stays about the work, not the cache */
#define BATCH_BYTES (256u << 10)
#define POOL_N 32767u
#define MAX_OUT 256u
#define ETH 14u

static struct rte_mempool *pool;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void eal_init(void)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "ferry-bench-stt-%d", getpid());
	const char *argv[] = { "bench", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--log-level", "error",
			       "-l", "0", "--file-prefix", prefix };
	if (rte_eal_init(12, (char **)argv) < 0) {
		fprintf(stderr, "EAL init failed\n");
		exit(1);
	}
	snprintf(ferry_test_runtime_dir, sizeof(ferry_test_runtime_dir), "%s", rte_eal_get_runtime_dir());
	atexit(ferry_test_remove_runtime_dir);
	pool = rte_pktmbuf_pool_create("bench_stt", POOL_N, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "no mempool\n");
		exit(1);
	}
}

static struct rte_mbuf *must(struct rte_mbuf *m)
{
	if (m == NULL) {
		fprintf(stderr, "out of mbufs\n");
		exit(1);
	}
	return m;
}

/* Eth/IPv4/TCP of len bytes with a valid IP checksum, as 2 KB mbufs */
static struct rte_mbuf *make_inner(uint32_t len)
{
	static uint8_t b[FERRY_STT_INNER_MAX];
	static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01 };
	memcpy(b, macs, 12);
	b[12] = 0x08, b[13] = 0x00;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(b + ETH);
	memset(ip, 0, 40);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(len - ETH));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = rte_cpu_to_be_32(0xc0a80001);
	ip->dst_addr = rte_cpu_to_be_32(0xc0a80002);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	b[ETH + 20 + 12] = 0x50;
	for (uint32_t i = ETH + 40; i < len; i++)
		b[i] = (uint8_t)(i * 31 + (i >> 9));
	return must(ferry_mbuf_from_bytes(pool, b, len, 0));
}

/* frames per batch: up to BATCH, within BATCH_BYTES of mbuf buffers */
static unsigned batch_for(uint32_t mbufs_per_frame)
{
	uint32_t per = mbufs_per_frame * (RTE_MBUF_DEFAULT_BUF_SIZE + (uint32_t)sizeof(struct rte_mbuf));
	return RTE_MAX(1u, RTE_MIN(BATCH, BATCH_BYTES / per));
}

static struct ferry_stt_encap params(uint16_t mss)
{
	struct ferry_stt_encap p = {
		.src_mac = { { 0x02, 0, 0, 0, 0, 0x10 } },
		.dst_mac = { { 0x02, 0, 0, 0, 0, 0x20 } },
		.src_ip = rte_cpu_to_be_32(0x0a000001),
		.dst_ip = rte_cpu_to_be_32(0x0a000002),
		.src_port = rte_cpu_to_be_16(0xc123),
		.dst_port = rte_cpu_to_be_16(FERRY_STT_PORT),
		.ttl = 64,
		.context = 42,
		.packet_id = 1,
		.mss = mss,
		.tx_offloads = 0,
	};
	return p;
}

static void bench_encap(uint32_t len, uint64_t n, uint16_t mss)
{
	struct rte_mbuf *tmpl = make_inner(len), *in[BATCH], *out[MAX_OUT];
	struct ferry_stt_encap p = params(mss);
	uint64_t t = 0, segs = 0;
	unsigned batch = batch_for(tmpl->nb_segs);
	for (uint64_t done = 0; done < n;) {
		unsigned b = (unsigned)RTE_MIN((uint64_t)batch, n - done);
		for (unsigned i = 0; i < b; i++)
			in[i] = must(rte_pktmbuf_copy(tmpl, pool, 0, UINT32_MAX));
		uint64_t t0 = now_ns();
		for (unsigned i = 0; i < b; i++) {
			p.packet_id++;
			int k = ferry_stt_encap(in[i], &p, pool, out, MAX_OUT);
			if (k <= 0) {
				fprintf(stderr, "encap failed: %d\n", k);
				exit(1);
			}
			for (int j = 0; j < k; j++)
				rte_pktmbuf_free(out[j]);
			segs += (uint64_t)k;
		}
		t += now_ns() - t0;
		done += b;
	}
	rte_pktmbuf_free(tmpl);
	double s = (double)t / 1e9;
	printf("encap_gbps=%.2f encap_mpps=%.3f segs_mpps=%.3f\n", (double)len * 8 * (double)n / s / 1e9,
	       (double)n / s / 1e6, (double)segs / s / 1e6);
}

/* one timed decap pass over n frames of the template segments; the time in ns */
static uint64_t decap_pass(struct rte_mbuf **tmpl, unsigned nseg, uint32_t len, uint64_t n, uint64_t ol_flags)
{
	struct ferry_stt_reasm *r = ferry_stt_reasm_create(&(struct ferry_stt_reasm_config){
		.seed = 7, .socket = SOCKET_ID_ANY, .pool = pool });
	static struct rte_mbuf *segs[BATCH * MAX_OUT];
	uint64_t t = 0, frames = 0, now = now_ns();
	unsigned batch = batch_for(nseg);
	for (uint64_t done = 0; done < n;) {
		unsigned b = (unsigned)RTE_MIN((uint64_t)batch, n - done);
		for (unsigned i = 0; i < b * nseg; i++) {
			segs[i] = must(rte_pktmbuf_copy(tmpl[i % nseg], pool, 0, UINT32_MAX));
			segs[i]->ol_flags = ol_flags;
		}
		uint64_t t0 = now_ns();
		for (unsigned i = 0; i < b * nseg; i++) {
			struct ferry_stt_rx rx;
			if (ferry_stt_reasm_add(r, segs[i], ETH, now, &rx) == FERRY_STT_DONE) {
				rte_pktmbuf_free(rx.frame);
				frames++;
			}
		}
		t += now_ns() - t0;
		done += b;
	}
	if (frames != n || ferry_stt_reasm_frames(r) != 0) {
		fprintf(stderr, "decap: %lu of %lu frames\n", (unsigned long)frames, (unsigned long)n);
		exit(1);
	}
	ferry_stt_reasm_destroy(r);
	(void)len;
	return t;
}

static void bench_decap(uint32_t len, uint64_t n, uint16_t mss)
{
	struct rte_mbuf *inner = make_inner(len), *out[MAX_OUT], *tmpl[MAX_OUT];
	struct ferry_stt_encap p = params(mss);
	int k = ferry_stt_encap(must(rte_pktmbuf_copy(inner, pool, 0, UINT32_MAX)), &p, pool, out, MAX_OUT);
	if (k <= 0) {
		fprintf(stderr, "encap failed: %d\n", k);
		exit(1);
	}
	unsigned nseg = (unsigned)k;
	for (unsigned j = 0; j < nseg; j++) {
		tmpl[j] = must(rte_pktmbuf_copy(out[j], pool, 0, UINT32_MAX));
		rte_pktmbuf_free(out[j]);
	}

	/* once, untimed: the reassembler gives back the inner frame byte for byte */
	struct ferry_stt_reasm *r = ferry_stt_reasm_create(&(struct ferry_stt_reasm_config){
		.seed = 7, .socket = SOCKET_ID_ANY, .pool = pool });
	struct ferry_stt_rx rx = { 0 };
	enum ferry_stt_verdict v = FERRY_STT_DROP;
	for (unsigned j = 0; j < nseg; j++)
		v = ferry_stt_reasm_add(r, must(rte_pktmbuf_copy(tmpl[j], pool, 0, UINT32_MAX)), ETH, 0, &rx);
	static uint8_t a[FERRY_STT_INNER_MAX], b[FERRY_STT_INNER_MAX];
	if (v != FERRY_STT_DONE || rx.frame->pkt_len != len ||
	    memcmp(rte_pktmbuf_read(rx.frame, 0, len, a), rte_pktmbuf_read(inner, 0, len, b), len) != 0) {
		fprintf(stderr, "decap does not give the frame back\n");
		exit(1);
	}
	rte_pktmbuf_free(rx.frame);
	ferry_stt_reasm_destroy(r);

	double sw = (double)decap_pass(tmpl, nseg, len, n, 0) / 1e9;
	double hw = (double)decap_pass(tmpl, nseg, len, n, RTE_MBUF_F_RX_L4_CKSUM_GOOD) / 1e9;
	printf("decap_gbps=%.2f decap_mpps=%.3f segs_mpps=%.3f decap_hw_gbps=%.2f decap_hw_mpps=%.3f\n",
	       (double)len * 8 * (double)n / sw / 1e9, (double)n / sw / 1e6, (double)n * nseg / sw / 1e6,
	       (double)len * 8 * (double)n / hw / 1e9, (double)n / hw / 1e6);
	for (unsigned j = 0; j < nseg; j++)
		rte_pktmbuf_free(tmpl[j]);
	rte_pktmbuf_free(inner);
}

static void bench_baseline(uint32_t len, uint64_t n)
{
	struct rte_mbuf *tmpl = make_inner(len);
	volatile uint32_t sink = 0;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		struct rte_mbuf *c = must(rte_pktmbuf_copy(tmpl, pool, 0, UINT32_MAX));
		uint32_t sum = 0;
		for (const struct rte_mbuf *s = c; s != NULL; s = s->next)
			sum += rte_raw_cksum(rte_pktmbuf_mtod(s, const void *), s->data_len);
		sink += sum;
		rte_pktmbuf_free(c);
	}
	double s = (double)(now_ns() - t0) / 1e9;
	rte_pktmbuf_free(tmpl);
	printf("baseline_gbps=%.2f baseline_mpps=%.3f\n", (double)len * 8 * (double)n / s / 1e9, (double)n / s / 1e6);
}

static void usage(void)
{
	fprintf(stderr, "usage: ferry-bench-stt encap|decap <inner_len> <n_frames> <mss>\n"
			"       ferry-bench-stt baseline <len> <n>\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		usage();
	uint32_t len = (uint32_t)strtoul(argv[2], NULL, 0);
	uint64_t n = strtoull(argv[3], NULL, 0);
	uint32_t mss = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 0) : 1460;
	if (len < ETH + 40 || len > FERRY_STT_INNER_MAX || n == 0 || mss == 0 || mss > 65535)
		usage();
	eal_init();
	if (strcmp(argv[1], "encap") == 0 && argc == 5)
		bench_encap(len, n, (uint16_t)mss);
	else if (strcmp(argv[1], "decap") == 0 && argc == 5)
		bench_decap(len, n, (uint16_t)mss);
	else if (strcmp(argv[1], "baseline") == 0)
		bench_baseline(len, n);
	else
		usage();
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
