// `edibroker <command>`: serve, validate, the operator commands (replay, routes, registry,
// messages, store; in tools/), version, help.
#include "broker/server.hpp"
#include "broker/xml.hpp"
#include "tools/commands.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <sstream>
#include <string_view>

namespace broker {

namespace {

constexpr const char* usage_text =
    R"(usage: edibroker <command> [options]

commands:
  serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--rules DIR] [--registry FILE]
        [--set KEY=VALUE]...
        [--admin-listen HOST:PORT|off]
        Run the broker. Prints "listening on HOST:PORT" once ready, then "admin listening on
        HOST:PORT" (the admin API and /metrics). SIGINT/SIGTERM stop it; SIGHUP reloads the
        routing rules and the registry (a broken file is refused and the old ones stay).
  validate FILE...
        Validate message files (MsgHead, AppRec, EI_fellesformat). Exit 0 if all are valid,
        1 otherwise, with one "FILE:LINE:COL: reason" line per error.
  replay PATH... (--to URL | --dry-run) [--concurrency N] [--rate N] [--wait-for STATES]
        [--expect DIR] [--write-expected DIR] [--verbose]
        Send message files to a running broker (or route them here with --dry-run), summarise,
        and compare each outcome with expected files.
  routes check [DIR] [--strict]
        Validate routing rules; find rules that never match, shadowed rules, and routes to
        adapters that cannot take what they match.
  routes explain FILE... [--json]
        Which rule a message matches, and why each other rule does not.
  registry import FILE | registry show HERID | registry search TEXT
        The address registry in the store.
  messages list [filters] | messages show ID | messages resend ID | messages dead
        Find messages (--sender --receiver --type --state --msg-id --conversation --from --to
        --limit), see one with every transition, resend one, list the dead letters.
  store stats | store prune
        Store size, oldest message, what waits per adapter; run retention now.
  version
  help
Every command has --help. Operator commands take --config FILE, --data-dir DIR, --rules DIR,
--registry FILE and --set KEY=VALUE like serve.
)";

int usage_error(const std::string& msg) {
    std::cerr << "edibroker: " << msg << "\n\n" << usage_text;
    return 2;
}

constexpr const char* serve_help = R"txt(usage: edibroker serve [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT|off]
                       [--data-dir DIR] [--rules DIR] [--registry FILE] [--set KEY=VALUE]...

Run the broker: the EDI REST endpoint on --listen (default 127.0.0.1:8080; port 0 picks a free
port), the admin API and /metrics on --admin-listen. Prints "listening on HOST:PORT" once ready,
then "admin listening on HOST:PORT". SIGINT/SIGTERM stop it; SIGHUP reloads the routing rules and
the registry (a broken file is refused with file:line:col and the old ones stay).

  --config FILE      key = value lines (see config/edibroker.conf); relative paths are relative to it
  --data-dir DIR     folder of edibroker.db (default edibroker-data)
  --rules DIR        routing rules (default: the repository's routing-rules/)
  --registry FILE    registry imported at start (default: the repository's config/registry.xml)
  --set KEY=VALUE    any config key, after the file (e.g. --set log-level=debug)
)txt";

constexpr const char* validate_help = R"txt(usage: edibroker validate FILE...

Validate message files (MsgHead with Dialogmelding 1.0/1.1 and attachments, AppRec 1.0/1.1,
EI_fellesformat) against the schemas built into the broker. Prints "FILE: valid (TYPE, MsgId ID)"
for each valid file; exit 0 if all are valid, otherwise 1 with one "FILE:LINE:COL: CODE reason"
line per error on stderr (CODE is the AppRec error code: T01 not well-formed, T02 invalid, T10
unsupported namespace or version). Values from the document are never printed.
)txt";

bool wants_help(int argc, char** argv) {
    for (int i = 0; i < argc; ++i)
        if (std::string_view a = argv[i]; a == "--help" || a == "-h")
            return true;
    return false;
}

