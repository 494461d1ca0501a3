#include "child_process.hpp"

#include <catch2/catch.hpp>

#include <csignal>

#include <sys/wait.h>
#include <unistd.h>

namespace testing {

child spawn(const std::vector<std::string>& args, void (*in_child)()) {
    int o[2], e[2];
    REQUIRE(pipe(o) == 0);
    REQUIRE(pipe(e) == 0);
    // Built before fork(): the child may only make async-signal-safe calls until it execs.
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(o[0]);
        close(e[0]);
        if (in_child)
            in_child();
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    return {pid, o[0], e[0]};
}

int stop(child& c) {
    kill(c.pid, SIGTERM);
    int status = 0;
    waitpid(c.pid, &status, 0);
    close(c.out);
    close(c.err);
    c.out = c.err = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

} // namespace testing
