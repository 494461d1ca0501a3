// NAV's EI_fellesformat envelope: find /EI_fellesformat/MsgHead lexically and cut it out so that
// it can be validated on its own, keeping line numbers those of the original file.
//
// Works on ASCII-compatible encodings (UTF-8, ISO-8859-x), which is what NAV sends; a UTF-16
// envelope is not recognised (it is then an unsupported root, T10). Well-formedness of the whole
// document is checked by the parser, not here: this scanner is lenient and gives up (not found) on
// anything it does not understand.
#include "xml/detail.hpp"

#include <optional>
#include <utility>
#include <vector>

namespace broker::xml::detail {

namespace {

constexpr std::string_view eiff_ns = "http://www.nav.no/xml/eiff/2/";
constexpr std::string_view msghead_ns = "http://www.kith.no/xmlstds/msghead/2006-05-24";

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

struct attr {
    std::string_view name;
    std::string_view raw;   ///< the value as written, without quotes (entity references not expanded)
    char quote = '"';
};

struct start_tag {
    std::string_view qname;
    std::vector<attr> attrs;
    std::size_t begin = 0;    ///< '<'
    std::size_t close = 0;    ///< position of '>' or of the '/' of "/>"
    std::size_t end = 0;      ///< one past '>'
    bool empty = false;       ///< "/>"
};

class lexer {
public:
    explicit lexer(std::string_view d) : d_(d) {}

    std::size_t pos = 0;

    bool at(std::string_view s) const { return d_.substr(pos, s.size()) == s; }

    /// Skips past 'terminator'; false if it is missing.
    bool skip_past(std::string_view terminator) {
        std::size_t p = d_.find(terminator, pos);
        if (p == std::string_view::npos)
            return false;
        pos = p + terminator.size();
        return true;
    }

    /// Parses a start tag at pos ('<' followed by a name char). want_attrs=false only reads the name.
    std::optional<start_tag> read_start_tag(bool want_attrs) {
        start_tag t;
        t.begin = pos;
        std::size_t p = pos + 1;
        std::size_t n0 = p;
        while (p < d_.size() && !is_space(d_[p]) && d_[p] != '>' && d_[p] != '/')
            ++p;
        if (p == n0 || p >= d_.size())
            return std::nullopt;
        t.qname = d_.substr(n0, p - n0);
        if (!want_attrs)
            return t;
        for (;;) {
            while (p < d_.size() && is_space(d_[p]))
                ++p;
            if (p >= d_.size())
                return std::nullopt;
            if (d_[p] == '>') {
                t.close = p;
                t.end = p + 1;
                break;
            }
            if (d_[p] == '/') {
                if (p + 1 >= d_.size() || d_[p + 1] != '>')
                    return std::nullopt;
                t.close = p;
                t.end = p + 2;
                t.empty = true;
                break;
            }
            auto a = read_attribute(p);
            if (!a)
                return std::nullopt;
            t.attrs.push_back(*a);
        }
        pos = t.end;
        return t;
    }

    /// The pseudo-attributes (name, value as written) of the XML declaration at pos ("<?xml",
    /// white space, ... "?>"); nullopt when one is not name = quoted value after white space. pos
    /// moves past "?>".
    std::optional<std::vector<std::pair<std::string_view, std::string_view>>> read_declaration() {
        std::vector<std::pair<std::string_view, std::string_view>> out;
        std::size_t p = pos + 5;  // "<?xml"
        for (;;) {
            const std::size_t ws = p;
            while (p < d_.size() && is_space(d_[p]))
                ++p;
            if (d_.substr(p, 2) == "?>") {
                pos = p + 2;
                return out;
            }
            if (p == ws)
                return std::nullopt;
            auto a = read_attribute(p);
            if (!a)
                return std::nullopt;
            out.emplace_back(a->name, a->raw);
        }
    }