int cmd_serve(int argc, char** argv) {
    if (wants_help(argc, argv)) {
        std::cout << serve_help;
        return 0;
    }
    config c = default_config();
    std::vector<std::pair<std::string, std::string>> overrides;
    std::string config_file;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* what) -> const char* {
            if (i + 1 >= argc)
                return nullptr;
            (void)what;
            return argv[++i];
        };
        const char* v = nullptr;
        if (a == "--config") {
            if (!(v = value("FILE")))
                return usage_error("--config needs a file");
            config_file = v;
        } else if (a == "--listen") {
            if (!(v = value("HOST:PORT")))
                return usage_error("--listen needs HOST:PORT");
            overrides.emplace_back("listen", v);
        } else if (a == "--data-dir") {
            if (!(v = value("DIR")))
                return usage_error("--data-dir needs a folder");
            overrides.emplace_back("data-dir", v);
        } else if (a == "--rules") {
            if (!(v = value("DIR")))
                return usage_error("--rules needs a folder");
            overrides.emplace_back("rules-dir", v);
        } else if (a == "--registry") {
            if (!(v = value("FILE")))
                return usage_error("--registry needs a file");
            overrides.emplace_back("registry", v);
        } else if (a == "--admin-listen") {
            if (!(v = value("HOST:PORT")))
                return usage_error("--admin-listen needs HOST:PORT or off");
            overrides.emplace_back("admin-listen", v);
        } else if (a == "--set") {
            if (!(v = value("KEY=VALUE")))
                return usage_error("--set needs KEY=VALUE");
            std::string kv = v;
            auto eq = kv.find('=');
            if (eq == std::string::npos)
                return usage_error("--set needs KEY=VALUE");
            overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        } else {
            return usage_error("unknown option '" + a + "' for serve");
        }
    }
    if (!config_file.empty()) {
        auto r = load_config_file(config_file, c);
        if (!r) {
            std::cerr << r.error().where() << "\n";
            return 1;
        }
        c = *r;
    }
    for (auto& [k, v] : overrides) {
        if (auto r = set_config_value(c, k, v); !r) {
            std::cerr << "edibroker: " << r.error().message << "\n";
            return 1;
        }
    }

    // Block the stop signals in every thread; this thread waits for them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    auto s = make_server(c);
    if (!s) {
        std::cerr << "edibroker: " << s.error().where() << "\n";
        return 1;
    }
    if (auto r = (*s)->start(); !r) {
        std::cerr << "edibroker: " << r.error().where() << "\n";
        return 1;
    }
    std::cout << "listening on " << (*s)->listen_address() << std::endl;
    if (auto admin = (*s)->admin_address(); !admin.empty())
        std::cout << "admin listening on " << admin << std::endl;
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig != SIGHUP)
            break;
        // Reload; a refused file is logged (file:line:col) and the old rules stay in force.
        if (auto r = (*s)->reload(); !r)
            std::cerr << "edibroker: reload refused: " << r.error().where() << std::endl;
    }
    (*s)->stop();
    return 0;
}

int cmd_validate(int argc, char** argv) {
    if (wants_help(argc, argv)) {
        std::cout << validate_help;
        return 0;
    }
    if (argc == 0)
        return usage_error("validate needs at least one file");
    xml::platform_init();
    auto v = xml::make_validator();
    if (!v) {
        std::cerr << "edibroker: " << v.error().where() << "\n";
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < argc; ++i) {
        std::string path = argv[i];
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            std::cerr << path << ":0:0: cannot read the file\n";
            ++bad;
            continue;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        auto r = (*v)->validate(ss.str(), path);
        if (r.v == xml::verdict::valid) {
            std::cout << path << ": valid (" << (r.facts.is_apprec() ? "AppRec " + r.facts.apprec_version()
                                                                      : r.facts.msg_type)
                      << ", MsgId " << r.facts.msg_id << ")\n";
            continue;
        }
        ++bad;
        if (r.diagnostics.empty())
            std::cerr << path << ":1:1: " << xml::apprec_code(r.v) << " the message is not valid\n";
        for (auto& d : r.diagnostics)
            std::cerr << path << ":" << d.line << ":" << d.column << ": " << xml::apprec_code(r.v) << " " << d.message
                      << "\n";
    }
    return bad ? 1 : 0;
}

} // namespace

int run_cli(int argc, char** argv) {
    if (argc < 2)
        return usage_error("no command given");
    std::string cmd = argv[1];
    if (cmd == "serve")
        return cmd_serve(argc - 2, argv + 2);
    if (cmd == "validate")
        return cmd_validate(argc - 2, argv + 2);
    if (cmd == "replay")
        return tools::cmd_replay(argc - 2, argv + 2);
    if (cmd == "routes")
        return tools::cmd_routes(argc - 2, argv + 2);
    if (cmd == "registry")
        return tools::cmd_registry(argc - 2, argv + 2);
    if (cmd == "messages")
        return tools::cmd_messages(argc - 2, argv + 2);
    if (cmd == "store")
        return tools::cmd_store(argc - 2, argv + 2);
    if (cmd == "version" || cmd == "--version") {
        std::cout << "edibroker " << EDIBROKER_VERSION << " (network I/O: " << io_backend() << ")\n";
        return 0;
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
        std::cout << usage_text;
        return 0;
    }
    return usage_error("unknown command '" + cmd + "'");
}

} // namespace broker
