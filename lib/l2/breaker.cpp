// breaker.cpp - see breaker.h.
#include "breaker.h"

namespace shmcache::l2 {

Breaker::Verdict Breaker::admit(uint64_t now_ms, uint64_t* wait_ms) {
    std::lock_guard lk(m_);
    if (!open_) return Verdict::kGo;
    if (!trial_in_flight_ && now_ms >= open_until_ms_) {
        trial_in_flight_ = true;
        return Verdict::kTrial;
    }
    *wait_ms = open_until_ms_ > now_ms ? open_until_ms_ - now_ms : 0;
    return Verdict::kRefuse;
}

bool Breaker::on_success() {
    std::lock_guard lk(m_);
    consecutive_failures_ = 0;
    trial_in_flight_ = false;
    const bool changed = open_;
    open_ = false;
    return changed;
}

bool Breaker::on_failure(uint64_t now_ms) {
    std::lock_guard lk(m_);
    ++consecutive_failures_;
    if (open_) {  // a failed trial (or a call admitted before the breaker opened)
        trial_in_flight_ = false;
        open_until_ms_ = now_ms + cooldown_ms_;
        return false;
    }
    if (consecutive_failures_ < threshold_) return false;
    open_ = true;
    open_until_ms_ = now_ms + cooldown_ms_;
    return true;
}

bool Breaker::is_open() const {
    std::lock_guard lk(m_);
    return open_;
}

uint32_t Breaker::failures() const {
    std::lock_guard lk(m_);
    return consecutive_failures_;
}

}  // namespace shmcache::l2
