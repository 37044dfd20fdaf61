/* Ferry's IP fragment reassembler, run before the connection tracker: fragments of
 * a datagram are held (their bytes copied, their handles kept) until the datagram is
 * complete; the caller then tracks the whole datagram and forwards the ORIGINAL
 * fragments with its result (Open vSwitch's ipf model).
 *
 *  - one per worker, no locks; all memory is reserved at create (one arena sized by
 *    max_frags and max_bytes), nothing is allocated per packet;
 *  - a datagram is keyed by (v4|v6, src, dst, IP id, protocol, zone); the v6
 *    protocol is the fragment header's next header;
 *  - it reads the caller's buffers and never writes or frees them; handles
 *    (mbufs) come back either in a DONE result or through the release callback;
 *  - any overlap between two fragments of a datagram (an exact duplicate included)
 *    is treated as an attack (RFC 5722): the whole datagram is dropped;
 *  - time comes from the caller (now_ns, expected not to go backwards).
 *
 * Counters (ferry_ipf_counters, by enum ferry_frag_reason): REASSEMBLED counts
 * datagrams delivered; every other reason counts fragments dropped for it, both the
 * one just offered (DROP) and the held ones released when a datagram is abandoned. */
#ifndef FERRY_IPF_H
#define FERRY_IPF_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry_proto.h"

#define FERRY_IPF_MAX_FRAGS_PER_DGRAM 64

#define FERRY_IPF_DEFAULT_MAX_FRAGS 1000u
#define FERRY_IPF_DEFAULT_MAX_BYTES (4u << 20)
#define FERRY_IPF_DEFAULT_TIMEOUT_MS 15000u
#define FERRY_IPF_DEFAULT_MIN_FRAG 400u

struct ferry_ipf;                       /* one per worker: no locks inside */

struct ferry_ipf_config {
	uint32_t max_frags;      /* fragments held at once, all datagrams; 0: 1000 (OVS default) */
	uint32_t max_bytes;      /* bytes held at once (fragment payloads, plus the L2 and IP
	                          * headers of each datagram's first fragment); 0: 4 MiB */
	uint32_t timeout_ms;     /* a datagram not complete after this is dropped; 0: 15000 */
	uint32_t min_frag_v4;    /* smallest non-last v4 fragment accepted (L3 payload bytes); 0: 400 */
	uint32_t min_frag_v6;    /* same for v6 (bytes after the fragment header); 0: 400 */
};

/* One fragment offered by the caller: data[l3_ofs] is its IPv4/IPv6 header (told
 * apart by the version nibble), len counts from data. handle is the caller's (an
 * mbuf pointer); the reassembler never frees or writes it. The bytes are copied:
 * data need not stay valid after the call. */
struct ferry_ipf_frag {
	const uint8_t *data;
	uint32_t len;
	uint16_t l3_ofs;
	uint16_t zone;
	void *handle;
};

enum ferry_ipf_verdict {
	FERRY_IPF_NOT_FRAGMENT,
	FERRY_IPF_HELD,
	FERRY_IPF_DONE,
	FERRY_IPF_DROP,
};

struct ferry_ipf_done {
	/* the original fragments (the one just offered included), in offset order */
	void *handles[FERRY_IPF_MAX_FRAGS_PER_DGRAM];
	unsigned n_handles;
	/* the reassembled datagram: the first fragment's L2 bytes (data[0..l3_ofs)) then
	 * a complete IP packet (v4: MF and offset cleared, DF kept, tot_len and header
	 * checksum recomputed; v6: fragment header removed, the next header chained,
	 * payload_len fixed). Owned by the reassembler. */
	uint8_t *whole;
	uint32_t whole_len;
	uint16_t l3_ofs;
};

/* NULL when the configuration is unusable or memory is short. */
struct ferry_ipf *ferry_ipf_create(const struct ferry_ipf_config *cfg);
/* Gives every held handle to the release callback (not counted), then frees. */
void ferry_ipf_destroy(struct ferry_ipf *ipf);

/* Is this packet a fragment (v4 MF or offset != 0; v6 with a fragment extension
 * header, walking hop-by-hop/routing/dest-opts headers before it)? Cheap; for the
 * caller's fast path. False for anything that is not IPv4/IPv6 or is truncated
 * before the fields it needs. */
bool ferry_ipf_is_fragment(const uint8_t *data, uint32_t len, uint16_t l3_ofs);

/* Offers a packet.
 *  NOT_FRAGMENT: nothing kept.
 *  HELD: kept; the caller must not free the handle.
 *  DONE: *out holds the whole datagram and every handle of it (the caller owns them
 *        all again); out->whole stays valid until the next call of ferry_ipf_add,
 *        ferry_ipf_expire or ferry_ipf_destroy. A v6 atomic fragment (offset 0, M
 *        clear; RFC 6946) is DONE at once on its own.
 *  DROP: nothing kept of this packet (the caller frees and counts it); *reason
 *        (when reason is not NULL) is set to a FERRY_FRAG_REASON_*:
 *    BAD        malformed: truncated, bad IHL/length, zero payload, a non-last
 *               fragment whose payload is not a multiple of 8 (dropped alone); or
 *               inconsistent with its datagram (a second last fragment, bytes past
 *               the end): the datagram is abandoned;
 *    TOO_SMALL  a non-last fragment under min_frag (dropped alone);
 *    TOO_BIG    it or its datagram would pass 65535 bytes (v4 total length, v6
 *               payload length): the datagram is abandoned;
 *    OVERLAP    it overlaps (or duplicates) a held fragment: the datagram is abandoned;
 *    TOO_MANY   its datagram already holds FERRY_IPF_MAX_FRAGS_PER_DGRAM fragments:
 *               the datagram is abandoned;
 *    NO_SPACE   max_frags or max_bytes would be exceeded (after expiring): the
 *               fragment is dropped alone, its datagram stays as it was.
 * Handles of an abandoned datagram are given to the release callback. Datagrams
 * whose time is up at now_ns are expired first (as ferry_ipf_expire). The release
 * callback is called from within ferry_ipf_add/expire/destroy and must not call
 * back into this reassembler. */
enum ferry_ipf_verdict ferry_ipf_add(struct ferry_ipf *ipf, const struct ferry_ipf_frag *f, uint64_t now_ns,
				     struct ferry_ipf_done *out, uint8_t *reason);

/* Where handles of abandoned datagrams go (none set: they are just forgotten). */
void ferry_ipf_set_release(struct ferry_ipf *ipf, void (*release)(void *arg, void *handle), void *arg);

/* Drops datagrams whose first fragment arrived more than timeout before now_ns
 * (their handles go to release, counted TIMEOUT). */
void ferry_ipf_expire(struct ferry_ipf *ipf, uint64_t now_ns);

const uint64_t *ferry_ipf_counters(const struct ferry_ipf *ipf); /* [FERRY_FRAG_REASONS] */
uint32_t ferry_ipf_held(const struct ferry_ipf *ipf);           /* fragments held now */

#endif
