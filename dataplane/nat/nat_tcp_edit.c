/* TCP stream edits for the ALGs: sequence and ack numbers shifted by what earlier
 * payload edits added or took away, and a payload edit itself (the FTP helper puts
 * the translated address in a PORT, EPRT or 227 line). Sequence numbers change by
 * an incremental checksum update; a payload edit changes the length, so the TCP
 * checksum is computed again over the (short) segment. */
#include "nat_rewrite.h"
#include "nat_bytes.h"

#include <string.h>
#include <rte_ip.h>

#define IP4_TOTLEN_OFF 2
#define IP4_CSUM_OFF 10
#define IP4_SRC_OFF 12
#define IP6_HDR_LEN 40
#define IP6_PLEN_OFF 4
#define IP6_SRC_OFF 8
#define TCP_HDR_MIN 20
#define TCP_SEQ_OFF 4
#define TCP_ACK_OFF 8
#define TCP_DOFF_OFF 12
#define TCP_CSUM_OFF 16
#define IPPROTO_TCP_ 6

static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) << 16 | rd16(p + 2); }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)(v >> 16)); wr16(p + 2, (uint16_t)v); }


/* RFC 1624 over one 32-bit field, values in host order: the checksum at csum */
static void csum_replace32(uint8_t *csum, uint32_t old, uint32_t new)
{
	uint32_t s = (uint16_t)~rd16(csum);
	s += (uint16_t)~(old >> 16) + (uint16_t)~old + (new >> 16) + (new & 0xffff);
	wr16(csum, (uint16_t)~fold(s));
}

/* the pseudo header's sum (not complemented) for a TCP segment of n bytes */
static uint32_t pseudo_sum(const uint8_t *ip, uint8_t l3, uint32_t n)
{
	uint32_t s = 0;
	unsigned alen = l3 == 4 ? 4 : 16;
	const uint8_t *src = ip + (l3 == 4 ? IP4_SRC_OFF : IP6_SRC_OFF);
	for (unsigned i = 0; i < 2 * alen; i += 2)
		s += rd16(src + i);
	return s + IPPROTO_TCP_ + (n >> 16) + (n & 0xffff);
}

int ferry_nat_tcp_edit(uint8_t *data, uint32_t *len, uint32_t cap, uint16_t l3_ofs, uint16_t l4_ofs, uint8_t l3,
		       unsigned tx_offload, const struct ferry_nat_tcp_edit *e)
{
	uint32_t n = *len;
	if ((l3 != 4 && l3 != 6) || l4_ofs <= l3_ofs || (uint32_t)l4_ofs + TCP_HDR_MIN > n || cap < n)
		return -1;
	uint8_t *ip = data + l3_ofs, *tcp = data + l4_ofs;
	/* the segment must be whole here: the IP length says where it ends */
	uint32_t ip_end = l3 == 4 ? l3_ofs + (uint32_t)rd16(ip + IP4_TOTLEN_OFF)
				  : l3_ofs + IP6_HDR_LEN + (uint32_t)rd16(ip + IP6_PLEN_OFF);
	uint32_t doff = (uint32_t)(tcp[TCP_DOFF_OFF] >> 4) * 4u;
	if (ip_end > n || doff < TCP_HDR_MIN || l4_ofs + doff > ip_end)
		return -1;
	uint32_t pl_start = l4_ofs + doff, pl_len = ip_end - pl_start;
	bool edit = e->pl_old != 0 || e->pl_new != 0;
	int32_t grow = (int32_t)e->pl_new - (int32_t)e->pl_old;
	if (edit && ((uint32_t)e->pl_off + e->pl_old > pl_len || e->pl_new > FERRY_NAT_TEXT_MAX ||
		     (int64_t)n + grow > (int64_t)cap ||
		     (l3 == 4 && (int64_t)(ip_end - l3_ofs) + grow > 0xffff) ||
		     (l3 == 6 && (int64_t)(ip_end - l3_ofs - IP6_HDR_LEN) + grow > 0xffff)))
		return -1;
	bool pseudo = (tx_offload & FERRY_NAT_TX_L4_PSEUDO) != 0;

	uint32_t seq = rd32(tcp + TCP_SEQ_OFF), ack = rd32(tcp + TCP_ACK_OFF);
	uint32_t nseq = seq + (uint32_t)e->seq_add, nack = ack + (uint32_t)e->ack_add;
	wr32(tcp + TCP_SEQ_OFF, nseq);
	wr32(tcp + TCP_ACK_OFF, nack);
	if (!edit) {
		/* a NIC completing the checksum sums the header itself */
		if (!pseudo) {
			csum_replace32(tcp + TCP_CSUM_OFF, seq, nseq);
			csum_replace32(tcp + TCP_CSUM_OFF, ack, nack);
		}
		return 0;
	}
	/* the bytes after the edit move, then the text goes in */
	uint8_t *at = data + pl_start + e->pl_off;
	memmove(at + e->pl_new, at + e->pl_old, n - (pl_start + e->pl_off + e->pl_old));
	memcpy(at, e->text, e->pl_new);
	n = (uint32_t)((int64_t)n + grow);
	ip_end = (uint32_t)((int64_t)ip_end + grow);
	if (l3 == 4) {
		uint16_t old = rd16(ip + IP4_TOTLEN_OFF), tot = (uint16_t)(ip_end - l3_ofs);
		wr16(ip + IP4_TOTLEN_OFF, tot);
		uint32_t s = (uint16_t)~rd16(ip + IP4_CSUM_OFF);
		s += (uint16_t)~old + tot;
		wr16(ip + IP4_CSUM_OFF, (uint16_t)~fold(s));
	} else {
		wr16(ip + IP6_PLEN_OFF, (uint16_t)(ip_end - l3_ofs - IP6_HDR_LEN));
	}
	uint32_t seg = ip_end - l4_ofs;
	uint32_t ps = pseudo_sum(ip, l3, seg);
	if (pseudo) {
		wr16(tcp + TCP_CSUM_OFF, fold(ps));
	} else {
		wr16(tcp + TCP_CSUM_OFF, 0);
		/* __rte_raw_cksum adds words as they lie in memory: convert to host order */
		uint16_t c = (uint16_t)~fold(__rte_raw_cksum_reduce(__rte_raw_cksum(tcp, seg, 0)) + 0u +
					     (uint32_t)rte_cpu_to_be_16(fold(ps)));
		memcpy(tcp + TCP_CSUM_OFF, &c, 2);
	}
	*len = n;
	return 0;
}
