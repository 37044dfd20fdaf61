/* Rewrites a packet's headers as a NAT translation says: addresses, L4 ports (or the
 * ICMP echo id), and every checksum they are part of, updated incrementally (RFC
 * 1624) so the cost does not grow with the payload. The connection tracker decides
 * a translation (conntrack/ct_nat.c) and never writes packets; this module writes
 * them and decides nothing: it is given the packet's new tuple.
 *
 * Tuples are in the tracker's key domain: for an ICMP echo (timestamp, info)
 * request the id is sport and the request type dport; for a reply the request
 * type is sport and the id dport. An ICMP error's quoted packet is rewritten with
 * the quoted tuple given, and its outer header's source or destination as asked. */
#ifndef FERRY_NAT_REWRITE_H
#define FERRY_NAT_REWRITE_H

#include <stdint.h>

/* ferry_nat_rewrite.op bits */
#define FERRY_NAT_RW_SRC 0x01        /* the packet's (quoted packet's) source address and sport change */
#define FERRY_NAT_RW_DST 0x02        /* its destination address and dport change */
#define FERRY_NAT_RW_ICMP_ERROR 0x04 /* an ICMP error: src/dst/ports are the quoted packet's */
#define FERRY_NAT_RW_OUTER_SRC 0x08  /* an ICMP error's outer source becomes outer[] */
#define FERRY_NAT_RW_OUTER_DST 0x10  /* an ICMP error's outer destination becomes outer[] */

struct ferry_nat_rewrite {
	uint8_t op;          /* FERRY_NAT_RW_*; 0: nothing to do */
	uint8_t l3;          /* 4 or 6 */
	uint8_t proto;       /* the (quoted) packet's IP protocol */
	uint8_t pad;
	uint16_t sport, dport; /* new ports, host order (key domain, see above) */
	uint8_t src[16];     /* new addresses, network order; IPv4 in the first 4 bytes */
	uint8_t dst[16];
	uint8_t outer[16];   /* ICMP error: the outer address OUTER_SRC/OUTER_DST sets */
};

/* The checksum offload a packet asks of the NIC (from its mbuf's ol_flags): a
 * field the NIC fills in holds the pseudo-header sum (L4: updated as such, for the
 * addresses only) or is ignored (IPv4: left as it is). Neither applies to an ICMP
 * error's quoted packet. */
#define FERRY_NAT_TX_L4_PSEUDO 0x1   /* TCP/UDP checksum offload or TSO requested */
#define FERRY_NAT_TX_IP_CKSUM 0x2    /* IPv4 header checksum offload requested */

/* Rewrites the packet whose IP header starts at data + l3_ofs (len counts from
 * data). l4_ofs is the L4 header's offset from data, 0 when the packet has none
 * (a later fragment: only its IP header is rewritten); for an ICMP error, the ICMP
 * header's. Returns 0, or -1 when the packet is too short for what rw asks or is
 * not what rw describes (nothing is written then): its L4 header cut; an SCTP port
 * change without all of the SCTP packet in [data, data + len) (cut, a fragment);
 * an ICMP error's message not all there, or its quote cut before the fields that
 * change or not of rw->proto. Nothing outside [data, data + len) is accessed. */
int ferry_nat_rewrite(uint8_t *data, uint32_t len, uint16_t l3_ofs, uint16_t l4_ofs, unsigned tx_offload,
		      const struct ferry_nat_rewrite *rw);

/* ---- TCP stream edits (nat_tcp_edit.c): what an ALG's rewrite of a payload costs
 * the rest of the connection ---- */

#define FERRY_NAT_TEXT_MAX 48u       /* the longest text an edit puts in */

struct ferry_nat_tcp_edit {
	int32_t seq_add, ack_add;    /* added to the segment's sequence and ack numbers */
	uint16_t pl_off;             /* payload offset of the bytes replaced */
	uint8_t pl_old, pl_new;      /* bytes taken out, bytes put in (both 0: no edit) */
	char text[FERRY_NAT_TEXT_MAX];
};

/* Applies e to the TCP segment whose IP header is at data + l3_ofs and TCP header at
 * data + l4_ofs (after ferry_nat_rewrite's header changes): sequence and ack numbers,
 * then the payload edit, which moves the bytes after it (the buffer has room for cap
 * bytes; *len becomes the new length), the IP length and the TCP checksum (a NIC asked
 * to complete it gets its pseudo-header sum). Returns 0, or -1 (nothing written) when
 * the segment is not whole in the buffer, the edit falls outside its payload, or
 * there is no room. */
int ferry_nat_tcp_edit(uint8_t *data, uint32_t *len, uint32_t cap, uint16_t l3_ofs, uint16_t l4_ofs, uint8_t l3,
		       unsigned tx_offload, const struct ferry_nat_tcp_edit *e);

#endif
