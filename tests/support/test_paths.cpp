#include "test_paths.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace testing {

bool have_interop() {
    static const bool present = [] {
        bool ok = std::filesystem::is_directory(interop_dir());
        if (!ok)
            std::cerr << "SKIP: " << interop_dir().string()
                      << " is absent; tests that run the shared interop samples are skipped\n";
        return ok;
    }();
    return present;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

temp_dir::temp_dir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    auto base = std::filesystem::temp_directory_path();
    path_ = base / ("edibroker-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                    std::to_string(rd() % 100000));
    std::filesystem::create_directories(path_);
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

} // namespace testing