    /// From just after a start tag (not empty), skips to one past its matching end tag.
    bool skip_element_content() {
        int depth = 1;
        while (depth > 0) {
            std::size_t p = d_.find('<', pos);
            if (p == std::string_view::npos)
                return false;
            pos = p;
            if (at("<!--")) {
                if (!skip_past("-->"))
                    return false;
            } else if (at("<![CDATA[")) {
                if (!skip_past("]]>"))
                    return false;
            } else if (at("<?")) {
                if (!skip_past("?>"))
                    return false;
            } else if (at("</")) {
                if (!skip_past(">"))
                    return false;
                --depth;
            } else {
                auto t = read_start_tag(true);
                if (!t)
                    return false;
                if (!t->empty)
                    ++depth;
            }
        }
        return true;
    }

    std::string_view doc() const { return d_; }

private:
    /// name = "value" or 'value' at p (white space around '='); p moves past the closing quote.
    std::optional<attr> read_attribute(std::size_t& p) const {
        std::size_t a0 = p;
        while (p < d_.size() && !is_space(d_[p]) && d_[p] != '=' && d_[p] != '>' && d_[p] != '/')
            ++p;
        attr a;
        a.name = d_.substr(a0, p - a0);
        while (p < d_.size() && is_space(d_[p]))
            ++p;
        if (p >= d_.size() || d_[p] != '=')
            return std::nullopt;
        ++p;
        while (p < d_.size() && is_space(d_[p]))
            ++p;
        if (p >= d_.size() || (d_[p] != '"' && d_[p] != '\''))
            return std::nullopt;
        a.quote = d_[p];
        std::size_t v0 = ++p;
        std::size_t v1 = d_.find(a.quote, v0);
        if (v1 == std::string_view::npos)
            return std::nullopt;
        a.raw = d_.substr(v0, v1 - v0);
        p = v1 + 1;
        return a;
    }

    std::string_view d_;
};

std::pair<std::string_view, std::string_view> split_qname(std::string_view q) {
    auto c = q.find(':');
    if (c == std::string_view::npos)
        return {{}, q};
    return {q.substr(0, c), q.substr(c + 1)};
}

/// The namespace a prefix maps to in 'scopes' (innermost last); nullopt if undeclared.
std::optional<std::string_view> resolve(std::string_view prefix, const std::vector<const start_tag*>& scopes) {
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
        for (const attr& a : (*it)->attrs) {
            if (prefix.empty() ? a.name == "xmlns" : (a.name.size() == prefix.size() + 6 && a.name.substr(0, 6) == "xmlns:" && a.name.substr(6) == prefix))
                return a.raw;
        }
    }
    if (prefix.empty())
        return std::string_view{};
    return std::nullopt;
}

bool is_xmlns(std::string_view name) { return name == "xmlns" || name.substr(0, 6) == "xmlns:"; }

} // namespace

std::optional<std::vector<std::pair<std::string_view, std::string_view>>> xml_declaration(std::string_view doc) {
    lexer lx(doc);
    return lx.read_declaration();
}

