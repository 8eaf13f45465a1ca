#pragma once
/// @file
/// CRC32C (Castagnoli), the checksum of stored entries. Table-driven, standard library only.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace craft::detail {

/// CRC32C lookup table, built at compile time.
inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        t[i] = c;
    }
    return t;
}();

/// Extends `crc` (0 to start) over `bytes`.
[[nodiscard]] inline std::uint32_t crc32c(std::span<const std::byte> bytes,
                                          std::uint32_t crc = 0) noexcept {
    crc = ~crc;
    for (std::byte b : bytes)
        crc = crc32c_table[(crc ^ static_cast<std::uint8_t>(b)) & 0xff] ^ (crc >> 8);
    return ~crc;
}

}  // namespace craft::detail
