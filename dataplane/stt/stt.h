/* STT, the Stateless Transport Tunneling protocol (draft-davie-stt-08), in a DPDK fast
 * path. The wire format and its pitfalls are in shared/research/stt.md; the names
 * here follow it:
 *
 *   outer Eth | outer IPv4 (DF) | TCP-like header (20) | STT frame
 *   STT frame = STT header (16) + pad (2) + inner Ethernet frame (no FCS)
 *
 * The TCP-like header: source port = entropy (hash of the inner flow), destination port
 * 7471, seq = frame length << 16 | offset of this segment's bytes in the frame, ack =
 * packet id (one per frame), data offset 5, flags ACK|PSH, window 65535, urgent 0.
 * Only the first segment carries the STT header.
 *
 * Encapsulation (stt_encap.c) cuts a frame into segments of at most mss payload bytes,
 * each with a correct TCP checksum; it hands one super-packet to the NIC instead when
 * the underlay port does TCP segmentation offload. Decapsulation (stt_reasm.c) checks
 * each segment and reassembles frames per worker, keyed by (outer source, outer
 * destination, packet id), with no locks and no allocation beyond the mbufs it holds. */
#ifndef FERRY_STT_H
#define FERRY_STT_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include "ferry_proto.h"

#define FERRY_STT_TCP_LEN 20u          /* the TCP-like header, no options */
#define FERRY_STT_HDR_LEN 18u          /* 16 bytes of fields, 2 of padding */
#define FERRY_STT_FRAME_MAX 65535u     /* seq[31:16] holds the frame length */
#define FERRY_STT_INNER_MAX (FERRY_STT_FRAME_MAX - FERRY_STT_HDR_LEN)
/* outer Ethernet + IPv4 + TCP-like header, the headroom an encapsulation prepends
 * (the first segment adds FERRY_STT_HDR_LEN) */
#define FERRY_STT_OUTER_LEN (RTE_ETHER_HDR_LEN + 20u + FERRY_STT_TCP_LEN)
#define FERRY_STT_VERSION 0
#define FERRY_STT_SEQ_LEN_SHIFT 16

/* STT header flags (bit 0 is the least significant in every implementation) */
#define FERRY_STT_F_CSUM_VERIFIED 0x01
#define FERRY_STT_F_CSUM_PARTIAL 0x02
#define FERRY_STT_F_IPV4 0x04          /* inner L3 is IPv4 (clear: IPv6); only with PARTIAL */
#define FERRY_STT_F_TCP 0x08           /* inner L4 is TCP (clear: UDP); only with PARTIAL */
#define FERRY_STT_F_RESERVED 0xf0
#define FERRY_STT_VLAN_PRESENT 0x1000  /* the V bit of the VLAN TCI field */

#define FERRY_STT_TCP_FLAGS (RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG)
#define FERRY_STT_WINDOW 65535u

/* the smallest underlay IP MTU a tunnel accepts (IPv4's minimum datagram size) and
 * so the most segments one frame can need */
#define FERRY_STT_MIN_UNDERLAY_MTU 576u
#define FERRY_STT_MAX_SEGS ((FERRY_STT_FRAME_MAX + (FERRY_STT_MIN_UNDERLAY_MTU - 40u) - 1) / (FERRY_STT_MIN_UNDERLAY_MTU - 40u))

struct ferry_stt_hdr {
	uint8_t version;
	uint8_t flags;
	uint8_t l4_offset;   /* from the start of the inner Ethernet header */
	uint8_t reserved;
	rte_be16_t mss;
	rte_be16_t vlan_tci; /* PCP | V | VID */
	rte_be64_t context;
	uint8_t pad[2];
} __rte_packed;

/* ---- encapsulation ---- */

/* Everything one encapsulation needs, resolved by the caller (tunnel port, neighbour). */
struct ferry_stt_encap {
	struct rte_ether_addr src_mac;  /* the underlay port's */
	struct rte_ether_addr dst_mac;  /* the next hop's */
	rte_be32_t src_ip;
	rte_be32_t dst_ip;
	rte_be16_t src_port;            /* entropy: a hash of the inner flow */
	rte_be16_t dst_port;            /* FERRY_STT_PORT unless configured */
	uint8_t tos;                    /* outer DSCP/ECN */
	uint8_t ttl;
	uint64_t context;               /* host order */
	uint32_t packet_id;             /* the ack field: unique per frame of this sender */
	uint16_t ip_id;                 /* of the first segment; each later segment +1 */
	uint16_t mss;                   /* payload bytes per segment: underlay MTU - 40 */
	uint64_t tx_offloads;           /* the underlay port's enabled RTE_ETH_TX_OFFLOAD_* */
};

