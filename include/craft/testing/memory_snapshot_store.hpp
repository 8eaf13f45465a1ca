#pragma once
/// @file
/// `memory_snapshot_store`: a `snapshot_store` in memory, for tests and simulations. It can
/// corrupt a stored snapshot on purpose (a simulated bad disk), which its checksums then
/// catch.

#include <algorithm>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>  // list, open and commit from several threads
#include <string>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../core/types.hpp"
#include "../detail/crc32c.hpp"

namespace craft::testing {

/// Keeps the newest `keep` snapshots in memory (models `craft::snapshot_store`).
class memory_snapshot_store {
    struct stored {
        snapshot_meta meta;
        std::vector<snapshot_file> files;
        std::map<std::string, std::string, std::less<>> contents;
    };

public:
    explicit memory_snapshot_store(std::size_t keep = 2) : keep_(keep == 0 ? 1 : keep) {}

    std::unique_ptr<snapshot_sink> begin(const snapshot_meta& m) {
        return std::make_unique<sink>(*this, m);
    }
    [[nodiscard]] std::vector<snapshot_meta> list() const {
        std::lock_guard lock(mutex_);
        std::vector<snapshot_meta> out;
        for (auto it = snaps_.rbegin(); it != snaps_.rend(); ++it) out.push_back((*it)->meta);
        return out;
    }
    std::unique_ptr<snapshot_reader> open(index_t index) {
        std::lock_guard lock(mutex_);
        for (const auto& s : snaps_) {
            if (s->meta.index != index) continue;
            for (const auto& f : s->files) {
                const auto& c = s->contents.at(f.name);
                if (c.size() != f.size || crc(c) != f.crc) {
                    error_ =
                        status::error("memory_snapshot_store: snapshot " + std::to_string(index) +
                                      " file " + f.name + " fails its checksum");
                    return nullptr;
                }
            }
            return std::make_unique<reader>(s);
        }
        return nullptr;
    }
    [[nodiscard]] status last_error() const {
        std::lock_guard lock(mutex_);
        return error_;
    }

    /// Number of snapshots kept.
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return snaps_.size();
    }
    /// Flips one byte of the first non-empty file of the snapshot at `index` (a bad disk);
    /// returns false when there is no such snapshot.
    bool corrupt(index_t index) {
        std::lock_guard lock(mutex_);
        for (auto& s : snaps_) {
            if (s->meta.index != index) continue;
            for (auto& [name, bytes] : s->contents) {
                if (bytes.empty()) continue;
                bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x5a);
                return true;
            }
        }
        return false;
    }

private:
    static std::uint32_t crc(std::string_view s) {
        return detail::crc32c(std::as_bytes(std::span<const char>(s.data(), s.size())));
    }

    class sink final : public snapshot_sink {
    public:
        sink(memory_snapshot_store& store, const snapshot_meta& m)
            : store_(store), snap_(std::make_shared<stored>()) {
            snap_->meta = m;
        }
        status open_file(std::string_view name) override {
            if (!valid_snapshot_file_name(name) || snap_->contents.count(name))
                return status::error("memory_snapshot_store: bad or repeated file name '" +
                                     std::string(name) + "'");
            snap_->contents.emplace(std::string(name), std::string());
            snap_->files.push_back({std::string(name), 0, 0});
            return {};
        }
        status write(std::span<const std::byte> bytes) override {
            if (snap_->files.empty())
                return status::error("memory_snapshot_store: write before open_file");
            snap_->contents.find(snap_->files.back().name)
                ->second.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            return {};
        }
        using snapshot_writer::write;
        status commit() override {
            if (committed_) return status::error("memory_snapshot_store: committed twice");
            for (auto& f : snap_->files) {
                const auto& c = snap_->contents.at(f.name);
                f.size = c.size();
                f.crc = crc(c);
            }
            std::lock_guard lock(store_.mutex_);
            auto& all = store_.snaps_;
            if (!all.empty() && all.back()->meta.index > snap_->meta.index)
                return status::error("memory_snapshot_store: snapshot at " +
                                     std::to_string(snap_->meta.index) +
                                     " is older than the newest one");
            std::erase_if(all, [&](const auto& s) { return s->meta.index == snap_->meta.index; });
            all.push_back(snap_);
            while (all.size() > store_.keep_) all.pop_front();
            committed_ = true;
            return {};
        }

    private:
        memory_snapshot_store& store_;
        std::shared_ptr<stored> snap_;
        bool committed_ = false;
    };

    class reader final : public snapshot_reader {
    public:
        explicit reader(std::shared_ptr<const stored> s) : snap_(std::move(s)) {}
        [[nodiscard]] const snapshot_meta& meta() const override { return snap_->meta; }
        [[nodiscard]] const std::vector<snapshot_file>& files() const override {
            return snap_->files;
        }
        status read(std::string_view name, std::uint64_t offset, std::size_t max,
                    std::string& out) override {
            auto it = snap_->contents.find(name);
            if (it == snap_->contents.end())
                return status::error("memory_snapshot_store: no file '" + std::string(name) + "'");
            if (offset < it->second.size()) out.append(it->second, offset, max);
            return {};
        }

    private:
        std::shared_ptr<const stored> snap_;  // survives pruning while being read
    };

    std::size_t keep_;
    mutable std::mutex mutex_;  // guards snaps_ and error_
    std::deque<std::shared_ptr<stored>> snaps_;
    status error_;
};

static_assert(snapshot_store<memory_snapshot_store>);

}  // namespace craft::testing
