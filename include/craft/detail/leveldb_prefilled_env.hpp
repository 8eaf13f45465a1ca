#pragma once
/// @file
/// `leveldb_prefilled_env`: a LevelDB `Env` that writes LevelDB's write-ahead log files over
/// zeros laid down ahead of time, and `trim_prefilled_logs`, which makes what a crash leaves
/// of such a file readable by LevelDB again.
///
/// Why: a synced append that grows a file costs the file system a second write (the inode's
/// new size; on ext4 without a journal, a synchronous inode write after the data), while a
/// synced overwrite of blocks already written costs one. etcd preallocates its WAL segments
/// and RocksDB recycles its log files for the same reason. Here a thread of the store fills a
/// spare file with zeros while the current log grows; at LevelDB's next log switch the spare
/// is renamed into place (and the directory synced) and written from its start. A clean
/// close truncates the file to what was written. After a crash the file ends in zeros, which
/// LevelDB's log reader skips, except where a record was torn by the crash:
/// `trim_prefilled_logs` cuts such a tail before LevelDB opens the directory.

#include <fcntl.h>
#include <leveldb/env.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "../status.hpp"
#include "crc32c.hpp"
#include "fsync.hpp"

namespace craft::detail {

/// Spare log files are whole MiB (how `trim_prefilled_logs` tells them from logs that
/// LevelDB's own Env wrote or that were closed cleanly).
inline constexpr std::uint64_t prefill_unit = 1u << 20;

/// The size of the spare log files for a memtable of `write_buffer_bytes` (LevelDB switches
/// logs when the memtable is full, so one spare holds a whole log).
[[nodiscard]] inline std::uint64_t prefill_bytes(std::size_t write_buffer_bytes) {
    return (write_buffer_bytes + 2 * prefill_unit - 1) / prefill_unit * prefill_unit;
}

class leveldb_prefilled_env final : public leveldb::EnvWrapper {
public:
    /// For the LevelDB database in `dir` with a memtable of `write_buffer_bytes`.
    leveldb_prefilled_env(const std::filesystem::path& dir, std::size_t write_buffer_bytes)
        : EnvWrapper(leveldb::Env::Default()),
          dir_(dir),
          spare_((dir / "craft-spare-log").string()),
          bytes_(prefill_bytes(write_buffer_bytes)),
          start_after_(write_buffer_bytes / 4) {
        std::error_code ec;
        std::filesystem::remove(spare_ + ".tmp", ec);
        const auto size = std::filesystem::file_size(spare_, ec);
        ready_ = !ec && size == bytes_;  // only the filler makes it, zeros, synced, renamed
        filler_ = std::thread([this] { fill_loop(); });
    }
    ~leveldb_prefilled_env() override {
        {
            std::lock_guard l(m_);
            stop_ = true;
        }
        cv_.notify_all();
        filler_.join();
    }
    leveldb_prefilled_env(const leveldb_prefilled_env&) = delete;
    leveldb_prefilled_env& operator=(const leveldb_prefilled_env&) = delete;

    leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
        if (!f.ends_with(".log")) return target()->NewWritableFile(f, r);
        bool spare = false;
        {
            std::lock_guard l(m_);
            spare = std::exchange(ready_, false);
        }
        int fd = -1;
        if (spare && ::rename(spare_.c_str(), f.c_str()) == 0) {
            // The new name must last: LevelDB syncs the directory only for its manifest.
            if (auto st = sync_directory(dir_); !st)
                return leveldb::Status::IOError(f, st.message());
            fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
        } else {
            fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        }
        if (fd < 0) return leveldb::Status::IOError(f, std::strerror(errno));
        *r = new file(*this, fd, f);
        return leveldb::Status::OK();
    }

private:
    /// A log file written at increasing offsets from its start (over zeros, when it was a
    /// spare); `Close` truncates it to what was written.
    class file final : public leveldb::WritableFile {
    public:
        file(leveldb_prefilled_env& env, int fd, std::string name)
            : env_(env), fd_(fd), name_(std::move(name)) {}
        ~file() override {
            if (fd_ >= 0) (void)Close();
        }
        file(const file&) = delete;
        file& operator=(const file&) = delete;

        leveldb::Status Append(const leveldb::Slice& s) override {
            buf_.append(s.data(), s.size());
            return buf_.size() >= (64u << 10) ? Flush() : leveldb::Status::OK();
        }
        leveldb::Status Flush() override {
            std::size_t done = 0;
            while (done < buf_.size()) {
                const auto n = ::pwrite(fd_, buf_.data() + done, buf_.size() - done,
                                        static_cast<off_t>(off_ + done));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return error();
                done += static_cast<std::size_t>(n);
            }
            off_ += done;
            buf_.clear();
            env_.written(off_);
            return leveldb::Status::OK();
        }
        leveldb::Status Sync() override {
            if (auto st = Flush(); !st.ok()) return st;
            return ::fdatasync(fd_) == 0 ? leveldb::Status::OK() : error();
        }
        leveldb::Status Close() override {
            auto st = Flush();
            if (st.ok() && ::ftruncate(fd_, static_cast<off_t>(off_)) != 0) st = error();
            if (::close(fd_) != 0 && st.ok()) st = error();
            fd_ = -1;
            return st;
        }

    private:
        [[nodiscard]] leveldb::Status error() const {
            return leveldb::Status::IOError(name_, std::strerror(errno));
        }
        leveldb_prefilled_env& env_;
        int fd_;
        std::string name_;
        std::string buf_;
        std::uint64_t off_ = 0;
    };

