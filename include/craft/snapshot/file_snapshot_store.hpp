#pragma once
/// @file
/// `file_snapshot_store`: the default `snapshot_store`. Each snapshot is a directory
/// `snap-<index, 20 digits>-<term>` holding the state machine's files, written in pieces, and
/// `.meta` (format version, index, term, configuration, and each file's name, size and
/// CRC32C, followed by a CRC32C of the meta itself; the leading dot keeps it apart from every
/// valid file name). A snapshot is written into a temporary directory `tmp-...`, synced, and
/// renamed into place, so a crash leaves either the whole snapshot or none. The newest `keep`
/// snapshots are kept. A snapshot whose checksums fail is skipped and reported, never handed
/// out. One process at a time may use a directory.

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat, mkdir
#include <unistd.h>    // write, pread, fsync, close, getpid

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../core/conf_codec.hpp"
#include "../core/types.hpp"
#include "../detail/crc32c.hpp"
#include "../detail/fsync.hpp"
#include "../snapshot_io.hpp"
#include "../status.hpp"

namespace craft {

/// Snapshots as directories of files (models `craft::snapshot_store`). Safe to use from
/// several threads; each sink and reader belongs to one thread at a time. Sinks and readers
/// may outlive the store.
class file_snapshot_store {
public:
    /// On-disk format version of `.meta`.
    static constexpr std::uint64_t format_version = 2;
    /// Name of the metadata file in each snapshot directory.
    static constexpr std::string_view meta_file = ".meta";

    /// @param dir where snapshots live (created by the first `begin`).
    /// @param keep how many of the newest snapshots to keep (at least 1).
    explicit file_snapshot_store(std::filesystem::path dir, std::size_t keep = 2)
        : st_(std::make_shared<state>(std::move(dir), std::max<std::size_t>(keep, 1))) {}

    /// Starts a new snapshot described by `m` in a temporary directory; null when that
    /// cannot be created (see `last_error`).
    std::unique_ptr<snapshot_sink> begin(const snapshot_meta& m) {
        if (auto s = ensure_dir(st_->dir); !s) {
            st_->record(std::move(s));
            return nullptr;
        }
        auto& live = live_tmp();
        const std::string name = "tmp-" + name_of(m) + "-" + std::to_string(::getpid()) + "-" +
                                 std::to_string(live.counter.fetch_add(1));
        live.add(name);
        const auto tmp = st_->dir / name;
        if (::mkdir(tmp.c_str(), 0755) != 0) {
            const int err = errno;
            live.remove(name);
            st_->record(fail("cannot create " + tmp.string() + ": " + errno_text(err)));
            return nullptr;
        }
        return std::make_unique<sink>(st_, m, tmp, name);
    }

    /// Metadata of the snapshots whose `.meta` passes its checksum, newest first (file
    /// contents are checked by `open`). Damaged ones are skipped and reported.
    [[nodiscard]] std::vector<snapshot_meta> list() const {
        std::lock_guard lock(st_->mu);
        std::vector<snapshot_meta> out;
        for (const auto& e : st_->scan()) {
            std::string why;
            if (auto p = st_->load_meta(e, why)) {
                out.push_back(std::move(p->meta));
            } else {
                st_->skip(e.path, why);
            }
        }
        std::sort(out.begin(), out.end(), [](const snapshot_meta& a, const snapshot_meta& b) {
            return std::pair(a.index, a.term) > std::pair(b.index, b.term);
        });
        return out;
    }

    /// A reader of the snapshot at `index` once every file's size and checksum hold; null
    /// when there is none or it is damaged (see `last_error` and `skipped`).
    std::unique_ptr<snapshot_reader> open(index_t index) {
        std::lock_guard lock(st_->mu);
        auto all = st_->scan();
        std::sort(all.begin(), all.end(), [](const entry& a, const entry& b) {
            return a.term > b.term;  // the highest term first, should there be several
        });
        bool found = false;
        for (const auto& e : all) {
            if (e.index != index) continue;
            found = true;
            std::string why;
            auto p = st_->load_meta(e, why);
            if (!p) {
                st_->skip(e.path, why);
                continue;
            }
            std::vector<int> fds;
            if (!verify(e.path, p->files, why, &fds)) {
                st_->skip(e.path, why);
                continue;
            }
            return std::make_unique<reader>(std::move(*p), std::move(fds));
        }
        if (!found)
            st_->error =
                fail("no snapshot at index " + std::to_string(index) + " in " + st_->dir.string());
        return nullptr;
    }

