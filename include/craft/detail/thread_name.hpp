#pragma once
// Names a library thread so `top -H`, perf and gdb show what it is ("craft-core",
// "craft-log", ...). Linux only (a no-op elsewhere); at most 15 characters are kept. A thread
// takes its creator's name: LevelDB's background compaction thread, started lazily by the
// first write that needs it, usually shows as "craft-log".

#include <thread>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace craft::detail {

inline void name_thread(std::thread& t, const char* name) {
#if defined(__linux__)
    pthread_setname_np(t.native_handle(), name);  // a failure only loses the label
#else
    (void)t;
    (void)name;
#endif
}

}  // namespace craft::detail
