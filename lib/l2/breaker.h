// breaker.h - the circuit breaker in front of Redis, one per process and tier.
//
// Closed: every call goes through. After `threshold` consecutive failures it opens: calls fail at
// once (no connect, no timeout to wait out) for `cooldown_ms`. Then one call (the trial) goes
// through: success closes the breaker, failure opens it for another cooldown. A dead Redis thus
// costs one command timeout per cooldown, not one per request.
#ifndef SHMCACHE_LIB_L2_BREAKER_H
#define SHMCACHE_LIB_L2_BREAKER_H

#include <cstdint>
#include <mutex>

namespace shmcache::l2 {

class Breaker {
public:
    Breaker(uint32_t threshold, uint32_t cooldown_ms)
        : threshold_(threshold ? threshold : 1), cooldown_ms_(cooldown_ms) {}

    enum class Verdict { kGo, kTrial, kRefuse };
    // kRefuse carries how long until the next trial in *wait_ms.
    Verdict admit(uint64_t now_ms, uint64_t* wait_ms);
    // Each returns true if the state changed (open <-> closed), so the caller logs it once.
    bool on_success();
    bool on_failure(uint64_t now_ms);
    bool is_open() const;
    uint32_t failures() const;

private:
    mutable std::mutex m_;
    const uint32_t threshold_;
    const uint32_t cooldown_ms_;
    uint32_t consecutive_failures_ = 0;
    bool open_ = false;
    bool trial_in_flight_ = false;
    uint64_t open_until_ms_ = 0;
};

}  // namespace shmcache::l2

#endif
