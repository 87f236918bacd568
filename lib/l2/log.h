// log.h - the library's logger (spdlog): state changes of the Redis tier, said once each.
//
// Logs go to stderr under the name "shmcache". SHMCACHE_LOG_LEVEL (trace, debug, info, warn,
// error, critical, off) sets the level; the default is info. Nothing on a hot path logs: only
// transitions (L2 lost, L2 back, subscriber elected, resync), so a flapping Redis costs a line per
// change, not per call.
#ifndef SHMCACHE_LIB_L2_LOG_H
#define SHMCACHE_LIB_L2_LOG_H

#include <spdlog/spdlog.h>

namespace shmcache::l2 {

spdlog::logger& log();

}  // namespace shmcache::l2

#endif
