// fork_hooks.h - objects that must be made safe in a fork() child (pthread_atfork).
//
// A registered object gets prepare() in the parent before fork (take the locks its threads may
// hold), then parent() in the parent or child() in the child afterwards (release them; in the
// child, also forget the threads and connections that stayed in the parent). Objects register in
// their constructor and unregister in their destructor.
#ifndef SHMCACHE_LIB_L2_FORK_HOOKS_H
#define SHMCACHE_LIB_L2_FORK_HOOKS_H

namespace shmcache::l2 {

class ForkAware {
public:
    virtual void fork_prepare() = 0;
    virtual void fork_parent() = 0;
    virtual void fork_child() = 0;

protected:
    ~ForkAware() = default;
};

// Objects registered with last = true are prepared after every other one (and released before
// them): locks that other objects' threads may take while holding their own (the log's) must be
// taken last, or a fork could deadlock.
void register_fork_aware(ForkAware* obj, bool last = false);
void unregister_fork_aware(ForkAware* obj);

}  // namespace shmcache::l2

#endif