/* Encapsulates inner into STT segments ready for rte_eth_tx_burst on the underlay port.
 * inner is consumed in every case (sent on as segments, or freed). Header mbufs come
 * from pool; payload is referenced (indirect mbufs), not copied, except for small
 * pieces where a copy is cheaper. The inner STT flags come from inner's metadata:
 * TX checksum/TSO requests give CSUM_PARTIAL (+ l4 offset, MSS, IPv4/TCP bits), an rx
 * checksum found good gives CSUM_VERIFIED, anything else 0.
 * Returns the number of mbufs written to out[] (1 for a TSO super-packet, at most
 * max_out), or -FERRY_STT_REASON_TOO_BIG / -FERRY_STT_REASON_NO_MBUF, or
 * -FERRY_STT_REASON_BAD_INNER when an offload request names headers the frame does
 * not hold. A frame too long for one IPv4 super-packet (inner over 65477 bytes) is cut
 * in software even on a TSO port; a TSO request on inner with an L4 offset over 255
 * is TOO_BIG (STT cannot carry it: ferry_stt_finish_offloads segments it first). */
int ferry_stt_encap(struct rte_mbuf *inner, const struct ferry_stt_encap *p, struct rte_mempool *pool,
		    struct rte_mbuf **out, unsigned max_out);

/* ---- decapsulation ---- */

#define FERRY_STT_DEFAULT_MAX_FRAMES 1024u         /* frames in reassembly per worker */
#define FERRY_STT_DEFAULT_MEM_MAX (4u << 20)       /* bytes of mbufs per worker (OVS: 4 MiB per CPU) */
#define FERRY_STT_DEFAULT_TIMEOUT_MS 100u          /* from a frame's first segment */
/* a decapsulated frame's first mbuf holds at least this much of it (or all of it)
 * contiguous, so the parser sees every header without walking the chain */
#define FERRY_STT_HEAD_MIN 256u

struct ferry_stt_reasm;

struct ferry_stt_reasm_config {
	uint32_t max_frames;   /* 0: FERRY_STT_DEFAULT_MAX_FRAMES */
	uint32_t mem_max;      /* 0: FERRY_STT_DEFAULT_MEM_MAX; counted as buf_len + sizeof(rte_mbuf) per mbuf */
	uint32_t timeout_ms;   /* 0: FERRY_STT_DEFAULT_TIMEOUT_MS */
	uint32_t seed;         /* hash seed (random in ferryd, fixed in tests) */
	int socket;
	struct rte_mempool *pool; /* for a new head mbuf when the first segment is short */
};

/* A decapsulated frame. */
struct ferry_stt_rx {
	struct rte_mbuf *frame;  /* the inner Ethernet frame (maybe chained); offload flags set
	                          * from the STT flags: VERIFIED -> RX_L4_CKSUM_GOOD; PARTIAL ->
	                          * TX_IPV4|TX_IPV6 + TX_TCP_CKSUM|TX_UDP_CKSUM (+ TX_TCP_SEG with
	                          * tso_segsz = MSS), l2_len/l3_len, and the inner pseudo-header
	                          * checksum rewritten for that request */
	uint64_t context;        /* host order: tun_id */
	rte_be32_t src_ip;       /* outer source: tun_src */
	rte_be32_t dst_ip;       /* outer destination: tun_dst */
	rte_be16_t dst_port;     /* outer TCP destination port */
	uint8_t stt_flags;
};

enum ferry_stt_verdict {
	FERRY_STT_HELD,  /* kept until its frame is whole */
	FERRY_STT_DONE,  /* *rx holds a whole frame (m is part of it) */
	FERRY_STT_DROP,  /* m was freed; the reason is counted */
};

struct ferry_stt_reasm *ferry_stt_reasm_create(const struct ferry_stt_reasm_config *cfg);
/* Frees every held mbuf (uncounted), then the table. NULL is fine. */
void ferry_stt_reasm_destroy(struct ferry_stt_reasm *r);
/* 0 leaves a value as it is; takes effect for the next segment. */
void ferry_stt_reasm_set_limits(struct ferry_stt_reasm *r, uint32_t timeout_ms, uint32_t mem_max);

/* Offers one outer segment: m starts with its Ethernet header and has its IPv4 header
 * at l3_off; the caller already knows it is TCP to a local tunnel address and an STT
 * destination port, and not an IP fragment. The outer TCP checksum is verified in
 * software unless m's rx flags say it is good. Checks each segment (length, offset,
 * flags, data offset, frame length agreeing with the frame's other segments,
 * overlaps and duplicates, the STT header of offset 0) and, when a frame is whole,
 * strips the outer headers and the STT header, applies CE (any segment's) to an
 * ECN-capable inner IP header, puts a VLAN tag with the V bit into the frame, and
 * sets the offload flags. Memory above mem_max evicts the least recently used
 * frames; a frame whose first segment is older than the timeout is dropped. */
