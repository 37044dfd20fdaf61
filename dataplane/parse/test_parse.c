/* The parser on every protocol it knows, and on every truncation of each packet:
 * no crash, the error counted, and never a field the truncated packet does not have. */
#include <string.h>
#include "../common/ftest.h"
#include "parse.h"

static uint8_t buf[256];
static uint32_t blen;

static void put(const void *p, uint32_t n) { memcpy(buf + blen, p, n); blen += n; }
static void put16(uint16_t v) { uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v }; put(b, 2); }
static void put8(uint8_t v) { put(&v, 1); }
static void zeros(uint32_t n) { memset(buf + blen, 0, n); blen += n; }

static const uint8_t DST[6] = { 0x02, 0, 0, 0, 0, 0x02 }, SRC[6] = { 0x02, 0, 0, 0, 0, 0x01 };

static void eth(uint16_t type) { blen = 0; put(DST, 6); put(SRC, 6); put16(type); }

/* IPv4 header with ihl words of header (options zero), total length tot */
static void ipv4(uint8_t proto, uint8_t ihl, uint16_t tot, uint16_t frag)
{
	put8((uint8_t)(0x40 | ihl)); put8(0xb8 /* dscp 46, ecn 0 */); put16(tot); put16(0x1234); put16(frag);
	put8(64); put8(proto); put16(0);
	uint8_t s[4] = { 10, 0, 0, 1 }, d[4] = { 10, 0, 0, 2 };
	put(s, 4); put(d, 4); zeros((uint32_t)(ihl - 5) * 4);
}

static void tcp(uint16_t sp, uint16_t dp, uint16_t flags, uint8_t doff_words)
{
	put16(sp); put16(dp); zeros(8); put16((uint16_t)(doff_words << 12 | flags)); put16(65535); zeros(4);
	zeros((uint32_t)(doff_words - 5) * 4);
}

static void build_tcp4(void)
{
	eth(0x0800); ipv4(6, 6, 24 + 24, 0); tcp(1234, 80, 0x012, 6);
}

static void build_vlan_udp4(void)
{
	eth(0x88a8); put16(0x2005 /* pcp 1 vid 5 */); put16(0x8100); put16(0x6007); put16(0x0800);
	ipv4(17, 5, 28, 0); put16(53); put16(5353); put16(8); put16(0);
}

static void build_icmp4(void)
{
	eth(0x0800); ipv4(1, 5, 28, 0); put8(8); put8(0); put16(0); put16(1); put16(1);
}

static void build_frag4_later(void)
{
	eth(0x0800); ipv4(17, 5, 28, 0x0010); zeros(8);
}

static void ipv6(uint8_t nh, uint16_t payload)
{
	put16(0x6000 | 0x0a0 /* tc 0x0a */); put16(0x1234 /* flow label low bits */); put16(payload); put8(nh); put8(255);
	uint8_t s[16] = { 0xfd, 0, [15] = 1 }, d[16] = { 0xfd, 0, [15] = 2 };
	put(s, 16); put(d, 16);
}

static void build_udp6_ext(void)
{
	/* hop-by-hop (8 bytes) -> fragment (first) -> UDP */
	eth(0x86dd); ipv6(0, 8 + 8 + 8); put8(44); put8(0); zeros(6);
	put8(17); put8(0); put16(0x0001 /* offset 0, M */); put16(0); put16(7);
	put16(1000); put16(2000); put16(8); put16(0);
}

static void build_icmp6(void)
{
	eth(0x86dd); ipv6(58, 8); put8(128); put8(0); put16(0); put16(1); put16(1);
}

static void build_sctp4(void)
{
	eth(0x0800); ipv4(132, 5, 32, 0); put16(5000); put16(6000); zeros(8);
}

static void build_arp(void)
{
	eth(0x0806); put16(1); put16(0x0800); put8(6); put8(4); put16(2);
	put(SRC, 6); uint8_t spa[4] = { 10, 0, 0, 1 }; put(spa, 4);
	put(DST, 6); uint8_t tpa[4] = { 10, 0, 0, 2 }; put(tpa, 4);
}

