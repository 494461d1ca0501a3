// Durability: a child process inserts, waits for the dones (the acknowledgements) and dies with
// _exit without closing the store; every acknowledged message must be there after reopening.
#include "store_test_util.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

using namespace store_test;
using broker::result;

TEST_CASE("acknowledged messages survive a process that dies without close", "[unit][store]") {
    testing::temp_dir d;
    auto o = options_in(d);
    constexpr int n = 300;

    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Child: never return into Catch2; every path ends in _exit.
        auto s = broker::store::open(o);
        if (!s)
            ::_exit(2);
        std::atomic<int> acked{0}, failed{0};
        std::promise<void> all;
        for (int i = 0; i < n; ++i) {
            auto m = make_msg("crash-" + std::to_string(i));
            m.raw.append(4096, static_cast<char>(i));
            auto r = (*s)->submit(
                [m = std::move(m)](broker::store::write_txn& t) -> result<void> {
                    if (auto x = t.insert_message(m); !x)
                        return x.error();
                    return {};
                },
                [&](result<void> r) {
                    if (!r)
                        ++failed;
                    if (++acked == n)
                        all.set_value();
                });
            if (!r)
                ::_exit(3);
        }
        all.get_future().wait();
        ::_exit(failed == 0 ? 0 : 4);  // no close(), no destructors: the WAL is not checkpointed
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);

    auto s = open_ok(o);
    auto& rd = s->thread_reader();
    auto count = rd.count_messages();
    REQUIRE(count);
    CHECK(*count == n);
    for (int i = 0; i < n; i += 37) {
        const std::string id = "crash-" + std::to_string(i);
        auto b = rd.body(id);
        REQUIRE(b);
        REQUIRE(b->has_value());
        CHECK((*b)->size() == ("<MsgHead>" + id + "</MsgHead>").size() + 4096);
        auto t = rd.transitions(id);
        REQUIRE(t);
        CHECK(t->size() == 3);
    }
}