    /// The current log holds `bytes`: past a quarter of a memtable, the next spare is made
    /// (a store that never gets that far never writes one).
    void written(std::uint64_t bytes) {
        if (bytes < start_after_) return;
        {
            std::lock_guard l(m_);
            if (ready_ || want_) return;
            want_ = true;
        }
        cv_.notify_all();
    }

    void fill_loop() {
        std::unique_lock l(m_);
        while (true) {
            cv_.wait(l, [&] { return stop_ || want_; });
            if (stop_) return;
            l.unlock();
            const bool ok = fill();
            l.lock();
            want_ = false;
            ready_ = ok;
        }
    }

    /// Writes `bytes_` zeros to a temporary file, syncs it and renames it to the spare's name.
    bool fill() {
        const std::string tmp = spare_ + ".tmp";
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return false;
        const std::string zeros(prefill_unit, '\0');
        bool ok = true;
        for (std::uint64_t done = 0; ok && done < bytes_; done += zeros.size()) {
            {
                std::lock_guard l(m_);
                ok = !stop_;
            }
            ok =
                ok && ::write(fd, zeros.data(), zeros.size()) == static_cast<ssize_t>(zeros.size());
        }
        ok = ::fdatasync(fd) == 0 && ok;
        ok = ::close(fd) == 0 && ok;
        ok = ok && ::rename(tmp.c_str(), spare_.c_str()) == 0;
        if (!ok) ::unlink(tmp.c_str());
        return ok;
    }

    std::filesystem::path dir_;
    std::string spare_;
    std::uint64_t bytes_, start_after_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false, want_ = false, ready_ = false;
    std::thread filler_;
};

/// Before LevelDB opens `dir`: in each of its log files that a crash left with a spare's
/// zeros at the end, cuts a last record the crash tore (a record that fails its checksum,
/// or a record broken into fragments whose rest never reached the disk) together with the
/// zeros, so that LevelDB (with `paranoid_checks`) reads what was written up to it. A record
/// damaged anywhere else is left for LevelDB to refuse.
[[nodiscard]] inline status trim_prefilled_logs(const std::filesystem::path& dir) {
    std::error_code ec;
    std::vector<std::filesystem::path> logs;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().extension() == ".log" && e.is_regular_file()) logs.push_back(e.path());
    if (ec)
        return status::error("leveldb_log_store: cannot list " + dir.string() + ": " +
                             ec.message());
    for (const auto& path : logs) {
        const auto size = std::filesystem::file_size(path, ec);
        if (ec || size == 0 || size % prefill_unit != 0) continue;  // not a crashed spare
        std::string data;
        {
            const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return status::error("leveldb_log_store: cannot read " + path.string() + ": " +
                                     std::strerror(errno));
            data.resize(size);
            std::size_t done = 0;
            while (done < size) {
                const auto n =
                    ::pread(fd, data.data() + done, size - done, static_cast<off_t>(done));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                done += static_cast<std::size_t>(n);
            }
            ::close(fd);
            if (done != size)
                return status::error("leveldb_log_store: cannot read " + path.string());
        }
        // Where the zeros at the end begin; a spare left by a crash ends in at least 4 KiB.
        const auto last = data.find_last_not_of('\0');
        const std::uint64_t zeros_from = last == std::string::npos ? 0 : last + 1;
        if (size - zeros_from < 4096) continue;
        // LevelDB's log format: 32 KiB blocks of records, each a 7-byte header (masked
        // CRC32C of type and payload, 2-byte length, type: 1 full, 2 first, 3 middle, 4 last)
        // and its payload; a block's last bytes, too few for a header, are zeros.
        constexpr std::uint64_t block = 32768, header = 7;
        std::uint64_t pos = 0, whole = 0;  // `whole`: the end of the last complete record
        bool torn = false;
        while (pos < zeros_from) {
            const std::uint64_t left = block - pos % block;
            if (left < header) {
                pos += left;
                continue;
            }
            const auto* h = reinterpret_cast<const unsigned char*>(data.data() + pos);
            const std::uint32_t masked = std::uint32_t(h[0]) | std::uint32_t(h[1]) << 8 |
                                         std::uint32_t(h[2]) << 16 | std::uint32_t(h[3]) << 24;
            const std::uint64_t len = std::uint64_t(h[4]) | std::uint64_t(h[5]) << 8;
            const unsigned type = h[6];
            bool ok = type >= 1 && type <= 4 && header + len <= left;
            if (ok) {
                const std::uint32_t rot = masked - 0xa282ead8u;
                const std::uint32_t expect = (rot >> 17) | (rot << 15);
                const auto bytes = std::as_bytes(std::span(data.data() + pos + 6, 1 + len));
                ok = crc32c(bytes) == expect;
            }
            if (!ok) {
                // Torn: the zeros begin inside this record. Anything else is damage.
                torn = zeros_from < pos + header + len;
                break;
            }
            pos += header + len;
            if (type == 1 || type == 4) whole = pos;
        }
        if (pos >= zeros_from) torn = true;  // only the zeros (and maybe fragments) follow
        if (!torn) continue;
        const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        const bool cut =
            fd >= 0 && ::ftruncate(fd, static_cast<off_t>(whole)) == 0 && ::fsync(fd) == 0;
        const int err = errno;
        if (fd >= 0) ::close(fd);
        if (!cut)
            return status::error("leveldb_log_store: cannot cut the torn tail of " + path.string() +
                                 ": " + std::strerror(err));
    }
    return {};
}

}  // namespace craft::detail