fellesformat_layout scan_fellesformat(std::string_view doc) {
    fellesformat_layout out;
    lexer lx(doc);
    if (lx.at("\xEF\xBB\xBF"))
        lx.pos = 3;
    out.decl_end = lx.pos;
    if (lx.at("<?xml") && lx.pos + 5 < doc.size() && is_space(doc[lx.pos + 5])) {
        if (!lx.skip_past("?>"))
            return out;
        out.decl_end = lx.pos;
    }
    // Prolog: comments, processing instructions, white space. A DOCTYPE is refused elsewhere.
    for (;;) {
        while (lx.pos < doc.size() && is_space(doc[lx.pos]))
            ++lx.pos;
        if (lx.pos >= doc.size())
            return out;
        if (lx.at("<!--")) {
            if (!lx.skip_past("-->"))
                return out;
        } else if (lx.at("<?")) {
            if (!lx.skip_past("?>"))
                return out;
        } else if (lx.at("<!")) {
            return out;
        } else if (doc[lx.pos] == '<') {
            break;
        } else {
            return out;
        }
    }
    // Cheap exit for everything that is not a fellesformat: look at the root's name only.
    {
        lexer peek = lx;
        auto name_only = peek.read_start_tag(false);
        if (!name_only || split_qname(name_only->qname).second != "EI_fellesformat")
            return out;
    }
    auto root = lx.read_start_tag(true);
    if (!root)
        return out;
    std::vector<const start_tag*> scopes{&*root};
    auto root_ns = resolve(split_qname(root->qname).first, scopes);
    if (!root_ns || *root_ns != eiff_ns)
        return out;
    out.is_fellesformat = true;
    if (root->empty)
        return out;
    // Children of the root: find MsgHead.
    for (;;) {
        std::size_t p = doc.find('<', lx.pos);
        if (p == std::string_view::npos)
            return out;
        lx.pos = p;
        if (lx.at("<!--")) {
            if (!lx.skip_past("-->"))
                return out;
        } else if (lx.at("<![CDATA[")) {
            if (!lx.skip_past("]]>"))
                return out;
        } else if (lx.at("<?")) {
            if (!lx.skip_past("?>"))
                return out;
        } else if (lx.at("</")) {
            return out;  // end of the root: no MsgHead
        } else {
            auto child = lx.read_start_tag(true);
            if (!child)
                return out;
            scopes.push_back(&*child);
            auto [prefix, local] = split_qname(child->qname);
            auto ns = resolve(prefix, scopes);
            scopes.pop_back();
            if (local == "MsgHead" && ns && *ns == msghead_ns) {
                out.msghead_begin = child->begin;
                out.msghead_tag_end = child->close;
                if (!child->empty && !lx.skip_element_content())
                    return out;
                out.msghead_end = lx.pos;
                // Envelope declarations the MsgHead does not redeclare itself.
                for (const attr& a : root->attrs) {
                    if (!is_xmlns(a.name))
                        continue;
                    bool redeclared = false;
                    for (const attr& b : child->attrs)
                        redeclared = redeclared || b.name == a.name;
                    if (redeclared)
                        continue;
                    out.extra_xmlns.push_back(' ');
                    out.extra_xmlns.append(a.name);
                    out.extra_xmlns.push_back('=');
                    out.extra_xmlns.push_back(a.quote);
                    out.extra_xmlns.append(a.raw);
                    out.extra_xmlns.push_back(a.quote);
                }
                out.found_msghead = true;
                return out;
            }
            if (!child->empty && !lx.skip_element_content())
                return out;
        }
    }
}

std::string build_unwrapped(std::string_view doc, const fellesformat_layout& l) {
    std::string s;
    s.reserve(l.msghead_end - l.msghead_begin + l.msghead_begin / 8 + l.extra_xmlns.size() + l.decl_end + 1);
    s.append(doc.substr(0, l.decl_end));
    // The envelope before MsgHead: keep line breaks only (plus the spaces on MsgHead's own line, so
    // that columns there stay right too). White space is allowed in the prolog.
    std::size_t last_nl = doc.rfind('\n', l.msghead_begin);
    std::size_t line_start = last_nl == std::string_view::npos ? 0 : last_nl + 1;
    for (std::size_t i = l.decl_end; i < l.msghead_begin; ++i) {
        char c = doc[i];
        if (c == '\n' || c == '\r')
            s.push_back(c);
        else if (i >= line_start)
            s.push_back(' ');
    }
    s.append(doc.substr(l.msghead_begin, l.msghead_tag_end - l.msghead_begin));
    s.append(l.extra_xmlns);
    s.append(doc.substr(l.msghead_tag_end, l.msghead_end - l.msghead_tag_end));
    s.push_back('\n');
    return s;
}

std::string unwrap_fellesformat_impl(std::string_view document) {
    auto l = scan_fellesformat(document);
    if (!l.found_msghead)
        return {};
    return build_unwrapped(document, l);
}

} // namespace broker::xml::detail

namespace broker::xml {

std::string unwrap_fellesformat(std::string_view document) { return detail::unwrap_fellesformat_impl(document); }

} // namespace broker::xml
