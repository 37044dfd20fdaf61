#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <rte_log.h>

#define RTE_LOGTYPE_FERRY RTE_LOGTYPE_USER1

#define FERRY_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_ ## level, RTE_LOGTYPE_FERRY, "ferryd: " fmt "\n", ##__VA_ARGS__)

#endif
