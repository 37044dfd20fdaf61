/* libFuzzer: the packet parser on arbitrary frames. Beyond not crashing (ASan, UBSan),
 * the layout it returns must stay inside the frame. */
#include <stdint.h>
#include <stdlib.h>
#include "../parse/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ferry_flow_key k;
	struct ferry_pkt_layout lay;
	uint32_t len = size > 65535 ? 65535 : (uint32_t)size;
	uint8_t err = ferry_parse_buf(data, len, 3, &k, &lay);
	if (k.in_port != 3 || lay.l3_off > len || lay.l4_off > len)
		abort();
	if (err == FERRY_PARSE_OK && lay.l4_off != 0 && lay.l4_off <= lay.l3_off)
		abort();
	if (len < 14 && err != FERRY_PARSE_REASON_ETH_SHORT)
		abort();
	return 0;
}