    /// The last failure (ok when there was none).
    [[nodiscard]] status last_error() const {
        std::lock_guard lock(st_->mu);
        return st_->error;
    }
    /// One line per damaged snapshot found so far, naming its directory and what failed.
    [[nodiscard]] std::vector<std::string> skipped() const {
        std::lock_guard lock(st_->mu);
        return st_->skipped;
    }
    /// The directory holding the snapshots.
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return st_->dir; }

private:
    /// A snapshot directory found by name (its contents not yet checked).
    struct entry {
        std::filesystem::path path;
        index_t index = 0;
        term_t term = 0;
    };

    /// What a `.meta` holds.
    struct parsed {
        snapshot_meta meta;
        std::vector<snapshot_file> files;
    };

    /// Shared by the store, its sinks and its readers.
    struct state {
        state(std::filesystem::path d, std::size_t k) : dir(std::move(d)), keep(k) {}

        const std::filesystem::path dir;
        const std::size_t keep;
        mutable std::mutex mu;  ///< Guards `skipped` and `error`; serialises commits.
        std::vector<std::string> skipped;
        status error;

        /// Remembers `s` as the last failure and returns it.
        status record(status s) {
            std::lock_guard lock(mu);
            error = s;
            return s;
        }
        /// Records a damaged snapshot (`mu` held).
        void skip(const std::filesystem::path& p, const std::string& why) {
            std::string line = p.string() + ": " + why;
            error = fail("skipped " + line);
            if (std::find(skipped.begin(), skipped.end(), line) == skipped.end())
                skipped.push_back(std::move(line));
        }

        /// Every snapshot directory, in no particular order (`mu` held).
        std::vector<entry> scan() {
            std::vector<entry> out;
            std::error_code ec;
            std::filesystem::directory_iterator it(dir, ec);
            if (ec) {
                if (ec != std::errc::no_such_file_or_directory)
                    error = fail("cannot list " + dir.string() + ": " + ec.message());
                return out;
            }
            for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
                if (ec) break;
                if (auto e = parse_name(it->path())) out.push_back(std::move(*e));
            }
            if (ec) error = fail("cannot list " + dir.string() + ": " + ec.message());
            return out;
        }