static struct ferry_flow_key parse_full(struct ferry_pkt_layout *lay, uint8_t *err)
{
	struct ferry_flow_key k;
	*err = ferry_parse_buf(buf, blen, 3, &k, lay);
	return k;
}

static void test_tcp4_with_options(void)
{
	build_tcp4();
	struct ferry_pkt_layout lay;
	uint8_t err;
	struct ferry_flow_key k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.in_port, 3);
	CHECK_EQ(k.eth_type, 0x0800);
	CHECK_EQ(k.nw_proto, 6);
	CHECK_EQ(k.nw_tos, 0xb8);
	CHECK_EQ(k.nw_ttl, 64);
	CHECK(k.nw_src[0] == 10 && k.nw_src[3] == 1 && k.nw_dst[3] == 2 && k.nw_src[4] == 0);
	CHECK_EQ(k.tp_src, 1234);
	CHECK_EQ(k.tp_dst, 80);
	CHECK_EQ(k.tcp_flags, 0x012);
	CHECK_EQ(k.vlan_tci, 0);
	CHECK_EQ(lay.l3_off, 14);
	CHECK_EQ(lay.l4_off, 14 + 24);
	CHECK(memcmp(k.eth_src, SRC, 6) == 0 && memcmp(k.eth_dst, DST, 6) == 0);
}

static void test_qinq_udp4(void)
{
	build_vlan_udp4();
	struct ferry_pkt_layout lay;
	uint8_t err;
	struct ferry_flow_key k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.vlan_tpid, 0x88a8);
	CHECK_EQ(k.vlan_tci, 0x2005 | FERRY_VLAN_PRESENT);
	CHECK_EQ(k.vlan_inner_tci, 0x6007 | FERRY_VLAN_PRESENT);
	CHECK_EQ(k.eth_type, 0x0800);
	CHECK_EQ(lay.n_vlans, 2);
	CHECK_EQ(k.tp_src, 53);
	CHECK_EQ(k.tp_dst, 5353);
}

static void test_icmp_sctp_arp(void)
{
	struct ferry_pkt_layout lay;
	uint8_t err;
	build_icmp4();
	struct ferry_flow_key k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.tp_src, 8); /* ICMP type */
	CHECK_EQ(k.tp_dst, 0);
	build_sctp4();
	k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.tp_src, 5000);
	CHECK_EQ(k.tp_dst, 6000);
	build_arp();
	k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.eth_type, 0x0806);
	CHECK_EQ(k.nw_proto, 2); /* reply */
	CHECK(k.nw_src[3] == 1 && k.nw_dst[3] == 2);
	CHECK(memcmp(k.arp_sha, SRC, 6) == 0 && memcmp(k.arp_tha, DST, 6) == 0);
}

static void test_ipv6_ext_and_icmpv6(void)
{
	struct ferry_pkt_layout lay;
	uint8_t err;
	build_udp6_ext();
	struct ferry_flow_key k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.eth_type, 0x86dd);
	CHECK_EQ(k.nw_proto, 17);
	CHECK_EQ(k.nw_frag, FERRY_NW_FRAG_BIT_ANY); /* first fragment */
	CHECK_EQ(k.tp_src, 1000);
	CHECK_EQ(k.tp_dst, 2000);
	CHECK_EQ(k.nw_ttl, 255);
	CHECK_EQ(k.nw_tos, 0x0a);
	CHECK_EQ(k.ipv6_label, 0x01234);
	CHECK(k.nw_src[0] == 0xfd && k.nw_src[15] == 1);
	CHECK_EQ(lay.l4_off, 14 + 40 + 16);
	build_icmp6();
	k = parse_full(&lay, &err);
	CHECK_EQ(k.nw_proto, 58);
	CHECK_EQ(k.tp_src, 128);
}

