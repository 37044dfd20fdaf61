/* libFuzzer: the STT reassembler on hostile segment sequences. The input is a sequence
 * of records, each [u16 length, little-endian][u8 ctl][length bytes: an outer frame
 * from its Ethernet header]. ctl says how the frame is offered:
 *   bit 0    the NIC found the TCP checksum good (the software check is skipped)
 *   bit 1    the harness writes a correct TCP checksum first (when the IP header's
 *            lengths allow), so mutated seq/ack/flags still get past the check
 *   bits 2-3 mbuf layout: one buffer, a chain of 61-byte links, of 7-byte links, or a
 *            clone (indirect mbuf, so the head must be copied, not written)
 *   bits 4-7 time step of that many 3 ms (the timeout is 20 ms); 15 also runs expire
 * One reassembler per input, with a tiny memory cap and few frames so eviction, bucket
 * and table limits are hit. Every finished frame is checked (rte_mbuf_check, lengths,
 * head contiguity) and freed; at the end the reassembler is destroyed and the mempool
 * must be full again: a leak or a double free aborts. Seeds (corpus/stt) are valid
 * frames: single-segment in each layout, in order, reordered with a duplicate and a
 * second sender of the same packet id, CSUM_PARTIAL + VLAN + CE, padding + timeout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include "../stt/stt.h"
#include "../common/mbuf_bytes.h"

#define ETH 14u
#define POOL_N 16383u
#define MEM_MAX (6u * (RTE_MBUF_DEFAULT_BUF_SIZE + sizeof(struct rte_mbuf)))
#define MAX_FRAMES 4u
#define TIMEOUT_MS 20u
#define STEP_NS 3000000ull
#define CTL_GOOD 0x01
#define CTL_FIX 0x02
#define CTL_LAYOUT(c) (((c) >> 2) & 3)
#define CTL_STEP(c) ((c) >> 4)

static struct rte_mempool *pool;
static unsigned pool_full;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "ferry-fuzz-stt-%d", getpid());
	const char *eal[] = { "fuzz", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--log-level", "error",
			      "-l", "0", "--file-prefix", prefix };
	if (rte_eal_init(12, (char **)eal) < 0)
		abort();
	/* no per-lcore cache: the available count is exact */
	pool = rte_pktmbuf_pool_create("fuzz_stt", POOL_N, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL)
		abort();
	pool_full = rte_mempool_avail_count(pool);
	return 0;
}

/* a correct TCP checksum over what the IPv4 header says the datagram is */
static void fix_csum(uint8_t *f, uint32_t len)
{
	if (len < ETH + 20)
		return;
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(f + ETH);
	uint32_t ihl = (ip->version_ihl & 0xf) * 4u, tot = rte_be_to_cpu_16(ip->total_length);
	if (ihl < 20 || tot < ihl + 20 || ETH + tot > len)
		return;
	uint8_t *tcp = f + ETH + ihl;
	tcp[16] = tcp[17] = 0;
	uint32_t sum = rte_raw_cksum(tcp, tot - ihl) + (uint32_t)rte_ipv4_phdr_cksum(ip, 0);
	sum = (sum & 0xffff) + (sum >> 16);
	uint16_t ck = (uint16_t)~sum;
	memcpy(tcp + 16, &ck, 2); /* the sum was over memory order: store as is */
}

/* the frame as an mbuf (chain) laid out as ctl says; NULL when the pool is short */
static struct rte_mbuf *make(const uint8_t *f, uint32_t len, unsigned layout)
{
	static const uint32_t link[4] = { 0, 61, 7, 0 };
	if (layout == 2 && len > 4096)
		layout = 1; /* keep chains of a sane count of mbufs */
	struct rte_mbuf *head = ferry_mbuf_from_bytes(pool, f, len, link[layout]);
	if (head == NULL)
		return NULL;
	if (layout == 3) {
		struct rte_mbuf *c = rte_pktmbuf_clone(head, pool);
		rte_pktmbuf_free(head); /* the clone keeps the buffers */
		head = c;
	}
	return head;
}

static void check_frame(struct rte_mbuf *m)
{
	const char *why;
	if (rte_mbuf_check(m, 1, &why) != 0)
		abort();
	uint32_t sum = 0;
	unsigned n = 0;
	for (const struct rte_mbuf *s = m; s != NULL; s = s->next, n++)
		sum += s->data_len;
	if (sum != m->pkt_len || n != m->nb_segs || m->pkt_len < RTE_ETHER_HDR_LEN ||
	    m->pkt_len > FERRY_STT_INNER_MAX + 4 || m->data_len < RTE_MIN(m->pkt_len, FERRY_STT_HEAD_MIN))
		abort();
	/* the bytes are all readable */
	static uint8_t buf[FERRY_STT_FRAME_MAX + 4];
	if (rte_pktmbuf_read(m, 0, m->pkt_len, buf) == NULL)
		abort();
	rte_pktmbuf_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t f[65536];
	struct ferry_stt_reasm_config cfg = { .max_frames = MAX_FRAMES, .mem_max = MEM_MAX, .timeout_ms = TIMEOUT_MS,
					      .seed = 1, .socket = SOCKET_ID_ANY, .pool = pool };
	struct ferry_stt_reasm *r = ferry_stt_reasm_create(&cfg);
	if (r == NULL)
		abort();
	uint64_t now = 1000000000ull;
	size_t off = 0;
	while (off + 3 <= size) {
		uint32_t len = (uint32_t)data[off] | (uint32_t)data[off + 1] << 8;
		uint8_t ctl = data[off + 2];
		off += 3;
		if (len > size - off)
			len = (uint32_t)(size - off);
		memcpy(f, data + off, len);
		off += len;
		if (len == 0)
			continue;
		now += CTL_STEP(ctl) * STEP_NS;
		if (CTL_STEP(ctl) == 15)
			ferry_stt_reasm_expire(r, now);
		if (ctl & CTL_FIX)
			fix_csum(f, len);
		struct rte_mbuf *m = make(f, len, CTL_LAYOUT(ctl));
		if (m == NULL)
			abort(); /* the pool is sized for the caps: running dry is a leak */
		if (ctl & CTL_GOOD)
			m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
		struct ferry_stt_rx rx = { 0 };
		if (ferry_stt_reasm_add(r, m, ETH, now, &rx) == FERRY_STT_DONE)
			check_frame(rx.frame);
		if (ferry_stt_reasm_mem(r) > MEM_MAX || ferry_stt_reasm_frames(r) > MAX_FRAMES)
			abort();
	}
	ferry_stt_reasm_destroy(r);
	if (rte_mempool_avail_count(pool) != pool_full)
		abort();
	return 0;
}
