// thread_validator() on two threads at once: each thread has its own parser and grammar pool.
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using broker::xml::verdict;

TEST_CASE("two threads validating concurrently get the single-threaded results", "[xml][threads]") {
    std::vector<std::string> docs;
    if (testing::have_interop()) {
        for (const auto& rel : xmltest::message_samples())
            docs.push_back(xmltest::sample(rel));
    }
    docs.push_back("<a><b></a>");
    docs.push_back("<foo xmlns=\"urn:x\"/>");
    // Expected results from a validator of this thread.
    std::vector<verdict> expected;
    std::vector<std::string> ids;
    for (const auto& d : docs) {
        auto r = xmltest::v().validate(d);
        expected.push_back(r.v);
        ids.push_back(r.facts.msg_id);
    }
    std::atomic<int> mismatches{0};
    std::atomic<int> runs{0};
    std::atomic<bool> go{false};
    auto worker = [&](int offset) {
        auto& v = broker::xml::thread_validator();  // built on this thread
        while (!go.load())
            std::this_thread::yield();
        for (int round = 0; round < 8; ++round) {
            for (std::size_t k = 0; k < docs.size(); ++k) {
                const std::size_t i = (k + static_cast<std::size_t>(offset) * 7) % docs.size();
                auto r = v.validate(docs[i]);
                if (r.v != expected[i] || r.facts.msg_id != ids[i])
                    ++mismatches;
                ++runs;
            }
        }
    };
    std::thread a(worker, 0), b(worker, 1);
    go = true;
    a.join();
    b.join();
    CHECK(mismatches.load() == 0);
    CHECK(runs.load() == static_cast<int>(2 * 8 * docs.size()));
    // The validators are per thread.
    broker::xml::validator* here = &broker::xml::thread_validator();
    broker::xml::validator* there = nullptr;
    std::thread c([&] { there = &broker::xml::thread_validator(); });
    c.join();
    CHECK(here != there);
}
