// UTF-16 -> UTF-8 without going through Xerces' transcoder (no allocation beyond the target
// string), and the sanitiser for parser messages.
#include "xml/detail.hpp"

#include <array>
#include <cstdint>

namespace broker::xml::detail {

namespace {

void put_code_point(std::string& out, std::uint32_t c) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

bool is_xml_space(XMLCh c) noexcept { return c == u' ' || c == u'\t' || c == u'\n' || c == u'\r'; }

} // namespace

void append_utf8(std::string& out, const XMLCh* s, std::size_t n) {
    std::size_t i = 0;
    // Fast path for the ASCII run most values consist of.
    while (i < n && s[i] < 0x80)
        ++i;
    out.append(s, s + i);  // char16_t -> char narrowing of ASCII, element by element
    for (; i < n; ++i) {
        std::uint32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (static_cast<std::uint32_t>(s[i + 1]) - 0xDC00);
            ++i;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        put_code_point(out, c);
    }
}

void append_utf8(std::string& out, const XMLCh* s) {
    if (!s)
        return;
    std::size_t n = 0;
    while (s[n])
        ++n;
    append_utf8(out, s, n);
}

void assign_utf8_trimmed(std::string& out, const XMLCh* s, std::size_t n) {
    std::size_t b = 0;
    while (b < n && is_xml_space(s[b]))
        ++b;
    while (n > b && is_xml_space(s[n - 1]))
        --n;
    out.clear();
    append_utf8(out, s + b, n - b);
}

std::string sanitize_message(const XMLCh* msg) {
    std::string m = to_utf8(msg);
    // Quoted text is kept only when the word before it says it is a name from the schema or the
    // markup; everything else (values, text) is replaced.
    static constexpr std::array<std::string_view, 10> keep_after{
        "element", "attribute", "tag", "model", "type", "namespace", "prefix", "declaration", "uri", "name"};
    std::string out;
    out.reserve(m.size());
    std::size_t i = 0;
    while (i < m.size()) {
        std::size_t q = m.find('\'', i);
        if (q == std::string::npos) {
            out.append(m, i, std::string::npos);
            break;
        }
        std::size_t close = m.find('\'', q + 1);
        if (close == std::string::npos) {
            out.append(m, i, std::string::npos);
            break;
        }
        out.append(m, i, q - i);
        // The word before the opening quote, lower-cased, without a trailing ':'.
        std::size_t e = q;
        while (e > 0 && (m[e - 1] == ' ' || m[e - 1] == ':'))
            --e;
        std::size_t b = e;
        while (b > 0 && m[b - 1] != ' ')
            --b;
        std::string word = m.substr(b, e - b);
        for (auto& c : word)
            if (c >= 'A' && c <= 'Z')
                c = static_cast<char>(c - 'A' + 'a');
        bool keep = false;
        for (auto k : keep_after)
            keep = keep || word == k;
        if (keep)
            out.append(m, q, close - q + 1);
        else
            out.append("'…'");
        i = close + 1;
    }
    return out;
}

} // namespace broker::xml::detail
