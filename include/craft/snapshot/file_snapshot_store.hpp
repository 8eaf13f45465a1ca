#pragma once
/// @file
/// `file_snapshot_store`: the default `snapshot_store`. Each snapshot is a directory
/// `snap-<index>-<term>` holding `data` (the state machine's bytes) and `meta` (index, term,
/// configuration, data size and CRC32C, and a CRC32C of the meta itself). It is written under
/// a temporary name, synced, and renamed, so a crash leaves either the whole snapshot or
/// none. The newest `keep` snapshots are kept. A snapshot whose checksums fail is skipped and
/// reported, never loaded.

#include <fcntl.h>   // open
#include <unistd.h>  // fsync, close, getpid

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

#include "../concepts.hpp"
#include "../core/conf_codec.hpp"
#include "../core/types.hpp"
#include "../detail/crc32c.hpp"
#include "../detail/fsync.hpp"

namespace craft {

/// Snapshots as directories of files (models `craft::snapshot_store`).
class file_snapshot_store {
public:
    /// On-disk format version of `meta`.
    static constexpr std::uint64_t format_version = 1;

    /// @param dir where snapshots live (created on the first save).
    /// @param keep how many of the newest snapshots to keep (at least 1).
    explicit file_snapshot_store(std::filesystem::path dir, std::size_t keep = 2)
        : dir_(std::move(dir)), keep_(std::max<std::size_t>(keep, 1)) {}

    /// Writes `s` durably: temporary directory, fsync of each file and of the directories,
    /// then an atomic rename. Refuses a snapshot older than the newest one stored.
    status save(const snapshot& s) {
        std::error_code ec;
        const bool created = std::filesystem::create_directories(dir_, ec);
        if (ec) return fail("cannot create " + dir_.string() + ": " + ec.message());
        if (created) {
            if (auto st = detail::sync_directory(std::filesystem::absolute(dir_).parent_path());
                !st)
                return fail(st.message());
        }
        // Only a snapshot that loads counts: a damaged newer one must not block saving.
        if (auto newest = latest();
            newest && (newest->meta.index > s.meta.index ||
                       (newest->meta.index == s.meta.index && newest->meta.term != s.meta.term)))
            return fail("snapshot at " + std::to_string(s.meta.index) + " (term " +
                        std::to_string(s.meta.term) + ") is older than the stored one at " +
                        std::to_string(newest->meta.index));
        const auto final_dir = dir_ / name_of(s.meta);
        if (std::filesystem::exists(final_dir, ec)) {
            std::string why;
            if (load(final_dir, why)) return {};         // the same snapshot again
            std::filesystem::remove_all(final_dir, ec);  // damaged: write it anew
            if (ec)
                return fail("cannot remove damaged " + final_dir.string() + ": " + ec.message());
        }
        const auto tmp = dir_ / ("tmp-" + name_of(s.meta) + "-" + std::to_string(::getpid()));
        std::filesystem::remove_all(tmp, ec);
        std::filesystem::create_directory(tmp, ec);
        if (ec) return fail("cannot create " + tmp.string() + ": " + ec.message());
        if (auto st = write_file(tmp / "data", s.data.str()); !st) return st;
        if (auto st = write_file(tmp / "meta", encode_meta(s)); !st) return st;
        if (auto st = detail::sync_directory(tmp); !st) return fail(st.message());
        std::filesystem::rename(tmp, final_dir, ec);
        if (ec) return fail("cannot rename " + tmp.string() + ": " + ec.message());
        if (auto st = detail::sync_directory(dir_); !st) return fail(st.message());
        prune();
        return {};
    }

    /// The newest snapshot whose checksums hold; damaged ones are skipped (see `skipped`).
    [[nodiscard]] std::optional<snapshot> latest() const {
        auto all = list();
        for (auto it = all.rbegin(); it != all.rend(); ++it) {
            if (cached_ && cached_path_ == it->second) return cached_;
            std::string why;
            if (auto s = load(it->second, why)) {
                cached_ = s;
                cached_path_ = it->second;
                return s;
            }
            note_skipped(it->second.filename().string() + ": " + why);
        }
        return std::nullopt;
    }

    /// One line per damaged snapshot found by `latest`, naming it and what failed.
    [[nodiscard]] const std::vector<std::string>& skipped() const noexcept { return skipped_; }
    /// The directory holding the snapshots.
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

private:
    static status fail(const std::string& what) {
        return status::error("file_snapshot_store: " + what);
    }

    static std::string name_of(const snapshot_meta& m) {
        std::string idx = std::to_string(m.index);
        return "snap-" + std::string(20 - std::min<std::size_t>(20, idx.size()), '0') + idx + "-" +
               std::to_string(m.term);
    }

