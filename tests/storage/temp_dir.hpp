// A fresh temporary directory per test, removed when the test ends.
#pragma once

#include <unistd.h>  // getpid: unique names across concurrent test processes

#include <atomic>
#include <filesystem>
#include <string>

namespace craft::test {

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        static std::atomic<int> n{0};
        path = std::filesystem::temp_directory_path() /
               ("craft-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        std::filesystem::remove_all(path);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace craft::test