enum ferry_stt_verdict ferry_stt_reasm_add(struct ferry_stt_reasm *r, struct rte_mbuf *m, uint16_t l3_off,
					   uint64_t now_ns, struct ferry_stt_rx *rx);
/* Drops frames past their timeout (counted TIMEOUT). Cheap when nothing is held. */
void ferry_stt_reasm_expire(struct ferry_stt_reasm *r, uint64_t now_ns);
/* Counters by enum ferry_stt_reason: every segment dropped counts once, under its
 * reason; TIMEOUT and EVICTED count frames. */
const uint64_t *ferry_stt_reasm_counters(const struct ferry_stt_reasm *r);
uint32_t ferry_stt_reasm_frames(const struct ferry_stt_reasm *r);  /* held now */
uint64_t ferry_stt_reasm_mem(const struct ferry_stt_reasm *r);     /* bytes held now */

/* ---- inner offloads on the way out ---- */

/* Before m goes out of a port whose enabled tx offloads are port_offloads: what m asks
 * of the NIC (TX_*_CKSUM, TX_TCP_SEG) that the port cannot do is done here in software
 * (checksums completed; a TSO request on a port without TSO is segmented into
 * MSS-sized packets written to out[]). Returns the packets to send (out[0] == m when
 * nothing was split), or 0 when m was dropped (freed). */
unsigned ferry_stt_finish_offloads(struct rte_mbuf *m, uint64_t port_offloads, struct rte_mempool *pool,
				   struct rte_mbuf **out, unsigned max_out);

/* ---- helpers the STT sources share (defined in stt_offload.c); not for other callers ---- */

/* Pieces of payload up to this many bytes are copied rather than referenced by an
 * indirect mbuf. An indirect costs ~24 ns (allocation, attach, detach and free: two
 * atomic reference count updates); copying 512 cached bytes ~6 ns, and a software
 * checksum reads them anyway. Larger pieces stay referenced so big frames are not
 * copied (memory bandwidth, cold payloads, checksums offloaded). */
#define FERRY_STT_COPY_MAX 512u

/* the ol_flags bits that say how an mbuf's buffer is attached, kept across rewrites
 * of its metadata */
#define FERRY_STT_ATTACH_FLAGS (RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL)

/* A position in an mbuf chain: byte off of segment m (off may lie past m: the
 * functions below walk on from there, so {head, n} is byte n of the packet). */
struct ferry_stt_cursor {
	struct rte_mbuf *m;
	uint32_t off;
};

/* The ones' complement sum of len bytes at buf added to sum: 16-bit words in memory
 * order, neither folded to 16 bits nor inverted (rte_raw_cksum's convention), about
 * seven times as fast as rte_raw_cksum on large buffers. */
uint32_t ferry_stt_cksum(const void *buf, size_t len, uint32_t sum);

/* a sum folded to 16 bits, not inverted */
static inline uint16_t ferry_stt_cksum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)sum;
}

/* The sum of len bytes of a chain from *c, which moves past them; the first byte
 * counts as at an even offset. The chain must hold them. */
uint32_t ferry_stt_cksum_chain(struct ferry_stt_cursor *c, uint32_t len);

/* Appends len bytes of a chain from *c (which moves past them) to packet h, whose last
 * segment is *tail (h itself or one this function added): small pieces are copied,
 * larger ones referenced by indirect mbufs from pool. With sum non-NULL, adds their
 * sum as if the first byte were at an even offset. Returns 0, or -1 when out of mbufs
 * (h stays consistent: freeing it frees what was added). */
int ferry_stt_append(struct rte_mbuf *h, struct rte_mbuf **tail, struct ferry_stt_cursor *c, uint32_t len,
		     struct rte_mempool *pool, uint64_t *sum);

/* Completes in software the IPv4 header and TCP/UDP checksums *m asks of the NIC that
 * port_offloads cannot do, and clears those requests; a TSO request is left alone.
 * *m may be replaced (headers copied out of a shared or split first segment). Returns
 * 0, or -FERRY_STT_REASON_BAD_INNER / -FERRY_STT_REASON_NO_MBUF with *m freed. */
int ferry_stt_complete_cksums(struct rte_mbuf **m, uint64_t port_offloads, struct rte_mempool *pool);

#endif
