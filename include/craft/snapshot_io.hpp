#pragma once
/// @file
/// How a state machine writes and reads a snapshot: as one or more named files, each written
/// and read in pieces, so a large state never has to sit in memory twice. Snapshot stores
/// implement these interfaces; state machines only see `snapshot_writer` and
/// `snapshot_reader`.

#include <cstddef>      // std::byte
#include <cstdint>      // sizes and checksums
#include <memory>       // pending snapshots and readers are owned by the caller
#include <optional>     // whole-file reads
#include <span>         // byte views
#include <string>       // file names
#include <string_view>  // text convenience
#include <vector>       // file lists

#include "core/types.hpp"
#include "status.hpp"

namespace craft {

/// Where a state machine saves a snapshot: a sequence of named files, each appended to in
/// pieces. Names are 1 to 64 characters from `[A-Za-z0-9._-]`, not starting with a dot.
class snapshot_writer {
public:
    virtual ~snapshot_writer() = default;
    /// Starts the file `name` (ending the previous one). A name may be used once.
    virtual status open_file(std::string_view name) = 0;
    /// Appends `bytes` to the current file.
    virtual status write(std::span<const std::byte> bytes) = 0;

    /// Appends the characters of `text` to the current file.
    status write(std::string_view text) {
        return write(std::as_bytes(std::span<const char>(text.data(), text.size())));
    }
    /// Writes the whole file `name` at once.
    status add_file(std::string_view name, std::string_view contents) {
        if (auto st = open_file(name); !st) return st;
        return write(contents);
    }
};

/// A snapshot being written into a store. Destroying it without `commit()` leaves no trace.
class snapshot_sink : public snapshot_writer {
public:
    /// Makes the snapshot durable and visible at once (all or nothing, also across a crash).
    virtual status commit() = 0;
};

/// One file of a stored snapshot.
struct snapshot_file {
    std::string name;
    std::uint64_t size = 0;
    std::uint32_t crc = 0;  ///< CRC32C of the contents.

    friend bool operator==(const snapshot_file&, const snapshot_file&) = default;
};

/// Where a state machine loads a snapshot from. A reader is only handed out for a snapshot
/// whose files all passed their checksums.
class snapshot_reader {
public:
    virtual ~snapshot_reader() = default;
    /// The last entry the snapshot covers and the membership at that point.
    [[nodiscard]] virtual const snapshot_meta& meta() const = 0;
    /// The files, in the order they were written.
    [[nodiscard]] virtual const std::vector<snapshot_file>& files() const = 0;
    /// Appends to `out` up to `max` bytes of file `name` from `offset` (fewer only at its end).
    virtual status read(std::string_view name, std::uint64_t offset, std::size_t max,
                        std::string& out) = 0;

    /// The whole file `name`, or `std::nullopt` when it is missing or cannot be read.
    std::optional<std::string> read_file(std::string_view name) {
        std::string out;
        for (const auto& f : files()) {
            if (f.name != name) continue;
            out.reserve(f.size);
            if (!read(name, 0, f.size, out) || out.size() != f.size) return std::nullopt;
            return out;
        }
        return std::nullopt;
    }
};

/// True when `name` is a valid snapshot file name.
[[nodiscard]] inline bool valid_snapshot_file_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 64 || name.front() == '.') return false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

}  // namespace craft
