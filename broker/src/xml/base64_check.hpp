// The lexical check of xs:base64Binary (XML Schema 1.0, after whiteSpace="collapse"), fed the text
// of an element as the parser hands it over, in pieces. The validator runs it instead of Xerces'
// own datatype check on Base64Container, the element that carries attachments: Xerces collapses
// the white space into a copy and decodes the whole value just to learn it is valid, about 80
// instructions per character (issue 3's profile), where this is a table look-up per character.
// tests/unit/xml/base64_test.cpp checks it gives Xerces' verdict on every kind of value.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace broker::xml::detail {

/// Per ASCII character: its Base64 value (0-63), or one of these.
inline constexpr std::uint8_t base64_space = 64, base64_pad = 65, base64_bad = 66;

constexpr std::array<std::uint8_t, 128> make_base64_table() {
    std::array<std::uint8_t, 128> t{};
    for (auto& v : t)
        v = base64_bad;
    for (int c = 'A'; c <= 'Z'; ++c)
        t[c] = static_cast<std::uint8_t>(c - 'A');
    for (int c = 'a'; c <= 'z'; ++c)
        t[c] = static_cast<std::uint8_t>(c - 'a' + 26);
    for (int c = '0'; c <= '9'; ++c)
        t[c] = static_cast<std::uint8_t>(c - '0' + 52);
    t['+'] = 62;
    t['/'] = 63;
    t[' '] = t['\t'] = t['\n'] = t['\r'] = base64_space;
    t['='] = base64_pad;
    return t;
}
inline constexpr std::array<std::uint8_t, 128> base64_table = make_base64_table();

class base64_check {
public:
    void reset() { *this = base64_check(); }

    /// The next piece of the element's text.
    void feed(const char16_t* s, std::size_t n) {
        for (std::size_t j = 0; j < n && head_.size() < head_chars; ++j)
            if (s[j] < 128 && base64_table[s[j]] < 64)
                head_ += s[j];
        // The run of alphabet characters that is nearly all of an attachment, in locals (members
        // of type uint8_t could alias the text for the compiler).
        std::uint64_t digits = 0;
        std::uint8_t last = last_;
        std::size_t i = 0;
        while (i < n) {
            if (pads_ == 0) {
                for (; i < n; ++i) {
                    const char16_t c = s[i];
                    const std::uint8_t k = c < 128 ? base64_table[c] : base64_bad;
                    if (k >= 64)
                        break;
                    last = k;
                    ++digits;
                }
                if (i == n)
                    break;
            }
            const char16_t c = s[i++];
            const std::uint8_t k = c < 128 ? base64_table[c] : base64_bad;
            if (k < 64) {
                if (!error_)
                    fail(c, "a Base64 character after the '=' padding", position_ + digits);
                last = k;
                ++digits;
                continue;
            }
            if (k == base64_space)
                continue;
            if (k == base64_pad) {
                if (pads_ == 0)
                    before_pad_ = last;
                if (++pads_ > 2 && !error_)
                    fail(c, "more than two '=' at the end", position_ + digits);
            } else if (!error_) {
                fail(c, "a character that is not Base64", position_ + digits);
            }
            ++position_;
        }
        digits_ += digits;
        position_ += digits;
        last_ = last;
    }

    /// Base64 alphabet characters so far, and the first of them (up to head_chars).
    std::uint64_t digits() const { return digits_; }
    std::u16string_view head() const { return head_; }
    static constexpr std::size_t head_chars = 24;

    /// Whether the whole text is a valid xs:base64Binary; 'why' says what is wrong when not.
    bool valid(std::string& why) const {
        if (error_) {
            why = why_;
            return false;
        }
        const std::uint64_t total = digits_ + pads_;
        if (total % 4 != 0) {
            why = std::to_string(total) + " Base64 characters, not a multiple of four";
            return false;
        }
        // The bits the padding leaves over must be zero: "xx==" ends in a character of "AQgw",
        // "xxx=" in one of "AEIMQUYcgkosw048".
        if ((pads_ == 2 && (before_pad_ & 0x0f) != 0) || (pads_ == 1 && (before_pad_ & 0x03) != 0)) {
            why = "the character before the '=' padding leaves bits that are not zero";
            return false;
        }
        return true;
    }

private:
    /// 'at': the 0-based position of 'c' among the characters other than white space.
    void fail(char16_t c, const char* what, std::uint64_t at) {
        error_ = true;
        // The character is named only when it is printable ASCII (never the content around it).
        std::string ch = c > 0x20 && c < 0x7f ? std::string("'") + static_cast<char>(c) + "' " : std::string();
        char code[16];
        std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
        why_ = std::string(what) + ": " + ch + "(" + code + ") at Base64 character " + std::to_string(at + 1);
    }

    std::uint64_t digits_ = 0;    ///< alphabet characters
    std::uint64_t position_ = 0;  ///< characters other than white space so far
    unsigned pads_ = 0;           ///< '=' so far
    std::uint8_t last_ = 0;       ///< value of the last alphabet character
    std::uint8_t before_pad_ = 0; ///< value of the alphabet character before the first '='
    bool error_ = false;
    std::string why_;
    std::u16string head_;
};

} // namespace broker::xml::detail
