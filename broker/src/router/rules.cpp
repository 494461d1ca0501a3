// Routing rules files (routing-rules/*.xml, schemas/routing-rules.xsd).
#include "broker/router.hpp"
#include "router/sax.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>

namespace broker::routing {

namespace {

using detail::position;

constexpr const char* code_invalid = "rules.invalid";
constexpr int min_priority = -1000000;
constexpr int max_priority = 1000000;

struct located_adapter {
    adapter_instance a;
    position pos;
};

struct located_rule {
    rule r;
    position pos;
    position deliver_pos;
};

std::string where(const std::string& file, position p) { return file + ":" + std::to_string(p.line); }

class rules_handler : public detail::sax_handler {
public:
    using sax_handler::sax_handler;
    std::vector<located_adapter> adapters;
    std::vector<located_rule> rules;

    void startElement(const XMLCh* const, const XMLCh* const localname, const XMLCh* const,
                      const xercesc::Attributes& a) override {
        const std::u16string_view name(localname);
        ++depth_;
        if (depth_ == 2 && name == u"adapter") {
            located_adapter la;
            la.pos = element_start();
            la.a.name = detail::attr(a, u"name");
            la.a.type = detail::attr(a, u"type");
            la.a.file = file();
            la.a.line = la.pos.line;
            adapters.push_back(std::move(la));
            in_ = in::adapter;
        } else if (depth_ == 2 && name == u"rule") {
            located_rule lr;
            lr.pos = element_start();
            lr.r.id = detail::attr(a, u"id");
            lr.r.file = file();
            lr.r.line = lr.pos.line;
            const std::string prio = detail::attr(a, u"priority");
            const std::string p = detail::trim(prio);
            int v = 0;
            auto [ptr, ec] = std::from_chars(p.data() + (p.starts_with('+') ? 1 : 0), p.data() + p.size(), v);
            if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || v < min_priority || v > max_priority)
                fail(lr.pos, "rule '" + lr.r.id + "' has invalid priority '" + prio + "' (expected an integer from " +
                                 std::to_string(min_priority) + " to " + std::to_string(max_priority) + ")");
            lr.r.priority = v;
            rules.push_back(std::move(lr));
            in_ = in::rule;
        } else if (depth_ == 3 && name == u"option" && in_ != in::none) {
            const std::string n = detail::attr(a, u"name");
            auto& opts = in_ == in::adapter ? adapters.back().a.options : rules.back().r.options;
            if (!opts.emplace(n, detail::attr(a, u"value")).second)
                fail(element_start(), "duplicate option '" + n + "' in " +
                                          (in_ == in::adapter ? "adapter '" + adapters.back().a.name + "'"
                                                              : "rule '" + rules.back().r.id + "'"));
        } else if (depth_ == 3 && name == u"match" && in_ == in::rule) {
            rule& r = rules.back().r;
            r.receiver = detail::attr(a, u"receiver");
            r.receiver_ancestor = detail::attr(a, u"receiver-or-ancestor");
            r.sender = detail::attr(a, u"sender");
            r.type = detail::attr(a, u"type");
            r.municipality = detail::attr(a, u"municipality");
        } else if (depth_ == 3 && name == u"deliver" && in_ == in::rule) {
            located_rule& lr = rules.back();
            lr.deliver_pos = element_start();
            bool has_adapter = false, has_via = false;
            lr.r.adapter = detail::attr(a, u"adapter", &has_adapter);
            const std::string via = detail::attr(a, u"via", &has_via);
            if (has_adapter && has_via)
                fail(lr.deliver_pos, "rule '" + lr.r.id + "' gives both adapter and via; choose one");
            if (!has_adapter && !has_via)
                fail(lr.deliver_pos, "rule '" + lr.r.id + "' has neither adapter nor via=\"registry\" in deliver");
            lr.r.via_registry = has_via && via == "registry";
        }
    }

