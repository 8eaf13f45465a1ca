#pragma once
/// @file
/// CRC32C (Castagnoli), the checksum of stored entries: the SSE4.2 instruction where the CPU
/// has it (checked at run time), a table otherwise. Standard library only.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>  // unaligned loads
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

/// Portable CRC32C over `bytes`, continuing from the raw (uninverted) register `c`.
[[nodiscard]] inline std::uint32_t crc32c_portable(std::span<const std::byte> bytes,
                                                   std::uint32_t c) noexcept {
    for (std::byte b : bytes)
        c = crc32c_table[(c ^ static_cast<std::uint8_t>(b)) & 0xff] ^ (c >> 8);
    return c;
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
/// CRC32C with the SSE4.2 crc32 instruction, eight bytes at a time.
[[gnu::target("sse4.2")]] inline std::uint32_t crc32c_sse42(std::span<const std::byte> bytes,
                                                            std::uint32_t c) noexcept {
    const std::byte* p = bytes.data();
    std::size_t n = bytes.size();
    std::uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        std::uint64_t v = 0;
        std::memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = static_cast<std::uint32_t>(c64);
    for (; n > 0; --n, ++p) c = __builtin_ia32_crc32qi(c, static_cast<unsigned char>(*p));
    return c;
}
#endif

/// Extends `crc` (0 to start) over `bytes`.
[[nodiscard]] inline std::uint32_t crc32c(std::span<const std::byte> bytes,
                                          std::uint32_t crc = 0) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static const bool hardware = __builtin_cpu_supports("sse4.2");
    if (hardware) return ~crc32c_sse42(bytes, ~crc);
#endif
    return ~crc32c_portable(bytes, ~crc);
}

}  // namespace craft::detail