    /// Stored snapshot directories by (index, term), oldest first.
    [[nodiscard]] std::vector<std::pair<index_t, std::filesystem::path>> list() const {
        std::vector<std::tuple<index_t, term_t, std::filesystem::path>> found;
        std::error_code ec;
        for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end;
             it.increment(ec)) {
            const auto name = it->path().filename().string();
            if (name.rfind("snap-", 0) != 0 || name.size() < 27 || name[25] != '-') continue;
            try {
                found.emplace_back(std::stoull(name.substr(5, 20)), std::stoull(name.substr(26)),
                                   it->path());
            } catch (const std::exception&) {
                continue;  // not ours
            }
        }
        std::sort(found.begin(), found.end());
        std::vector<std::pair<index_t, std::filesystem::path>> out;
        for (auto& [index, term, path] : found) out.emplace_back(index, std::move(path));
        return out;
    }

    /// Keeps the newest `keep_` snapshots, and always the newest one that loads.
    void prune() {
        auto all = list();
        const auto newest = latest();
        std::error_code ec;
        for (std::size_t i = 0; i + keep_ < all.size(); ++i) {
            if (newest && all[i].second == cached_path_) continue;
            std::filesystem::remove_all(all[i].second, ec);
        }
        // Temporary directories left by a crash in the middle of a save.
        std::vector<std::filesystem::path> tmp;
        for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end;
             it.increment(ec))
            if (it->path().filename().string().rfind("tmp-", 0) == 0) tmp.push_back(it->path());
        for (const auto& p : tmp) std::filesystem::remove_all(p, ec);
    }

    static status write_file(const std::filesystem::path& p, std::string_view bytes) {
        const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("cannot create " + p.string() + ": " +
                        std::generic_category().message(errno));
        std::size_t done = 0;
        while (done < bytes.size()) {
            const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                const int err = errno;
                ::close(fd);
                return fail("cannot write " + p.string() + ": " +
                            std::generic_category().message(err));
            }
            done += static_cast<std::size_t>(n);
        }
        const bool synced = ::fsync(fd) == 0;
        const int err = errno;
        ::close(fd);
        if (!synced)
            return fail("cannot sync " + p.string() + ": " + std::generic_category().message(err));
        return {};
    }

    static std::uint32_t crc(std::string_view s) {
        return detail::crc32c(std::as_bytes(std::span<const char>(s.data(), s.size())));
    }
    /// version | index | term | conf index | data size | data crc | conf bytes | meta crc
    static std::string encode_meta(const snapshot& s) {
        std::string m;
        core::detail::put_u64(m, format_version);
        core::detail::put_u64(m, s.meta.index);
        core::detail::put_u64(m, s.meta.term);
        core::detail::put_u64(m, s.meta.conf.index);
        core::detail::put_u64(m, s.data.size());
        core::detail::put_u64(m, crc(s.data.str()));
        m.append(core::encode_configuration(s.meta.conf).str());
        core::detail::put_u64(m, crc(m));
        return m;
    }

    static std::optional<std::string> read_file(const std::filesystem::path& p) {
        std::ifstream in(p, std::ios::binary);
        if (!in) return std::nullopt;
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    static std::optional<snapshot> load(const std::filesystem::path& p, std::string& why) {
        auto meta = read_file(p / "meta");
        if (!meta || meta->size() < 8 * 7) {
            why = "meta is missing or truncated";
            return std::nullopt;
        }
        std::string_view body(*meta);
        std::string_view tail = body.substr(body.size() - 8);
        body.remove_suffix(8);
        std::uint64_t meta_crc = 0;
        if (!core::detail::get_u64(tail, meta_crc) || meta_crc != crc(body)) {
            why = "meta fails its checksum";
            return std::nullopt;
        }
        std::uint64_t version = 0, size = 0, data_crc = 0;
        snapshot s;
        core::detail::get_u64(body, version);
        if (version > format_version) {
            why = "written by a newer craft (format " + std::to_string(version) + ")";
            return std::nullopt;
        }
        core::detail::get_u64(body, s.meta.index);
        core::detail::get_u64(body, s.meta.term);
        index_t conf_index = 0;
        core::detail::get_u64(body, conf_index);
        core::detail::get_u64(body, size);
        core::detail::get_u64(body, data_crc);
        auto conf = core::decode_configuration(shared_bytes(body));
        if (!conf) {
            why = "meta holds an unreadable configuration";
            return std::nullopt;
        }
        s.meta.conf = *conf;
        s.meta.conf.index = conf_index;
        auto data = read_file(p / "data");
        if (!data || data->size() != size) {
            why = "data is missing or has the wrong size";
            return std::nullopt;
        }
        if (crc(*data) != data_crc) {
            why = "data fails its checksum";
            return std::nullopt;
        }
        s.data = shared_bytes(*data);
        return s;
    }

    void note_skipped(std::string line) const {
        if (std::find(skipped_.begin(), skipped_.end(), line) == skipped_.end())
            skipped_.push_back(std::move(line));
    }

    std::filesystem::path dir_;
    std::size_t keep_;
    mutable std::optional<snapshot> cached_;
    mutable std::filesystem::path cached_path_;
    mutable std::vector<std::string> skipped_;
};

static_assert(snapshot_store<file_snapshot_store>);

}  // namespace craft
