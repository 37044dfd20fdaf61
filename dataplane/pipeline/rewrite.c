#include "rewrite.h"

#include <string.h>
#include "actions.h"

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define TCP_CSUM_OFF 16
#define UDP_CSUM_OFF 6
#define ICMPV6_CSUM_OFF 2
#define IPV4_CSUM_OFF 10

/* Ones' complement sums are byte-order independent: checksum and data are both
 * taken as stored, 16 bits at a time. */
static inline uint16_t load16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void store16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void csum_adjust(uint8_t *csum, const uint8_t *old, const uint8_t *new, unsigned len)
{
	uint32_t s = (uint16_t)~load16(csum);
	for (unsigned i = 0; i + 1 < len; i += 2) {
		s += (uint16_t)~load16(old + i);
		s += load16(new + i);
	}
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	store16(csum, (uint16_t)~s);
}

/* The L4 checksum a pseudo-header change touches, or NULL (none, or UDP without one). */
static uint8_t *l4_csum(struct rte_mbuf *m, const struct ferry_pkt_layout *lay)
{
	if (lay->l4_off == 0)
		return NULL;
	uint8_t *l4 = rte_pktmbuf_mtod_offset(m, uint8_t *, lay->l4_off);
	uint32_t room = rte_pktmbuf_data_len(m) - lay->l4_off;
	switch (lay->l4_proto) {
	case IPPROTO_TCP_:
		return room >= TCP_CSUM_OFF + 2 ? l4 + TCP_CSUM_OFF : NULL;
	case IPPROTO_UDP_:
		return room >= UDP_CSUM_OFF + 2 && load16(l4 + UDP_CSUM_OFF) != 0 ? l4 + UDP_CSUM_OFF : NULL;
	case IPPROTO_ICMPV6_:
		return room >= ICMPV6_CSUM_OFF + 2 ? l4 + ICMPV6_CSUM_OFF : NULL;
	default:
		return NULL;
	}
}

/* new = (old & ~mask) | (value & mask) over len bytes of the packet, sums adjusted. */
static void masked_write(uint8_t *p, const uint8_t *value, const uint8_t *mask, unsigned len,
			 uint8_t *csum_a, uint8_t *csum_b)
{
	uint8_t old[16], upd[16];
	memcpy(old, p, len);
	for (unsigned i = 0; i < len; i++)
		upd[i] = (uint8_t)((old[i] & ~mask[i]) | (value[i] & mask[i]));
	if (csum_a)
		csum_adjust(csum_a, old, upd, len);
	if (csum_b)
		csum_adjust(csum_b, old, upd, len);
	memcpy(p, upd, len);
}

static void fix_udp_zero(struct rte_mbuf *m, const struct ferry_pkt_layout *lay, uint8_t *csum)
{
	/* a computed UDP checksum of 0 is sent as 0xffff: 0 means "none" */
	if (csum && lay->l4_proto == IPPROTO_UDP_ && load16(csum) == 0)
		store16(csum, 0xffff);
	(void)m;
}

static inline uint16_t host16(const uint8_t *v) { uint16_t x; memcpy(&x, v, 2); return x; }

