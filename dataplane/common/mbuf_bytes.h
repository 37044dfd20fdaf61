/* A packet made from bytes: one mbuf when they fit, else a chain. For the paths that
 * build a packet from a buffer (a reassembled datagram, a pcap record) and for the
 * tests, which also shape chains on purpose. */
#ifndef FERRY_MBUF_BYTES_H
#define FERRY_MBUF_BYTES_H

#include <stdint.h>
#include <string.h>
#include <rte_mbuf.h>

/* A copy of data[0..len) from pool, each segment holding at most link bytes (0: as
 * many as fit). NULL (nothing allocated) when the pool runs dry. */
static inline struct rte_mbuf *ferry_mbuf_from_bytes(struct rte_mempool *pool, const void *data, uint32_t len,
						     uint32_t link)
{
	const uint8_t *b = data;
	struct rte_mbuf *head = NULL, *tail = NULL;
	uint32_t off = 0;
	do {
		struct rte_mbuf *s = rte_pktmbuf_alloc(pool);
		if (s == NULL) {
			rte_pktmbuf_free(head);
			return NULL;
		}
		uint32_t n = len - off < rte_pktmbuf_tailroom(s) ? len - off : rte_pktmbuf_tailroom(s);
		if (link != 0 && n > link)
			n = link;
		memcpy(rte_pktmbuf_append(s, (uint16_t)n), b + off, n);
		off += n;
		if (head == NULL) {
			head = s;
		} else {
			tail->next = s;
			head->nb_segs++;
			head->pkt_len += n;
		}
		tail = s;
	} while (off < len);
	return head;
}

#endif
