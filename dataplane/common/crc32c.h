/* CRC32c (the crc32 instruction's polynomial, SCTP's checksum) over bytes at any
 * alignment: loads go through memcpy. Shared by the tracker's SCTP check and the
 * NAT rewriter's SCTP recomputation, so both agree on it by construction. */
#ifndef FERRY_CRC32C_H
#define FERRY_CRC32C_H

#include <nmmintrin.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t ferry_crc32c(uint32_t crc, const uint8_t *p, uint32_t n)
{
	uint64_t c = crc;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
	}
	uint32_t c32 = (uint32_t)c;
	for (; n; p++, n--)
		c32 = _mm_crc32_u8(c32, *p);
	return c32;
}

#endif
