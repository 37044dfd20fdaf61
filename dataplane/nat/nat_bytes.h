/* What the NAT rewriters share for reading fields and ones' complement sums. */
#ifndef FERRY_NAT_BYTES_H
#define FERRY_NAT_BYTES_H

#include <stdint.h>

/* a 16-bit field in network order, as a number */
static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* a 32-bit ones' complement sum folded to 16 bits */
static inline uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

#endif
