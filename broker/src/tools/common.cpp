#include "tools/common.hpp"

#include "broker/log.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace broker::tools {

const std::set<std::string> config_options{"--config", "--data-dir", "--rules", "--registry", "--set"};

std::string args::get(const std::string& o, const std::string& def) const {
    auto it = values.find(o);
    return it == values.end() || it->second.empty() ? def : it->second.back();
}

result<args> parse_args(int argc, char** argv, const std::set<std::string>& with_value,
                        const std::set<std::string>& flags) {
    args a;
    for (int i = 0; i < argc; ++i) {
        std::string s = argv[i];
        if (s.size() > 2 && s.starts_with("--")) {
            std::string name = s, value;
            bool inline_value = false;
            if (auto eq = s.find('='); eq != std::string::npos) {
                name = s.substr(0, eq);
                value = s.substr(eq + 1);
                inline_value = true;
            }
            if (with_value.count(name)) {
                if (!inline_value) {
                    if (i + 1 >= argc)
                        return error{"usage.invalid", name + " needs a value"};
                    value = argv[++i];
                }
                a.values[name].push_back(value);
            } else if (flags.count(name) && !inline_value) {
                a.flags.insert(name);
            } else {
                return error{"usage.invalid", "unknown option '" + s + "'"};
            }
        } else {
            a.positional.push_back(std::move(s));
        }
    }
    return a;
}

result<config> load_config(const args& a) {
    config c = default_config();
    c.log_level = "warn";
    if (a.values.count("--config")) {
        auto r = load_config_file(a.get("--config"), c);
        if (!r)
            return r.error();
        c = *r;
        // A config file's log level is the server's; tools stay quiet unless --set asks.
        c.log_level = "warn";
    }
    auto set = [&](const char* opt, const char* key) -> result<void> {
        if (a.values.count(opt))
            return set_config_value(c, key, a.get(opt));
        return {};
    };
    for (auto [opt, key] : {std::pair{"--data-dir", "data-dir"}, {"--rules", "rules-dir"}, {"--registry", "registry"}})
        if (auto r = set(opt, key); !r)
            return r.error();
    if (auto it = a.values.find("--set"); it != a.values.end())
        for (auto& kv : it->second) {
            auto eq = kv.find('=');
            if (eq == std::string::npos)
                return error{"usage.invalid", "--set needs KEY=VALUE"};
            if (auto r = set_config_value(c, kv.substr(0, eq), kv.substr(eq + 1)); !r)
                return r.error();
        }
    log::level lv;
    if (log::parse_level(c.log_level, lv))
        log::set_level(lv);
    return c;
}

result<std::unique_ptr<store::store>> open_store(const config& c) {
    store::options so;
    so.path = (std::filesystem::path(c.data_dir) / "edibroker.db").string();
    so.synchronous = c.synchronous;
    so.max_batch = c.group_commit_max;
    so.queue_limit = c.store_queue_limit;
    so.body_log = c.body_log;
    return store::open(so);
}

result<routing::address_registry> load_registry(const config& c, store::store* st) {
    if (!c.registry_file.empty()) {
        auto p = routing::parse_registry_file(c.registry_file);
        if (!p)
            return p.error();
        return routing::address_registry(std::move(*p));
    }
    if (!st)
        return routing::address_registry({});
    auto p = st->thread_reader().all_parties();
    if (!p)
        return p.error();
    return routing::address_registry(std::move(*p));
}

void print_table(std::ostream& os, const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> w;
    auto width = [](const std::string& s) {
        std::size_t n = 0;
        for (unsigned char ch : s)
            n += (ch & 0xC0) != 0x80;  // count UTF-8 code points, not bytes
        return n;
    };
    for (auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) {
            if (w.size() <= i)
                w.push_back(0);
            w[i] = std::max(w[i], width(r[i]));
        }
    for (auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size())
                line += std::string(w[i] - width(r[i]) + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        os << line << '\n';
    }
}

result<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return error{"tools.unreadable", "cannot read " + path};
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int fail(const std::string& message, int code) {
    std::cerr << "edibroker: " << message << "\n";
    return code;
}

int fail(const error& e, int code) { return fail(e.where(), code); }

} // namespace broker::tools
