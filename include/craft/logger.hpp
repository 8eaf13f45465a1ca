#pragma once
/// @file
/// The logger policy: a type with `log(log_level, std::string_view)`. craft forces no logging
/// library on its users; `stderr_logger` is the default, `null_logger` is silent.

#include <chrono>      // timestamps
#include <cstdio>      // stderr
#include <functional>  // log_sink
#include <mutex>       // one line at a time
#include <string>
#include <string_view>

namespace craft {

/// How much a log line matters.
enum class log_level : unsigned char { debug, info, warn, error, off };

/// Name of a level, for log lines.
[[nodiscard]] constexpr std::string_view to_string(log_level l) noexcept {
    constexpr std::string_view names[] = {"debug", "info", "warn", "error", "off"};
    return names[static_cast<unsigned>(l)];
}

/// A type `L` models `logger` when `l.log(level, line)` accepts a `log_level` and a
/// `std::string_view` (one line, no trailing newline) from any thread.
template <class L>
concept logger = requires(L& l, log_level lv, std::string_view s) {
    l.log(lv, s);
};

/// Where the runtime's pieces send their lines (bound to the node's logger).
using log_sink = std::function<void(log_level, std::string_view)>;

/// Writes lines at or above `level` to stderr, one whole line at a time.
struct stderr_logger {
    log_level level = log_level::info;

    void log(log_level l, std::string_view line) {
        if (l < level || l == log_level::off) return;
        static std::mutex m;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
        std::lock_guard lock(m);
        std::fprintf(stderr, "%lld.%03lld craft %.*s: %.*s\n", static_cast<long long>(ms / 1000),
                     static_cast<long long>(ms % 1000), static_cast<int>(to_string(l).size()),
                     to_string(l).data(), static_cast<int>(line.size()), line.data());
    }
};

/// Discards every line.
struct null_logger {
    void log(log_level, std::string_view) {}
};

static_assert(logger<stderr_logger> && logger<null_logger>);

}  // namespace craft