        /// Reads and checks the `.meta` of `e`; `newer` is set when a newer craft wrote it.
        std::optional<parsed> load_meta(const entry& e, std::string& why,
                                        bool* newer = nullptr) const {
            std::string bytes;
            if (!read_small(e.path / meta_file, bytes, why)) return std::nullopt;
            auto p = decode_meta(bytes, why, newer);
            if (p && (p->meta.index != e.index || p->meta.term != e.term)) {
                why = "meta says index " + std::to_string(p->meta.index) + " term " +
                      std::to_string(p->meta.term) + ", unlike the directory name";
                return std::nullopt;
            }
            return p;
        }
    };

    /// Temporary directories of this process's open sinks, which pruning leaves alone.
    struct live_registry {
        std::mutex mu;
        std::set<std::string, std::less<>> names;
        std::atomic<std::uint64_t> counter{0};

        void add(const std::string& n) {
            std::lock_guard lock(mu);
            names.insert(n);
        }
        void remove(const std::string& n) {
            std::lock_guard lock(mu);
            names.erase(n);
        }
        bool contains(std::string_view n) {
            std::lock_guard lock(mu);
            return names.find(n) != names.end();
        }
    };
    static live_registry& live_tmp() {
        static live_registry r;
        return r;
    }

    class sink final : public snapshot_sink {
    public:
        sink(std::shared_ptr<state> st, const snapshot_meta& m, std::filesystem::path tmp,
             std::string tmp_name)
            : st_(std::move(st)), meta_(m), tmp_(std::move(tmp)), tmp_name_(std::move(tmp_name)) {}
        sink(const sink&) = delete;
        sink& operator=(const sink&) = delete;
        ~sink() override {
            if (fd_ >= 0) ::close(fd_);
            if (!installed_) {
                std::error_code ec;
                std::filesystem::remove_all(tmp_, ec);
            }
            live_tmp().remove(tmp_name_);
        }

        status open_file(std::string_view name) override {
            if (auto s = usable(); !s) return s;
            if (!valid_snapshot_file_name(name))
                return st_->record(fail("bad snapshot file name '" + std::string(name) + "'"));
            for (const auto& f : files_)
                if (f.name == name)
                    return st_->record(
                        fail("snapshot file '" + std::string(name) + "' is written twice"));
            if (auto s = finish_file(); !s) return broken(std::move(s));
            const auto p = tmp_ / std::string(name);
            fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd_ < 0) return broken(fail("cannot create " + p.string() + ": " + errno_text()));
            files_.push_back({std::string(name), 0, 0});
            return {};
        }

        status write(std::span<const std::byte> bytes) override {
            if (auto s = usable(); !s) return s;
            if (fd_ < 0) return st_->record(fail("write before open_file in " + tmp_.string()));
            auto& f = files_.back();
            if (int err = write_all(fd_, bytes); err != 0)
                return broken(
                    fail("cannot write " + (tmp_ / f.name).string() + ": " + errno_text(err)));
            f.size += bytes.size();
            f.crc = detail::crc32c(bytes, f.crc);
            return {};
        }
        using snapshot_writer::write;

        status commit() override {
            if (auto s = usable(); !s) return s;
            done_ = true;  // whatever happens next, this sink is finished
            if (auto s = finish_file(); !s) return st_->record(std::move(s));
            const auto mp = tmp_ / meta_file;
            const int fd = ::open(mp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0)
                return st_->record(fail("cannot create " + mp.string() + ": " + errno_text()));
            const std::string m = encode_meta(meta_, files_);
            int err = write_all(fd, std::as_bytes(std::span<const char>(m.data(), m.size())));
            if (err == 0 && ::fsync(fd) != 0) err = errno;
            if (::close(fd) != 0 && err == 0) err = errno;
            if (err != 0)
                return st_->record(fail("cannot write " + mp.string() + ": " + errno_text(err)));
            if (auto s = detail::sync_directory(tmp_); !s) return st_->record(fail(s.message()));
            std::lock_guard lock(st_->mu);
            auto s = install();
            if (!s) st_->error = s;
            return s;
        }

    private:
        /// Ok while the sink accepts calls.
        status usable() const {
            if (!failed_.ok()) return failed_;
            if (done_) return fail("the snapshot in " + tmp_.string() + " is already committed");
            return {};
        }
        /// A write failed: the snapshot cannot be completed.
        status broken(status s) {
            failed_ = s;
            return st_->record(std::move(s));
        }
        /// Syncs and closes the current file.
        status finish_file() {
            if (fd_ < 0) return {};
            int err = ::fsync(fd_) == 0 ? 0 : errno;
            if (::close(fd_) != 0 && err == 0) err = errno;
            fd_ = -1;
            if (err != 0)
                return fail("cannot sync " + (tmp_ / files_.back().name).string() + ": " +
                            errno_text(err));
            return {};
        }

        /// Moves the synced temporary directory into place and prunes (`mu` held).
        status install() {
            const std::string name = name_of(meta_);
            const auto final_dir = st_->dir / name;
            bool same = false, damaged_same = false;
            for (const auto& e : st_->scan()) {
                if (e.index < meta_.index) continue;
                std::string why;
                bool newer = false;
                auto p = st_->load_meta(e, why, &newer);
                const bool ours = e.path.filename() == name;
                if (p && verify(e.path, p->files, why, nullptr)) {
                    if (ours) {
                        same = true;  // the same snapshot again
                    } else if (e.index > meta_.index) {
                        return fail("snapshot at " + std::to_string(meta_.index) + " (term " +
                                    std::to_string(meta_.term) +
                                    ") is older than the stored one at " + std::to_string(e.index) +
                                    " in " + st_->dir.string());
                    } else {
                        return fail("snapshot at " + std::to_string(meta_.index) + " (term " +
                                    std::to_string(meta_.term) +
                                    ") conflicts with the stored one of term " +
                                    std::to_string(e.term) + " in " + st_->dir.string());
                    }
                    continue;
                }
                st_->skip(e.path, why);
                if (ours && newer) return fail("cannot replace " + e.path.string() + ": " + why);
                if (ours) damaged_same = true;
            }
            std::error_code ec;
            if (same) {
                std::filesystem::remove_all(tmp_, ec);
            } else {
                if (damaged_same) {
                    // Moved aside first, so a crash leaves the damaged copy or the new one.
                    const auto aside =
                        st_->dir / ("tmp-damaged-" + name + "-" + std::to_string(::getpid()) + "-" +
                                    std::to_string(live_tmp().counter++));
                    std::filesystem::rename(final_dir, aside, ec);
                    if (ec)
                        return fail("cannot move damaged " + final_dir.string() +
                                    " aside: " + ec.message());
                }
                std::filesystem::rename(tmp_, final_dir, ec);
                if (ec)
                    return fail("cannot rename " + tmp_.string() + " to " + final_dir.string() +
                                ": " + ec.message());
                if (auto s = detail::sync_directory(st_->dir); !s) return fail(s.message());
            }
            installed_ = true;
            prune();
            return {};
        }

        /// Keeps this snapshot and the `keep - 1` newest older ones whose meta holds, plus any
        /// written by a newer craft; removes the rest below this one, and temporary
        /// directories no open sink of this process owns. Failures only reach `last_error`.
        void prune() {
            auto all = st_->scan();
            std::sort(all.begin(), all.end(), [](const entry& a, const entry& b) {
                return std::pair(a.index, a.term) > std::pair(b.index, b.term);
            });
            std::size_t kept = 1;
            std::error_code ec;
            for (const auto& e : all) {
                if (e.index >= meta_.index) continue;
                std::string why;
                bool newer = false;
                const bool good = st_->load_meta(e, why, &newer).has_value();
                if (newer) continue;
                if (good && kept < st_->keep) {
                    ++kept;
                    continue;
                }
                std::filesystem::remove_all(e.path, ec);
                if (ec) st_->error = fail("cannot remove " + e.path.string() + ": " + ec.message());
            }
            std::vector<std::filesystem::path> stale;
            for (std::filesystem::directory_iterator it(st_->dir, ec), end; !ec && it != end;
                 it.increment(ec)) {
                const auto n = it->path().filename().string();
                if (n.starts_with("tmp-") && !live_tmp().contains(n)) stale.push_back(it->path());
            }
            for (const auto& p : stale) {
                std::filesystem::remove_all(p, ec);
                if (ec) st_->error = fail("cannot remove " + p.string() + ": " + ec.message());
            }
        }

        std::shared_ptr<state> st_;
        snapshot_meta meta_;
        std::filesystem::path tmp_;
        std::string tmp_name_;
        std::vector<snapshot_file> files_;
        int fd_ = -1;             ///< The file being written, or -1.
        bool done_ = false;       ///< `commit` was called.
        bool installed_ = false;  ///< The temporary directory is gone (renamed or dropped).
        status failed_;           ///< Set when a write failed.
    };

    class reader final : public snapshot_reader {
    public:
        reader(parsed p, std::vector<int> fds) : p_(std::move(p)), fds_(std::move(fds)) {}
        reader(const reader&) = delete;
        reader& operator=(const reader&) = delete;
        ~reader() override {
            for (int fd : fds_) ::close(fd);
        }

        [[nodiscard]] const snapshot_meta& meta() const override { return p_.meta; }
        [[nodiscard]] const std::vector<snapshot_file>& files() const override { return p_.files; }
        status read(std::string_view name, std::uint64_t offset, std::size_t max,
                    std::string& out) override {
            for (std::size_t i = 0; i < p_.files.size(); ++i) {
                const auto& f = p_.files[i];
                if (f.name != name) continue;
                if (offset >= f.size) return {};
                const auto n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(max, f.size - offset));
                const std::size_t old = out.size();
                out.resize(old + n);
                std::size_t got = 0;
                while (got < n) {
                    const auto r = ::pread(fds_[i], out.data() + old + got, n - got,
                                           static_cast<off_t>(offset + got));
                    if (r < 0 && errno == EINTR) continue;
                    if (r <= 0) {
                        const int err = r < 0 ? errno : 0;
                        out.resize(old);
                        return fail("cannot read file " + f.name + " of snapshot " +
                                    std::to_string(p_.meta.index) + ": " +
                                    (err != 0 ? errno_text(err) : std::string("it got shorter")));
                    }
                    got += static_cast<std::size_t>(r);
                }
                return {};
            }
            return fail("snapshot " + std::to_string(p_.meta.index) + " has no file '" +
                        std::string(name) + "'");
        }

    private:
        parsed p_;
        std::vector<int> fds_;  ///< One per file, open since the checks (survives pruning).
    };

    static status fail(const std::string& what) {
        return status::error("file_snapshot_store: " + what);
    }
    static std::string errno_text(int err = errno) { return std::generic_category().message(err); }

    static std::string name_of(const snapshot_meta& m) {
        std::string idx = std::to_string(m.index);
        return "snap-" + std::string(20 - std::min<std::size_t>(20, idx.size()), '0') + idx + "-" +
               std::to_string(m.term);
    }
    /// The index and term of a directory named `snap-<20 digits>-<digits>`.
    static std::optional<entry> parse_name(const std::filesystem::path& p) {
        const std::string n = p.filename().string();
        if (!n.starts_with("snap-") || n.size() < 27 || n[25] != '-') return std::nullopt;
        entry e{p, 0, 0};
        auto num = [](std::string_view s, std::uint64_t& v) {
            if (s.empty() ||
                !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return false;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            return ec == std::errc() && end == s.data() + s.size();
        };
        const std::string_view v(n);
        if (!num(v.substr(5, 20), e.index) || !num(v.substr(26), e.term)) return std::nullopt;
        return e;
    }

    /// Writes all of `bytes` to `fd`; 0 or the errno.
    static int write_all(int fd, std::span<const std::byte> bytes) {
        while (!bytes.empty()) {
            const auto n = ::write(fd, bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno;
            }
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        }
        return 0;
    }

    /// Reads the whole (small) file `p` into `out`.
    static bool read_small(const std::filesystem::path& p, std::string& out, std::string& why) {
        const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            why = "cannot open " + std::string(meta_file) + ": " + errno_text();
            return false;
        }
        struct stat sb {};
        if (::fstat(fd, &sb) != 0 || sb.st_size > (std::int64_t{64} << 20)) {
            ::close(fd);
            why = std::string(meta_file) + " is unreadable or too large";
            return false;
        }
        out.resize(static_cast<std::size_t>(sb.st_size));
        std::size_t got = 0;
        while (got < out.size()) {
            const auto r = ::read(fd, out.data() + got, out.size() - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        ::close(fd);
        out.resize(got);
        return true;
    }

    static std::uint32_t crc(std::string_view s) {
        return detail::crc32c(std::as_bytes(std::span<const char>(s.data(), s.size())));
    }

    /// version | index | term | conf index | conf size | conf | file count |
    /// per file: name size | name | size | crc | meta crc (all integers u64 little-endian).
    /// The leading version and the trailing CRC of everything before it never move.
    static std::string encode_meta(const snapshot_meta& m, const std::vector<snapshot_file>& fs) {
        std::string out;
        core::detail::put_u64(out, format_version);
        core::detail::put_u64(out, m.index);
        core::detail::put_u64(out, m.term);
        core::detail::put_u64(out, m.conf.index);
        const auto conf = core::encode_configuration(m.conf);
        core::detail::put_u64(out, conf.size());
        out.append(conf.str());
        core::detail::put_u64(out, fs.size());
        for (const auto& f : fs) {
            core::detail::put_u64(out, f.name.size());
            out.append(f.name);
            core::detail::put_u64(out, f.size);
            core::detail::put_u64(out, f.crc);
        }
        core::detail::put_u64(out, crc(out));
        return out;
    }

    static std::optional<parsed> decode_meta(std::string_view body, std::string& why, bool* newer) {
        if (body.size() < 16) {
            why = std::string(meta_file) + " is truncated";
            return std::nullopt;
        }
        std::string_view tail = body.substr(body.size() - 8);
        body.remove_suffix(8);
        std::uint64_t want = 0, version = 0;
        core::detail::get_u64(tail, want);
        if (want != crc(body)) {
            why = std::string(meta_file) + " fails its checksum";
            return std::nullopt;
        }
        core::detail::get_u64(body, version);
        if (version != format_version) {
            if (version > format_version && newer) *newer = true;
            why = version > format_version
                      ? "written by a newer craft (format " + std::to_string(version) +
                            "; this one reads format " + std::to_string(format_version) + ")"
                      : "written in format " + std::to_string(version) +
                            ", which this craft no longer reads";
            return std::nullopt;
        }
        why = std::string(meta_file) + " is malformed";
        parsed p;
        std::uint64_t conf_size = 0, count = 0;
        if (!core::detail::get_u64(body, p.meta.index) || !core::detail::get_u64(body, p.meta.term))
            return std::nullopt;
        index_t conf_index = 0;
        if (!core::detail::get_u64(body, conf_index) || !core::detail::get_u64(body, conf_size) ||
            conf_size > body.size())
            return std::nullopt;
        auto conf = core::decode_configuration(shared_bytes(body.substr(0, conf_size)));
        if (!conf) return std::nullopt;
        body.remove_prefix(conf_size);
        p.meta.conf = std::move(*conf);
        p.meta.conf.index = conf_index;
        if (!core::detail::get_u64(body, count) || count > body.size() / 24) return std::nullopt;
        for (std::uint64_t i = 0; i < count; ++i) {
            snapshot_file f;
            std::uint64_t len = 0, c = 0;
            if (!core::detail::get_u64(body, len) || len > body.size()) return std::nullopt;
            f.name = std::string(body.substr(0, len));
            body.remove_prefix(len);
            if (!valid_snapshot_file_name(f.name) || !core::detail::get_u64(body, f.size) ||
                !core::detail::get_u64(body, c) || c > 0xffffffffu)
                return std::nullopt;
            for (const auto& g : p.files)
                if (g.name == f.name) return std::nullopt;
            f.crc = static_cast<std::uint32_t>(c);
            p.files.push_back(std::move(f));
        }
        if (!body.empty()) return std::nullopt;
        why.clear();
        return p;
    }

    /// Checks each file's size and CRC32C, reading 1 MiB at a time; keeps the files open in
    /// `fds` when given.
    static bool verify(const std::filesystem::path& dir, const std::vector<snapshot_file>& files,
                       std::string& why, std::vector<int>* fds) {
        constexpr std::size_t chunk = std::size_t{1} << 20;
        std::unique_ptr<std::byte[]> buf;
        std::vector<int> opened;
        auto bad = [&](int fd, std::string reason) {
            if (fd >= 0) ::close(fd);
            for (int o : opened) ::close(o);
            why = std::move(reason);
            return false;
        };
        for (const auto& f : files) {
            const auto p = dir / f.name;
            const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) return bad(fd, "cannot open file " + f.name + ": " + errno_text());
            struct stat sb {};
            if (::fstat(fd, &sb) != 0)
                return bad(fd, "cannot stat file " + f.name + ": " + errno_text());
            if (static_cast<std::uint64_t>(sb.st_size) != f.size)
                return bad(fd, "file " + f.name + " has " + std::to_string(sb.st_size) +
                                   " bytes, the meta says " + std::to_string(f.size));
            if (!buf) buf = std::make_unique_for_overwrite<std::byte[]>(chunk);
            std::uint64_t size = 0;
            std::uint32_t c = 0;
            for (;;) {
                const auto r = ::read(fd, buf.get(), chunk);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) return bad(fd, "cannot read file " + f.name + ": " + errno_text());
                if (r == 0) break;
                c = detail::crc32c({buf.get(), static_cast<std::size_t>(r)}, c);
                size += static_cast<std::uint64_t>(r);
            }
            if (size != f.size) return bad(fd, "file " + f.name + " changed while being checked");
            if (c != f.crc) return bad(fd, "file " + f.name + " fails its checksum");
            opened.push_back(fd);
        }
        if (fds) {
            *fds = std::move(opened);
        } else {
            for (int fd : opened) ::close(fd);
        }
        return true;
    }

    /// Creates `dir` when missing and syncs each new directory's parent.
    static status ensure_dir(const std::filesystem::path& dir) {
        std::error_code ec;
        if (std::filesystem::is_directory(dir, ec)) return {};
        std::vector<std::filesystem::path> created;
        auto p = std::filesystem::absolute(dir, ec);
        while (!ec && !p.empty() && !std::filesystem::exists(p, ec) && p != p.parent_path()) {
            created.push_back(p);
            p = p.parent_path();
        }
        std::filesystem::create_directories(dir, ec);
        if (ec) return fail("cannot create " + dir.string() + ": " + ec.message());
        for (const auto& c : created)
            if (auto s = detail::sync_directory(c.parent_path()); !s) return fail(s.message());
        return {};
    }

    std::shared_ptr<state> st_;
};

static_assert(snapshot_store<file_snapshot_store>);

}  // namespace craft
