// A UTF-8 document handed to Xerces as UTF-16 (see detail.hpp, utf8_document_as_utf16).
#include "xml/detail.hpp"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace broker::xml::detail {

namespace {

constexpr bool xml_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

constexpr char ascii_upper(char c) noexcept {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

/// The XML declaration at the start of 'p' names no encoding or UTF-8. False for anything else,
/// including a declaration that is not plain name = quoted value pairs: Xerces then decides.
bool declaration_says_utf8(std::string_view p) {
    constexpr std::string_view open = "<?xml";
    if (p.substr(0, open.size()) != open)
        return true;  // no declaration: UTF-8 (the first byte is '<')
    // Xerces reads everything up to the first '>' byte by byte and refuses a byte above 0x7F there
    // ("unable to decode first line"), for a declaration and for "<?xml-stylesheet" alike.
    for (std::size_t k = 0; k < p.size() && p[k] != '>'; ++k)
        if (static_cast<unsigned char>(p[k]) & 0x80)
            return false;
    if (p.size() <= open.size() || !xml_space(p[open.size()]))
        return p.size() > open.size() && p[open.size()] != '?';  // "<?xml-stylesheet ...": not the declaration
    // version, encoding, standalone, each once at most; the encoding UTF-8 in any case.
    const auto attrs = xml_declaration(p);
    if (!attrs)
        return false;
    bool encoding_seen = false;
    for (const auto& [name, value] : *attrs) {
        if (name != "version" && name != "encoding" && name != "standalone")
            return false;
        if (name != "encoding")
            continue;
        if (encoding_seen)
            return false;
        encoding_seen = true;
        constexpr std::string_view utf8 = "UTF-8";
        if (value.size() != utf8.size())
            return false;
        for (std::size_t k = 0; k < value.size(); ++k)
            if (ascii_upper(value[k]) != utf8[k])
                return false;
    }
    return true;
}

} // namespace

bool utf8_document_as_utf16(std::string_view doc, utf16_buffer& out) {
    std::string_view p = doc;
    if (p.size() >= 3 && static_cast<unsigned char>(p[0]) == 0xEF && static_cast<unsigned char>(p[1]) == 0xBB &&
        static_cast<unsigned char>(p[2]) == 0xBF)
        p.remove_prefix(3);  // UTF-8's byte order mark, which Xerces skips too
    if (p.empty() || p[0] != '<')
        return false;  // Xerces guesses the encoding from these bytes (UTF-16, UCS-4, EBCDIC)
    for (std::size_t k = 1; k < 4 && k < p.size(); ++k)
        if (p[k] == 0)
            return false;
    if (!declaration_says_utf8(p))
        return false;

    out.reserve(p.size());  // UTF-16 never needs more code units than UTF-8 has bytes
    const auto* s = reinterpret_cast<const unsigned char*>(p.data());
    const std::size_t n = p.size();
    char16_t* o = out.data();
    std::size_t i = 0;
    while (i < n) {
        // ASCII (most of a message: markup, Base64) 16 or 8 bytes at a time.
#if defined(__SSE2__)
        if (i + 16 <= n) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
            if (_mm_movemask_epi8(b) == 0) {
                const __m128i zero = _mm_setzero_si128();
                _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi8(b, zero));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 8), _mm_unpackhi_epi8(b, zero));
                o += 16;
                i += 16;
                continue;
            }
        }
#endif
        if (i + 8 <= n) {
            std::uint64_t w;
            std::memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                for (int k = 0; k < 8; ++k)
                    o[k] = s[i + k];
                o += 8;
                i += 8;
                continue;
            }
        }
        const unsigned c = s[i];
        if (c < 0x80) {
            *o++ = static_cast<char16_t>(c);
            ++i;
            continue;
        }
        // Well-formed sequences only (Unicode, table 3-7); anything else goes to Xerces as bytes.
        auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
            return i + k < n && s[i + k] >= lo && s[i + k] <= hi;
        };
        if (c >= 0xC2 && c <= 0xDF) {
            if (!cont(1))
                return false;
            *o++ = static_cast<char16_t>(((c & 0x1F) << 6) | (s[i + 1] & 0x3F));
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
            const unsigned hi = c == 0xED ? 0x9F : 0xBF;
            if (!cont(1, lo, hi) || !cont(2))
                return false;
            *o++ = static_cast<char16_t>(((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F));
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
            const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
            if (!cont(1, lo, hi) || !cont(2) || !cont(3))
                return false;
            const std::uint32_t cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
                                     (s[i + 3] & 0x3F);
            *o++ = static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10));
            *o++ = static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF));
            i += 4;
        } else {
            return false;
        }
    }
    out.set_size(static_cast<std::size_t>(o - out.data()));
    return true;
}

} // namespace broker::xml::detail