static void test_later_fragment_has_no_l4(void)
{
	build_frag4_later();
	struct ferry_pkt_layout lay;
	uint8_t err;
	struct ferry_flow_key k = parse_full(&lay, &err);
	CHECK_EQ(err, FERRY_PARSE_OK);
	CHECK_EQ(k.nw_frag, FERRY_NW_FRAG_BIT_ANY | FERRY_NW_FRAG_BIT_LATER);
	CHECK_EQ(k.tp_src, 0);
	CHECK_EQ(lay.l4_off, 0);
}

static void test_malformed(void)
{
	struct ferry_pkt_layout lay;
	struct ferry_flow_key k;
	build_tcp4();
	buf[14] = 0x43; /* ihl 3 */
	CHECK_EQ(ferry_parse_buf(buf, blen, 0, &k, &lay), FERRY_PARSE_REASON_IPV4_BAD_IHL);
	CHECK_EQ(k.nw_proto, 0);
	build_tcp4();
	buf[16] = 0xff; /* total length past the frame */
	CHECK_EQ(ferry_parse_buf(buf, blen, 0, &k, &lay), FERRY_PARSE_REASON_IPV4_BAD_LEN);
	CHECK_EQ(k.nw_proto, 6);  /* the header itself is whole */
	CHECK_EQ(k.tp_src, 0);    /* but L4 is not trusted */
	build_tcp4();
	buf[14 + 24 + 12] = 0x30; /* data offset 3 words */
	CHECK_EQ(ferry_parse_buf(buf, blen, 0, &k, &lay), FERRY_PARSE_REASON_TCP_BAD_OFF);
	CHECK_EQ(k.tp_dst, 0);
	build_icmp6();
	buf[14] = 0x40; /* version 4 in an IPv6 frame */
	CHECK_EQ(ferry_parse_buf(buf, blen, 0, &k, &lay), FERRY_PARSE_REASON_IPV6_BAD_VERSION);
	eth(0x8100); put16(1); put16(0x8100); put16(2); put16(0x8100); put16(3); put16(0x0800);
	CHECK_EQ(ferry_parse_buf(buf, blen, 0, &k, &lay), FERRY_PARSE_REASON_TOO_MANY_VLANS);
	eth(0x0040); /* 802.3 length */
	zeros(40);
	CHECK_EQ(ferry_parse_buf(buf, blen, 0, &k, &lay), FERRY_PARSE_OK);
	CHECK_EQ(k.eth_type, FERRY_ETH_TYPE_NONE);
}

/* Every byte-truncation of every packet: an error is reported whenever a header is cut,
 * and each field the truncated parse fills agrees with the whole packet's. */
static void test_every_truncation(void)
{
	void (*builders[])(void) = { build_tcp4, build_vlan_udp4, build_icmp4, build_frag4_later,
				     build_udp6_ext, build_icmp6, build_sctp4, build_arp };
	unsigned invented = 0, unreported = 0, cases = 0;
	for (unsigned b = 0; b < sizeof(builders) / sizeof(builders[0]); b++) {
		builders[b]();
		struct ferry_pkt_layout lay;
		struct ferry_flow_key full, cut;
		ferry_parse_buf(buf, blen, 1, &full, &lay);
		uint32_t headers_end = lay.l4_off ? lay.l4_off : lay.l3_off;
		for (uint32_t len = 0; len < blen; len++) {
			uint8_t err = ferry_parse_buf(buf, len, 1, &cut, &lay);
			const uint8_t *c = (const uint8_t *)&cut, *f = (const uint8_t *)&full;
			for (size_t i = 0; i < sizeof(cut); i++)
				invented += c[i] != 0 && c[i] != f[i];
			/* cutting into the headers must be reported */
			unreported += len < headers_end && err == FERRY_PARSE_OK;
			cases++;
		}
	}
	CHECK_EQ(invented, 0);
	CHECK_EQ(unreported, 0);
	CHECK(cases > 400);
}

int main(void)
{
	RUN(test_tcp4_with_options);
	RUN(test_qinq_udp4);
	RUN(test_icmp_sctp_arp);
	RUN(test_ipv6_ext_and_icmpv6);
	RUN(test_later_fragment_has_no_l4);
	RUN(test_malformed);
	RUN(test_every_truncation);
	return ftest_finish();
}
