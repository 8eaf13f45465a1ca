#pragma once
// A state machine's whole state as one Cereal file in a snapshot: what both example state
// machines save and load.

#include <craft/snapshot_io.hpp>
#include <craft/status.hpp>

#include <cereal/archives/portable_binary.hpp>

#include <sstream>
#include <string>

namespace craft::examples {

/// Writes `value` (anything Cereal serializes) as the snapshot file `name`.
template <class T>
status save_file(snapshot_writer& w, const std::string& name, const T& value) {
    std::ostringstream os(std::ios::binary);
    {
        cereal::PortableBinaryOutputArchive ar(os);
        ar(value);
    }
    return w.add_file(name, os.str());
}

/// Reads the snapshot file `name` into `value`; on any problem `value` is untouched and the
/// status names the file and what is wrong.
template <class T>
status load_file(snapshot_reader& r, const std::string& name, T& value) {
    auto bytes = r.read_file(name);
    if (!bytes) return status::error("snapshot has no '" + name + "' file");
    try {
        std::istringstream is(*bytes, std::ios::binary);
        cereal::PortableBinaryInputArchive ar(is);
        T read;
        ar(read);
        value = std::move(read);
    } catch (const std::exception& e) {
        return status::error("snapshot file '" + name + "' is unreadable: " + e.what());
    }
    return {};
}

}  // namespace craft::examples