void ferry_rewrite_set_field(struct rte_mbuf *m, struct ferry_pkt_layout *lay, const struct ferry_act_set_field *a)
{
	uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t *l3 = d + lay->l3_off;
	uint8_t *l4 = lay->l4_off ? d + lay->l4_off : NULL;
	if (unlikely(lay->parse_error == FERRY_PARSE_REASON_ETH_SHORT))
		return; /* not even an Ethernet header */
	switch (a->field) {
	case FERRY_FIELD_ID_ETH_DST:
		masked_write(d, a->value, a->mask, 6, NULL, NULL);
		break;
	case FERRY_FIELD_ID_ETH_SRC:
		masked_write(d + 6, a->value, a->mask, 6, NULL, NULL);
		break;
	case FERRY_FIELD_ID_VLAN_VID:
	case FERRY_FIELD_ID_VLAN_PCP: {
		if (lay->n_vlans == 0)
			break;
		/* value and mask are TCI bits in host order; the present bit is not on the wire */
		uint16_t v = host16(a->value), mk = host16(a->mask) & (uint16_t)~FERRY_VLAN_PRESENT;
		uint16_t tci = (uint16_t)(d[14] << 8 | d[15]);
		tci = (uint16_t)((tci & ~mk) | (v & mk));
		d[14] = (uint8_t)(tci >> 8);
		d[15] = (uint8_t)tci;
		break;
	}
	case FERRY_FIELD_ID_IPV4_SRC:
	case FERRY_FIELD_ID_IPV4_DST: {
		if (lay->l3 != FERRY_L3_IPV4)
			break;
		uint8_t *csum4 = l4_csum(m, lay);
		masked_write(l3 + (a->field == FERRY_FIELD_ID_IPV4_SRC ? 12 : 16), a->value, a->mask, 4,
			     l3 + IPV4_CSUM_OFF, csum4);
		fix_udp_zero(m, lay, csum4);
		break;
	}
	case FERRY_FIELD_ID_IPV6_SRC:
	case FERRY_FIELD_ID_IPV6_DST: {
		if (lay->l3 != FERRY_L3_IPV6)
			break;
		uint8_t *csum6 = l4_csum(m, lay);
		masked_write(l3 + (a->field == FERRY_FIELD_ID_IPV6_SRC ? 8 : 24), a->value, a->mask, 16, csum6, NULL);
		fix_udp_zero(m, lay, csum6);
		break;
	}
	case FERRY_FIELD_ID_IP_DSCP:
	case FERRY_FIELD_ID_IP_ECN:
		if (lay->l3 == FERRY_L3_IPV4) {
			uint8_t old[2] = { l3[0], l3[1] };
			uint8_t tos = (uint8_t)((l3[1] & ~a->mask[0]) | (a->value[0] & a->mask[0]));
			uint8_t upd[2] = { l3[0], tos };
			csum_adjust(l3 + IPV4_CSUM_OFF, old, upd, 2);
			l3[1] = tos;
		} else if (lay->l3 == FERRY_L3_IPV6) {
			uint8_t tc = (uint8_t)((l3[0] & 0x0f) << 4 | l3[1] >> 4);
			tc = (uint8_t)((tc & ~a->mask[0]) | (a->value[0] & a->mask[0]));
			l3[0] = (uint8_t)((l3[0] & 0xf0) | tc >> 4);
			l3[1] = (uint8_t)((l3[1] & 0x0f) | (uint8_t)(tc << 4));
		}
		break;
	case FERRY_FIELD_ID_IP_TTL:
		if (lay->l3 == FERRY_L3_IPV4) {
			uint8_t old[2] = { l3[8], l3[9] };
			uint8_t ttl = (uint8_t)((l3[8] & ~a->mask[0]) | (a->value[0] & a->mask[0]));
			uint8_t upd[2] = { ttl, l3[9] };
			csum_adjust(l3 + IPV4_CSUM_OFF, old, upd, 2);
			l3[8] = ttl;
		} else if (lay->l3 == FERRY_L3_IPV6) {
			l3[7] = (uint8_t)((l3[7] & ~a->mask[0]) | (a->value[0] & a->mask[0]));
		}
		break;
	case FERRY_FIELD_ID_TP_SRC:
	case FERRY_FIELD_ID_TP_DST: {
		if (l4 == NULL || (lay->l4_proto != IPPROTO_TCP_ && lay->l4_proto != IPPROTO_UDP_))
			break;
		/* ports are host order in the key, network order on the wire */
		uint16_t v = host16(a->value), mk = host16(a->mask);
		uint8_t vb[2] = { (uint8_t)(v >> 8), (uint8_t)v }, mb[2] = { (uint8_t)(mk >> 8), (uint8_t)mk };
		uint8_t *csum = l4_csum(m, lay);
		masked_write(l4 + (a->field == FERRY_FIELD_ID_TP_SRC ? 0 : 2), vb, mb, 2, csum, NULL);
		fix_udp_zero(m, lay, csum);
		break;
	}
	default:
		break;
	}
}

int ferry_rewrite_push_vlan(struct rte_mbuf *m, struct ferry_pkt_layout *lay, uint16_t tpid)
{
	if (unlikely(lay->parse_error == FERRY_PARSE_REASON_ETH_SHORT))
		return 0;
	uint8_t *old = rte_pktmbuf_mtod(m, uint8_t *);
	/* the new outer tag copies the current outer TCI, if there is one */
	uint8_t tci[2] = { 0, 0 };
	if (lay->n_vlans > 0)
		memcpy(tci, old + 14, 2);
	uint8_t *d = (uint8_t *)rte_pktmbuf_prepend(m, 4);
	if (d == NULL)
		return -1;
	memmove(d, d + 4, 12);
	d[12] = (uint8_t)(tpid >> 8);
	d[13] = (uint8_t)tpid;
	memcpy(d + 14, tci, 2);
	lay->n_vlans++;
	lay->l3_off += 4;
	if (lay->l4_off)
		lay->l4_off += 4;
	return 0;
}

void ferry_rewrite_pop_vlan(struct rte_mbuf *m, struct ferry_pkt_layout *lay)
{
	if (lay->n_vlans == 0)
		return;
	uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
	memmove(d + 4, d, 12);
	rte_pktmbuf_adj(m, 4);
	lay->n_vlans--;
	lay->l3_off -= 4;
	if (lay->l4_off)
		lay->l4_off -= 4;
}

void ferry_rewrite_dec_ttl(struct rte_mbuf *m, const struct ferry_pkt_layout *lay)
{
	uint8_t *l3 = rte_pktmbuf_mtod_offset(m, uint8_t *, lay->l3_off);
	if (lay->l3 == FERRY_L3_IPV4) {
		uint8_t old[2] = { l3[8], l3[9] };
		uint8_t upd[2] = { (uint8_t)(l3[8] - 1), l3[9] };
		csum_adjust(l3 + IPV4_CSUM_OFF, old, upd, 2);
		l3[8] = upd[0];
	} else if (lay->l3 == FERRY_L3_IPV6) {
		l3[7]--;
	}
}
