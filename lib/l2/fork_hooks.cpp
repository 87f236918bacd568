// fork_hooks.cpp - see fork_hooks.h.
#include "fork_hooks.h"

#include <pthread.h>

#include <mutex>
#include <vector>

namespace shmcache::l2 {

namespace {

std::mutex g_m;  // held from prepare to parent/child, so the set cannot change across a fork
std::vector<ForkAware*>* g_objects = nullptr;  // never freed: a fork may come during exit
std::vector<ForkAware*>* g_last = nullptr;     // prepared after g_objects
std::once_flag g_once;

void prepare() {
    g_m.lock();
    for (ForkAware* o : *g_objects) o->fork_prepare();
    for (ForkAware* o : *g_last) o->fork_prepare();
}
void parent() {
    for (auto it = g_last->rbegin(); it != g_last->rend(); ++it) (*it)->fork_parent();
    for (auto it = g_objects->rbegin(); it != g_objects->rend(); ++it) (*it)->fork_parent();
    g_m.unlock();
}
void child() {
    for (auto it = g_last->rbegin(); it != g_last->rend(); ++it) (*it)->fork_child();
    for (auto it = g_objects->rbegin(); it != g_objects->rend(); ++it) (*it)->fork_child();
    g_m.unlock();
}

}  // namespace

void register_fork_aware(ForkAware* obj, bool last) {
    std::call_once(g_once, [] {
        g_objects = new std::vector<ForkAware*>();
        g_last = new std::vector<ForkAware*>();
        pthread_atfork(prepare, parent, child);
    });
    std::lock_guard lk(g_m);
    (last ? g_last : g_objects)->push_back(obj);
}

void unregister_fork_aware(ForkAware* obj) {
    std::lock_guard lk(g_m);
    std::erase(*g_objects, obj);
    std::erase(*g_last, obj);
}

}  // namespace shmcache::l2
