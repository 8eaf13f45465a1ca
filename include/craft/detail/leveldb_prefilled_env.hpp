#pragma once
/// @file
/// `leveldb_prefilled_env`: a LevelDB `Env` that writes LevelDB's write-ahead log files over
/// zeros laid down ahead of time, and, before LevelDB reads a log at open, cuts what a crash
/// left at the end of such a file (`trim_prefilled_log`).
///
/// Why: a synced append that grows a file costs the file system a second write (the inode's
/// new size; on ext4 without a journal, a synchronous inode write after the data), while a
/// synced overwrite of blocks already written costs one. etcd preallocates its WAL segments
/// and RocksDB recycles its log files for the same reason. Here a thread of the store fills a
/// spare file with zeros while the current log grows; at LevelDB's next log switch the spare
/// is renamed into place (and the directory synced) and written from its start. A clean
/// close truncates the file to what was written. After a crash the file ends in zeros, and
/// its last record may be torn (a hole of zeros anywhere in it: over a file that does not
/// grow, the disk may keep a later page of one write and lose an earlier one). LevelDB,
/// with `paranoid_checks`, would refuse such a log, where a plain append leaves a short file
/// that it accepts; so when LevelDB opens a log to replay it (holding the directory's lock),
/// the env first cuts a spare-sized log back to its last complete record, provided no record
/// begins after the damage (one writer, so only the last record can be torn; damage with
/// records after it is left for LevelDB to refuse).
///
/// LevelDB calls `NewWritableFile` and `NewSequentialFile` for logs from one thread at a
/// time (its writer, holding its mutex, or recovery at open); the filler thread shares only
/// the state under `m_`, and makes no spare before LevelDB's first log exists (it starts
/// when a log is a quarter full), so the first log's `fill()` runs alone.

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
#include <utility>

#include "../status.hpp"
#include "crc32c.hpp"
#include "fsync.hpp"

