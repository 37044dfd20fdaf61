/* ferry-stt-pcap: Ferry's STT encapsulation and reassembly over pcap files, for the
 * tshark and generator tests (tests/stt/) and for looking at Ferry's segments by hand.
 *
 *   ferry-stt-pcap encap IN.pcap OUT.pcap [--mss N] [--context U64] [--src-ip A] [--dst-ip B]
 *       [--src-mac M] [--dst-mac M] [--src-port P] [--dst-port P] [--packet-id N] [--verified] [--partial]
 *       [--vlan TCI]
 *     Each Ethernet frame of IN is encapsulated by ferry_stt_encap in software mode (no
 *     underlay offloads) and its outer segments are written to OUT. --verified marks the
 *     inner L4 checksum good on receipt (CSUM_VERIFIED), --partial turns an IPv4/TCP
 *     frame into a checksum request (CSUM_PARTIAL), --vlan gives the frame a VLAN tag to
 *     insert (mbuf vlan_tci + TX_VLAN: the STT header's VLAN field with the V bit).
 *
 *   ferry-stt-pcap decap IN.pcap OUT.pcap [--timeout-ms N] [--mem-max N]
 *     Every IPv4/TCP packet of IN (not an IP fragment) is offered to one reassembler;
 *     each inner frame it delivers is written to OUT with its offload requests completed
 *     in software (checksums filled in, a TSO request cut into MSS-sized packets). IN's
 *     timestamps are the clock. Prints one JSON line: segments in, frames out (packets
 *     written), packets skipped, the reassembler's counters by reason, and one record per
 *     reassembled frame (context, outer source and destination, STT flags, length).
 *
 * Exit codes: 0 done, 1 file or runtime error, 2 usage, 3 mbufs not returned to the pool. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_tcp.h>
#include "../parse/parse.h"
#include "../stt/stt.h"
#include "../common/mbuf_bytes.h"

#define PROG "ferry-stt-pcap"
#define POOL_MBUFS 8191u /* encap: a 64 KB frame at mss 536 needs a few hundred */
#define SNAPLEN 65535u
#define MAX_PIECES 1024u /* packets one decapsulated frame may become (TSO in software) */

static const char *const reason_names[] = {
	"bad_csum", "bad_header", "bad_length", "len_mismatch", "overlap", "timeout", "evicted", "bad_version",
	"bad_l4_offset", "no_mbuf", "too_big", "no_remote", "outer_frag", "no_tunnel", "bad_inner",
};
_Static_assert(sizeof(reason_names) / sizeof(reason_names[0]) == FERRY_STT_REASON_COUNT,
	       "one name per enum ferry_stt_reason");

static uint8_t linear[SNAPLEN + 64];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " encap IN.pcap OUT.pcap [--mss N] [--context U64] [--src-ip A] [--dst-ip B]\n"
		"           [--src-mac M] [--dst-mac M] [--src-port P] [--dst-port P] [--packet-id N]\n"
		"           [--verified] [--partial] [--vlan TCI]\n"
		"       " PROG " decap IN.pcap OUT.pcap [--timeout-ms N] [--mem-max N]\n"
		"encap: each frame of IN becomes STT segments in OUT (ferry_stt_encap, software mode).\n"
		"decap: IPv4/TCP packets of IN are reassembled (ferry_stt_reasm_add); inner frames go\n"
		"       to OUT with checksums completed; one JSON summary line goes to stdout.\n"
		"defaults: --mss 1460 --context 0 --src-ip 192.0.2.1 --dst-ip 192.0.2.2\n"
		"          --src-mac 02:00:00:00:00:01 --dst-mac 02:00:00:00:00:02\n"
		"          --src-port <hash of the inner flow, as ferryd> --dst-port 7471 --packet-id 1\n");
}

static int bad_arg(const char *opt, const char *val, const char *what)
{
	fprintf(stderr, PROG ": %s: '%s' is not %s\n", opt, val, what);
	return 2;
}

