#pragma once
/// @file
/// Syncing a directory, so that files created or renamed in it survive a power loss (POSIX).

#include <fcntl.h>   // open
#include <unistd.h>  // fsync, close

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

#include "../concepts.hpp"

namespace craft::detail {

/// fsyncs the directory `dir`; the status names the directory and the system's reason.
[[nodiscard]] inline status sync_directory(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return status::error("cannot open directory " + dir.string() + ": " +
                             std::generic_category().message(errno));
    const bool ok = ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok)
        return status::error("cannot sync directory " + dir.string() + ": " +
                             std::generic_category().message(err));
    return {};
}

}  // namespace craft::detail