namespace craft::detail {

/// Spare log files are whole MiB (how `trim_prefilled_log` tells them from logs that
/// LevelDB's own Env wrote or that were closed cleanly).
inline constexpr std::uint64_t prefill_unit = 1u << 20;

/// The size of the spare log files for a memtable of `write_buffer_bytes` (LevelDB switches
/// logs when the memtable is full, so one spare holds a whole log).
[[nodiscard]] inline std::uint64_t prefill_bytes(std::size_t write_buffer_bytes) {
    return (write_buffer_bytes + 2 * prefill_unit - 1) / prefill_unit * prefill_unit;
}

/// Cuts the log file `path`, if a crash left it spare-sized, back to the end of its last
/// complete record, unless a record (whole, or a first fragment) begins after the first
/// damaged one: then the damage is not a torn tail and LevelDB is left to refuse it.
[[nodiscard]] inline status trim_prefilled_log(const std::filesystem::path& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size == 0 || size % prefill_unit != 0) return {};  // not a spare's size
    std::string data(size, '\0');
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return status::error("cannot open " + path.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < size) {
        const auto n = ::pread(fd, data.data() + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
    if (done != size) {
        ::close(fd);
        return status::error("cannot read " + path.string());
    }
    // LevelDB's log format: 32 KiB blocks of records, each a 7-byte header (masked CRC32C of
    // type and payload, 2-byte length, type: 1 whole, 2 first, 3 middle, 4 last fragment) and
    // its payload; a block's last bytes, too few for a header, are zeros. `record_at` gives
    // the type of an intact record at `pos` (and its length), or 0.
    constexpr std::uint64_t block = 32768, header = 7;
    auto record_at = [&](std::uint64_t pos, std::uint64_t& len) -> unsigned {
        const std::uint64_t left = std::min(block - pos % block, size - pos);
        if (left < header) return 0;
        const auto* h = reinterpret_cast<const unsigned char*>(data.data() + pos);
        len = std::uint64_t{h[4]} | std::uint64_t{h[5]} << 8;
        const unsigned type = h[6];
        if (type < 1 || type > 4 || header + len > left) return 0;
        const std::uint32_t masked = std::uint32_t{h[0]} | std::uint32_t{h[1]} << 8 |
                                     std::uint32_t{h[2]} << 16 | std::uint32_t{h[3]} << 24;
        const std::uint32_t rot = masked - 0xa282ead8u;  // LevelDB's crc32c::Unmask
        const auto bytes = std::as_bytes(std::span(data.data() + pos + 6, 1 + len));
        return crc32c(bytes) == ((rot >> 17) | (rot << 15)) ? type : 0;
    };
    std::uint64_t pos = 0, whole = 0, len = 0;  // `whole`: the end of the last complete record
    while (pos < size) {
        if (block - pos % block < header) {
            pos += block - pos % block;  // a block's trailer
            continue;
        }
        const unsigned type = record_at(pos, len);
        if (type == 0) break;
        pos += header + len;
        if (type == 1 || type == 4) whole = pos;
    }
    // Damage, or the torn tail? Damage if a record (whole, or a first fragment) with a good
    // checksum begins anywhere after it (at any byte: the damage may hide where records
    // start). Over the zeros of a torn tail, the type byte rules out each offset at once.
    bool later = false;
    for (std::uint64_t q = pos + 1; pos < size && !later && q + header <= size; ++q) {
        const auto t = static_cast<unsigned char>(data[q + 6]);
        later = (t == 1 || t == 2) && record_at(q, len) != 0;
    }
    const bool cut = pos < size && !later;
    const bool ok = !cut || (::ftruncate(fd, static_cast<off_t>(whole)) == 0 && ::fsync(fd) == 0);
    const int err = errno;
    ::close(fd);
    if (!ok)
        return status::error("cannot cut the torn tail of " + path.string() + ": " +
                             std::strerror(err));
    return {};
}

class leveldb_prefilled_env final : public leveldb::EnvWrapper {
public:
    /// For the LevelDB database in `dir` with a memtable of `write_buffer_bytes`; with
    /// `prefill` off, logs are LevelDB's own (torn tails of spares from before are still
    /// cut). Touches no file until LevelDB, holding the directory's lock, asks for one.
    leveldb_prefilled_env(const std::filesystem::path& dir, std::size_t write_buffer_bytes,
                          bool prefill)
        : EnvWrapper(leveldb::Env::Default()),
          dir_(dir),
          spare_((dir / "craft-spare-log").string()),
          bytes_(prefill_bytes(write_buffer_bytes)),
          start_after_(write_buffer_bytes / 4),
          prefill_(prefill) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(spare_, ec);
        ready_ = !ec && size == bytes_;  // only fill() makes it: zeros, synced, renamed
        if (prefill_) filler_ = std::thread([this] { fill_loop(); });
    }
    ~leveldb_prefilled_env() override {
        {
            std::lock_guard l(m_);
            stop_ = true;
        }
        cv_.notify_all();
        if (filler_.joinable()) filler_.join();
    }
    leveldb_prefilled_env(const leveldb_prefilled_env&) = delete;
    leveldb_prefilled_env& operator=(const leveldb_prefilled_env&) = delete;

    leveldb::Status NewSequentialFile(const std::string& f, leveldb::SequentialFile** r) override {
        if (f.ends_with(".log"))
            if (auto st = trim_prefilled_log(f); !st) return leveldb::Status::IOError(st.message());
        return target()->NewSequentialFile(f, r);
    }

    leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
        if (!f.ends_with(".log")) return target()->NewWritableFile(f, r);
        bool spare = false;
        {
            std::lock_guard l(m_);
            spare = std::exchange(ready_, false);
        }
        if (!prefill_) {
            if (spare) ::unlink(spare_.c_str());  // left from a run with prefill on
            return target()->NewWritableFile(f, r);
        }
        // The log LevelDB opens with is written over zeros too (a spare left by the last run,
        // or one made now: a memtable's size of zeros and a sync, tens of milliseconds once
        // per open), so the first memtable's writes are not appends. At later switches a
        // spare the filler has not finished yet is not waited for.
        if (std::exchange(first_log_, false) && !spare) spare = fill();
        int fd = -1;
        if (spare && ::rename(spare_.c_str(), f.c_str()) == 0)
            fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
        else
            fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return leveldb::Status::IOError(f, std::strerror(errno));
        // The new name must last before the first synced write does: LevelDB itself syncs
        // the directory only for its manifest.
        if (auto st = sync_directory(dir_); !st) {
            ::close(fd);
            return leveldb::Status::IOError(f, st.message());
        }
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
            if (auto st = write_out(); !st.ok()) return st;
            env_.written(off_);
            return leveldb::Status::OK();
        }
        leveldb::Status Sync() override {
            if (auto st = Flush(); !st.ok()) return st;
            return ::fdatasync(fd_) == 0 ? leveldb::Status::OK() : error();
        }
        leveldb::Status Close() override {
            // Not Flush(): the log being closed must not ask for the next spare (the new log
            // asks once it is a quarter full, so filling does not start at every switch).
            auto st = write_out();
            if (st.ok() && ::ftruncate(fd_, static_cast<off_t>(off_)) != 0) st = error();
            if (::close(fd_) != 0 && st.ok()) st = error();
            fd_ = -1;
            return st;
        }

    private:
        /// Writes out what `Append` buffered.
        leveldb::Status write_out() {
            std::size_t done = 0;
            while (done < buf_.size()) {
                const auto n = ::pwrite(fd_, buf_.data() + done, buf_.size() - done,
                                        static_cast<off_t>(off_ + done));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return error();
                if (n == 0) return leveldb::Status::IOError(name_, "wrote nothing");
                done += static_cast<std::size_t>(n);
            }
            off_ += done;
            buf_.clear();
            return leveldb::Status::OK();
        }
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
    bool prefill_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false, want_ = false, ready_ = false;
    bool first_log_ = true;  // LevelDB's writer's alone
    std::thread filler_;
};

}  // namespace craft::detail