/* an unsigned number (decimal, 0x hex or 0 octal) no bigger than max */
static bool parse_num(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	if (*s == 0 || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (*end || errno == ERANGE || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_mac(const char *s, struct rte_ether_addr *a)
{
	unsigned b[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return false;
	for (int i = 0; i < 6; i++)
		a->addr_bytes[i] = (uint8_t)b[i];
	return true;
}

/* EAL without hugepages, devices or shared files: a private process per run, with
 * memory for a pool of n_mbufs */
static int eal_up(unsigned n_mbufs)
{
	char prefix[64], mem[16];
	snprintf(prefix, sizeof(prefix), "ferry-stt-pcap-%d", getpid());
	snprintf(mem, sizeof(mem), "%u", (unsigned)(((uint64_t)n_mbufs * 4608u) >> 20) + 40u);
	const char *eal[] = { PROG,   "--no-huge", "-m",  mem,         "--no-pci",    "--no-shconf", "--no-telemetry",
			      "--log-level", "error", "-l", "0", "--file-prefix", prefix };
	int n = (int)(sizeof(eal) / sizeof(eal[0]));
	if (rte_eal_init(n, (char **)eal) < 0) {
		fprintf(stderr, PROG ": rte_eal_init failed: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

/* writes m (whole, linearized) to the dump; false when it cannot be read */
static bool dump_mbuf(pcap_dumper_t *d, const struct rte_mbuf *m, uint64_t ts_ns, unsigned long *truncated)
{
	uint32_t len = rte_pktmbuf_pkt_len(m);
	uint32_t cap = RTE_MIN(len, SNAPLEN);
	const uint8_t *p = rte_pktmbuf_read(m, 0, cap, linear);
	if (p == NULL)
		return false;
	if (cap < len)
		(*truncated)++;
	struct pcap_pkthdr h = { .caplen = cap, .len = len };
	h.ts.tv_sec = (time_t)(ts_ns / 1000000000ull);
	h.ts.tv_usec = (suseconds_t)(ts_ns % 1000000000ull / 1000u);
	pcap_dump((u_char *)d, &h, p);
	return true;
}

static pcap_t *open_in(const char *path)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
	if (pc == NULL) {
		fprintf(stderr, PROG ": %s: %s\n", path, err);
		return NULL;
	}
	if (pcap_datalink(pc) != DLT_EN10MB) {
		fprintf(stderr, PROG ": %s: link type %s, only Ethernet captures are read\n", path,
			pcap_datalink_val_to_name(pcap_datalink(pc)));
		pcap_close(pc);
		return NULL;
	}
	return pc;
}

static pcap_dumper_t *open_out(const char *path, pcap_t **dead)
{
	*dead = pcap_open_dead(DLT_EN10MB, (int)SNAPLEN);
	if (*dead == NULL) {
		fprintf(stderr, PROG ": pcap_open_dead failed\n");
		return NULL;
	}
	pcap_dumper_t *d = pcap_dump_open(*dead, path);
	if (d == NULL) {
		fprintf(stderr, PROG ": %s: %s\n", path, pcap_geterr(*dead));
		pcap_close(*dead);
		*dead = NULL;
	}
	return d;
}

/* The entropy source port for an inner frame, as ferryd computes it (entropy() in
 * pipeline/tunnel_io.c): a hash of the parsed inner flow (addresses, ports, protocol,
 * MAC pair) in the dynamic range 32768..65535. */
static uint16_t flow_port(const uint8_t *frame, uint32_t len)
{
	struct ferry_flow_key k;
	struct ferry_pkt_layout lay;
	ferry_parse_buf(frame, len, 0, &k, &lay);
	uint32_t h;
	if (k.eth_type != 0) {
		/* the same bytes as ferryd hashes, copied to aligned buffers (rte_hash_crc
		 * reads 8 bytes at a time) */
		uint64_t nw[4], eth[2] = { 0, 0 };
		memcpy(nw, k.nw_src, sizeof(k.nw_src));
		memcpy((uint8_t *)nw + sizeof(k.nw_src), k.nw_dst, sizeof(k.nw_dst));
		memcpy(eth, k.eth_src, sizeof(k.eth_src));
		memcpy((uint8_t *)eth + sizeof(k.eth_src), k.eth_dst, sizeof(k.eth_dst));
		h = rte_hash_crc(nw, sizeof(k.nw_src) + sizeof(k.nw_dst), k.eth_type);
		h = rte_hash_crc_4byte((uint32_t)k.tp_src << 16 | k.tp_dst, h ^ k.nw_proto);
		h = rte_hash_crc(eth, sizeof(k.eth_src) + sizeof(k.eth_dst), h);
	} else {
		h = rte_hash_crc(frame, len < 12 ? len : 12, 0);
	}
	return (uint16_t)(32768u | (h & 32767u));
}

/* --partial: ask for the inner TCP checksum to be completed downstream, as a guest's
 * virtio NEEDS_CSUM would. Only IPv4/TCP (optionally one 802.1Q tag) qualifies. */
static bool request_partial(struct rte_mbuf *m)
{
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), l2 = RTE_ETHER_HDR_LEN;
	if (len < l2 + 20)
		return false;
	uint16_t et = (uint16_t)(p[12] << 8 | p[13]);
	if (et == RTE_ETHER_TYPE_VLAN) {
		l2 += 4;
		et = (uint16_t)(p[16] << 8 | p[17]);
	}
	if (et != RTE_ETHER_TYPE_IPV4 || len < l2 + 20)
		return false;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + l2);
	uint32_t l3 = (ip->version_ihl & 0xfu) * 4u;
	if ((ip->version_ihl >> 4) != 4 || l3 < 20 || ip->next_proto_id != IPPROTO_TCP ||
	    (rte_be_to_cpu_16(ip->fragment_offset) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) ||
	    len < l2 + l3 + sizeof(struct rte_tcp_hdr))
		return false;
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(p + l2 + l3);
	m->l2_len = l2;
	m->l3_len = l3;
	m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
	tcp->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
	return true;
}

static int check_pool(struct rte_mempool *pool)
{
	unsigned avail = rte_mempool_avail_count(pool), size = pool->size;
	if (avail != size) {
		fprintf(stderr, PROG ": leak: %u of %u mbufs not returned to the pool\n", size - avail, size);
		return 3;
	}
	return 0;
}

/* ------------------------------------------------------------------------ encap */

static int cmd_encap(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mss", required_argument, NULL, 'm' },	{ "context", required_argument, NULL, 'c' },
		{ "src-ip", required_argument, NULL, 's' },	{ "dst-ip", required_argument, NULL, 'd' },
		{ "src-mac", required_argument, NULL, 'S' },	{ "dst-mac", required_argument, NULL, 'D' },
		{ "src-port", required_argument, NULL, 'p' }, { "dst-port", required_argument, NULL, 'P' },
		{ "packet-id", required_argument, NULL, 'i' }, { "verified", no_argument, NULL, 'v' },
		{ "partial", no_argument, NULL, 'x' },	{ "vlan", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_stt_encap p = {
		.src_mac = { { 0x02, 0, 0, 0, 0, 0x01 } },
		.dst_mac = { { 0x02, 0, 0, 0, 0, 0x02 } },
		.src_ip = RTE_BE32(0xc0000201u), /* 192.0.2.1 */
		.dst_ip = RTE_BE32(0xc0000202u), /* 192.0.2.2 */
		.dst_port = RTE_BE16(FERRY_STT_PORT),
		.ttl = 64,
		.mss = 1460,
		.packet_id = 1,
		.ip_id = 1,
		.tx_offloads = 0,
	};
	bool fixed_port = false, verified = false, partial = false, vlan = false;
	uint16_t vlan_tci = 0;
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!parse_num(optarg, 65535 - 40, &v) || v == 0)
				return bad_arg("--mss", optarg, "a segment payload size (1..65495)");
			p.mss = (uint16_t)v;
			break;
		case 'c':
			if (!parse_num(optarg, UINT64_MAX, &v))
				return bad_arg("--context", optarg, "a 64-bit context id");
			p.context = v;
			break;
		case 's':
		case 'd':
			if (inet_pton(AF_INET, optarg, c == 's' ? (void *)&p.src_ip : (void *)&p.dst_ip) != 1)
				return bad_arg(c == 's' ? "--src-ip" : "--dst-ip", optarg, "an IPv4 address");
			break;
		case 'S':
		case 'D':
			if (!parse_mac(optarg, c == 'S' ? &p.src_mac : &p.dst_mac))
				return bad_arg(c == 'S' ? "--src-mac" : "--dst-mac", optarg, "a MAC address (xx:xx:xx:xx:xx:xx)");
			break;
		case 'p':
		case 'P':
			if (!parse_num(optarg, 65535, &v) || v == 0)
				return bad_arg(c == 'p' ? "--src-port" : "--dst-port", optarg, "a port (1..65535)");
			if (c == 'p') {
				p.src_port = rte_cpu_to_be_16((uint16_t)v);
				fixed_port = true;
			} else {
				p.dst_port = rte_cpu_to_be_16((uint16_t)v);
			}
			break;
		case 'i':
			if (!parse_num(optarg, UINT32_MAX, &v))
				return bad_arg("--packet-id", optarg, "a 32-bit packet id");
			p.packet_id = (uint32_t)v;
			break;
		case 'V':
			if (!parse_num(optarg, 65535, &v))
				return bad_arg("--vlan", optarg, "a VLAN TCI (0..0xffff)");
			vlan = true;
			vlan_tci = (uint16_t)v;
			break;
		case 'v': verified = true; break;
		case 'x': partial = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 2 != argc) {
		fprintf(stderr, PROG " encap: expected IN.pcap OUT.pcap, got %d file argument(s)\n", argc - optind);
		usage(stderr);
		return 2;
	}
	const char *in_path = argv[optind], *out_path = argv[optind + 1];
	pcap_t *in = open_in(in_path);
	if (in == NULL)
		return 1;
	pcap_t *dead;
	pcap_dumper_t *out = open_out(out_path, &dead);
	if (out == NULL) {
		pcap_close(in);
		return 1;
	}
	if (eal_up(POOL_MBUFS) != 0)
		return 1;
	struct rte_mempool *pool =
		rte_pktmbuf_pool_create("stt_pcap", POOL_MBUFS, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	unsigned max_out = 65535u / p.mss + 2u;
	struct rte_mbuf **segs = calloc(max_out, sizeof(*segs));
	if (pool == NULL || segs == NULL) {
		fprintf(stderr, PROG ": no memory for the mbuf pool\n");
		return 1;
	}
	unsigned long frames = 0, segments = 0, failed = 0, truncated = 0, n = 0;
	int rc = 0, status;
	struct pcap_pkthdr *h;
	const u_char *data;
	while ((status = pcap_next_ex(in, &h, &data)) == 1) {
		n++;
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec; /* nano precision */
		if (h->caplen < h->len)
			fprintf(stderr, PROG ": packet %lu: captured %u of %u bytes; encapsulating what was captured\n", n,
				h->caplen, h->len);
		struct rte_mbuf *m = ferry_mbuf_from_bytes(pool, data, h->caplen, 0);
		if (m == NULL) {
			fprintf(stderr, PROG ": packet %lu: out of mbufs\n", n);
			rc = 1;
			break;
		}
		if (verified)
			m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
		if (vlan) {
			m->vlan_tci = vlan_tci;
			m->ol_flags |= RTE_MBUF_F_TX_VLAN;
		}
		if (partial && !request_partial(m))
			fprintf(stderr, PROG ": packet %lu: not IPv4/TCP, --partial does not apply\n", n);
		if (!fixed_port)
			p.src_port = rte_cpu_to_be_16(flow_port(data, h->caplen));
		int k = ferry_stt_encap(m, &p, pool, segs, max_out);
		if (k < 0) {
			int r = -k;
			fprintf(stderr, PROG ": packet %lu (%u bytes): not encapsulated: %s\n", n, h->caplen,
				r < (int)FERRY_STT_REASON_COUNT ? reason_names[r] : "unknown error");
			failed++;
		} else {
			for (int i = 0; i < k; i++) {
				if (!dump_mbuf(out, segs[i], ts, &truncated)) {
					fprintf(stderr, PROG ": packet %lu: segment %d unreadable\n", n, i);
					rc = 1;
				}
				rte_pktmbuf_free(segs[i]);
			}
			frames++;
			segments += (unsigned long)k;
			p.ip_id = (uint16_t)(p.ip_id + k);
		}
		p.packet_id++;
	}
	if (status == -1) {
		fprintf(stderr, PROG ": %s: %s\n", in_path, pcap_geterr(in));
		rc = 1;
	}
	if (truncated)
		fprintf(stderr, PROG ": %lu segment(s) longer than %u bytes were truncated in %s\n", truncated, SNAPLEN,
			out_path);
	fprintf(stderr, PROG ": %lu frame(s) in, %lu encapsulated into %lu segment(s), %lu refused\n", n, frames, segments,
		failed);
	pcap_close(in);
	pcap_dump_close(out);
	pcap_close(dead);
	free(segs);
	int leak = check_pool(pool);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	if (rc == 0 && failed)
		rc = 1;
	return rc ? rc : leak;
}

/* ------------------------------------------------------------------------ decap */

struct frame_rec {
	uint64_t context;
	rte_be32_t src, dst;
	uint8_t flags;
	uint32_t len;
};

/* an outer packet the reassembler may be offered: Ethernet, IPv4, TCP, not a fragment */
static bool stt_looking(const uint8_t *d, uint32_t len)
{
	if (len < RTE_ETHER_HDR_LEN + 20 || d[12] != 0x08 || d[13] != 0x00)
		return false;
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(d + RTE_ETHER_HDR_LEN);
	uint32_t ihl = (ip->version_ihl & 0xfu) * 4u;
	if ((ip->version_ihl >> 4) != 4 || ihl < 20 || ip->next_proto_id != IPPROTO_TCP)
		return false;
	if (rte_be_to_cpu_16(ip->fragment_offset) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return false;
	return len >= RTE_ETHER_HDR_LEN + ihl + FERRY_STT_TCP_LEN;
}

static int cmd_decap(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "mem-max", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t timeout_ms = 0, mem_max = 0;
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!parse_num(optarg, UINT32_MAX, &v) || v == 0)
				return bad_arg("--timeout-ms", optarg, "a timeout in milliseconds (1..4294967295)");
			timeout_ms = (uint32_t)v;
			break;
		case 'M':
			if (!parse_num(optarg, UINT32_MAX, &v) || v == 0)
				return bad_arg("--mem-max", optarg, "a byte count (1..4294967295)");
			mem_max = (uint32_t)v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 2 != argc) {
		fprintf(stderr, PROG " decap: expected IN.pcap OUT.pcap, got %d file argument(s)\n", argc - optind);
		usage(stderr);
		return 2;
	}
	const char *in_path = argv[optind], *out_path = argv[optind + 1];
	pcap_t *in = open_in(in_path);
	if (in == NULL)
		return 1;
	pcap_t *dead;
	pcap_dumper_t *out = open_out(out_path, &dead);
	if (out == NULL) {
		pcap_close(in);
		return 1;
	}
	/* what the reassembler may hold (mem_max counts buf_len + the mbuf header per
	 * mbuf), plus room for the frame being finished and the segment in hand */
	uint64_t held = (uint64_t)(mem_max ? mem_max : FERRY_STT_DEFAULT_MEM_MAX) /
			(RTE_MBUF_DEFAULT_BUF_SIZE + sizeof(struct rte_mbuf));
	unsigned n_mbufs = (unsigned)RTE_MIN(held + 4096u, 131071u); /* about 600 MB at most */
	if (eal_up(n_mbufs) != 0)
		return 1;
	struct rte_mempool *pool =
		rte_pktmbuf_pool_create("stt_pcap", n_mbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (pool == NULL) {
		fprintf(stderr, PROG ": no memory for the mbuf pool\n");
		return 1;
	}
	struct ferry_stt_reasm_config cfg = {
		.timeout_ms = timeout_ms,
		.mem_max = mem_max,
		.seed = 0x5717u,
		.socket = (int)rte_socket_id(),
		.pool = pool,
	};
	struct ferry_stt_reasm *r = ferry_stt_reasm_create(&cfg);
	size_t rec_cap = 256, n_rec = 0;
	struct frame_rec *recs = malloc(rec_cap * sizeof(*recs));
	struct rte_mbuf **pieces = calloc(MAX_PIECES, sizeof(*pieces));
	if (r == NULL || recs == NULL || pieces == NULL) {
		fprintf(stderr, PROG ": cannot create the reassembler\n");
		return 1;
	}
	unsigned long seg_in = 0, frames_out = 0, skipped = 0, truncated = 0, n = 0, lost = 0;
	uint64_t now = 0;
	int rc = 0, status;
	struct pcap_pkthdr *h;
	const u_char *data;
	while ((status = pcap_next_ex(in, &h, &data)) == 1) {
		n++;
		now = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec; /* nano precision */
		if (h->caplen < h->len || !stt_looking(data, h->caplen)) {
			skipped++;
			continue;
		}
		struct rte_mbuf *m = ferry_mbuf_from_bytes(pool, data, h->caplen, 0);
		if (m == NULL) {
			fprintf(stderr, PROG ": packet %lu: out of mbufs\n", n);
			rc = 1;
			break;
		}
		seg_in++;
		struct ferry_stt_rx rx;
		memset(&rx, 0, sizeof(rx));
		enum ferry_stt_verdict verdict = ferry_stt_reasm_add(r, m, RTE_ETHER_HDR_LEN, now, &rx);
		if (verdict == FERRY_STT_DONE) {
			if (n_rec == rec_cap) {
				struct frame_rec *nr = realloc(recs, 2 * rec_cap * sizeof(*recs));
				if (nr == NULL) {
					fprintf(stderr, PROG ": out of memory\n");
					rte_pktmbuf_free(rx.frame);
					rc = 1;
					break;
				}
				recs = nr;
				rec_cap *= 2;
			}
			recs[n_rec++] = (struct frame_rec){ .context = rx.context, .src = rx.src_ip, .dst = rx.dst_ip,
							    .flags = rx.stt_flags, .len = rte_pktmbuf_pkt_len(rx.frame) };
			unsigned k = ferry_stt_finish_offloads(rx.frame, 0, pool, pieces, MAX_PIECES);
			if (k == 0) {
				fprintf(stderr, PROG ": packet %lu: the reassembled frame was dropped finishing its offloads\n",
					n);
				lost++;
			}
			for (unsigned i = 0; i < k; i++) {
				if (dump_mbuf(out, pieces[i], now, &truncated))
					frames_out++;
				else
					rc = 1;
				rte_pktmbuf_free(pieces[i]);
			}
		}
		ferry_stt_reasm_expire(r, now);
	}
	if (status == -1) {
		fprintf(stderr, PROG ": %s: %s\n", in_path, pcap_geterr(in));
		rc = 1;
	}
	/* the end of the capture: whatever is still held has timed out */
	uint64_t t = timeout_ms ? timeout_ms : FERRY_STT_DEFAULT_TIMEOUT_MS;
	ferry_stt_reasm_expire(r, now + t * 1000000ull + 1000000000ull);
	if (ferry_stt_reasm_frames(r) != 0)
		fprintf(stderr, PROG ": %u frame(s) still held after expiring everything\n", ferry_stt_reasm_frames(r));
	const uint64_t *cnt = ferry_stt_reasm_counters(r);
	printf("{\"segments_in\":%lu,\"frames_out\":%lu,\"skipped\":%lu,\"reasons\":{", seg_in, frames_out, skipped);
	for (unsigned i = 0; i < FERRY_STT_REASON_COUNT; i++)
		printf("%s\"%s\":%llu", i ? "," : "", reason_names[i], (unsigned long long)cnt[i]);
	printf("},\"frames\":[");
	for (size_t i = 0; i < n_rec; i++) {
		char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &recs[i].src, s, sizeof(s));
		inet_ntop(AF_INET, &recs[i].dst, d, sizeof(d));
		printf("%s{\"context\":\"0x%016llx\",\"src\":\"%s\",\"dst\":\"%s\",\"flags\":\"0x%02x\",\"len\":%u}",
		       i ? "," : "", (unsigned long long)recs[i].context, s, d, recs[i].flags, recs[i].len);
	}
	printf("]}\n");
	fflush(stdout);
	if (truncated)
		fprintf(stderr, PROG ": %lu frame(s) longer than %u bytes were truncated in %s\n", truncated, SNAPLEN,
			out_path);
	if (lost)
		fprintf(stderr, PROG ": %lu reassembled frame(s) dropped finishing their offloads (listed in frames, not in %s)\n",
			lost, out_path);
	pcap_close(in);
	pcap_dump_close(out);
	pcap_close(dead);
	ferry_stt_reasm_destroy(r);
	free(recs);
	free(pieces);
	int leak = check_pool(pool);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc ? rc : leak;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	static char encap_name[] = PROG " encap", decap_name[] = PROG " decap";
	if (strcmp(argv[1], "encap") == 0) {
		argv[1] = encap_name; /* getopt's messages name the command */
		return cmd_encap(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "decap") == 0) {
		argv[1] = decap_name;
		return cmd_decap(argc - 1, argv + 1);
	}
	fprintf(stderr, PROG ": '%s' is not a command (encap or decap)\n", argv[1]);
	usage(stderr);
	return 2;
}