    void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
        if (depth_ == 2)
            in_ = in::none;
        --depth_;
    }

private:
    enum class in { none, adapter, rule };
    int depth_ = 0;
    in in_ = in::none;
};

} // namespace

const adapter_instance* rule_set::find_adapter(std::string_view name) const {
    for (const auto& a : adapters)
        if (a.name == name)
            return &a;
    return nullptr;
}

result<rule_set> load_rules_files(const std::vector<std::string>& files) {
    std::vector<located_adapter> adapters;
    std::vector<located_rule> rules;
    std::map<std::string, std::size_t, std::less<>> adapter_index, rule_index;

    for (const auto& file : files) {
        auto text = detail::read_whole_file(file, "rules.unreadable", "rules file");
        if (!text)
            return text.error();
        rules_handler h(*text, file, code_invalid);
        if (auto r = detail::run_sax(*text, h, "routing-rules.xsd"); !r)
            return r.error();
        for (auto& la : h.adapters) {
            if (auto it = adapter_index.find(la.a.name); it != adapter_index.end()) {
                const auto& first = adapters[it->second];
                return h.make_error(la.pos, "duplicate adapter name '" + la.a.name + "' (first declared at " +
                                                where(first.a.file, first.pos) + ")");
            }
            adapter_index.emplace(la.a.name, adapters.size());
            adapters.push_back(std::move(la));
        }
        for (auto& lr : h.rules) {
            if (auto it = rule_index.find(lr.r.id); it != rule_index.end()) {
                const auto& first = rules[it->second];
                return h.make_error(lr.pos, "duplicate rule id '" + lr.r.id + "' (first declared at " +
                                                where(first.r.file, first.pos) + ")");
            }
            rule_index.emplace(lr.r.id, rules.size());
            rules.push_back(std::move(lr));
        }
    }

    // Adapters may be declared in any file, so references are checked once all are read.
    for (const auto& lr : rules) {
        if (!lr.r.via_registry && !adapter_index.count(lr.r.adapter))
            return broker::error{code_invalid,
                                 "rule '" + lr.r.id + "' delivers to adapter '" + lr.r.adapter +
                                     "', which no rules file declares",
                                 lr.r.file, lr.deliver_pos.line, lr.deliver_pos.column};
    }

    rule_set out;
    out.adapters.reserve(adapters.size());
    for (auto& la : adapters)
        out.adapters.push_back(std::move(la.a));
    out.rules.reserve(rules.size());
    for (auto& lr : rules)
        out.rules.push_back(std::move(lr.r));
    // Declaration order (files by name, then position) is the order read; a stable sort keeps it
    // among equal priorities.
    std::stable_sort(out.rules.begin(), out.rules.end(),
                     [](const rule& a, const rule& b) { return a.priority > b.priority; });
    return out;
}

result<rule_set> load_rules(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return broker::error{"rules.unreadable", "rules directory '" + dir + "' does not exist or is not a directory"};
    std::vector<std::string> files;
    fs::directory_iterator it(dir, ec), end;
    if (ec)
        return broker::error{"rules.unreadable", "cannot list rules directory '" + dir + "': " + ec.message()};
    for (; it != end; it.increment(ec)) {
        if (ec)
            return broker::error{"rules.unreadable", "cannot list rules directory '" + dir + "': " + ec.message()};
        const fs::path& p = it->path();
        const std::string fname = p.filename().string();
        if (p.extension() == ".xml" && !fname.starts_with(".") && it->is_regular_file(ec))
            files.push_back(p.string());
    }
    if (files.empty())
        return broker::error{code_invalid, "no rules files (*.xml) in '" + dir + "'"};
    std::sort(files.begin(), files.end(),
              [](const std::string& a, const std::string& b) {
                  return fs::path(a).filename().string() < fs::path(b).filename().string();
              });
    return load_rules_files(files);
}

} // namespace broker::routing
