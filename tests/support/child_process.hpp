// A child process for the command-line tests: a program run with its stdout and stderr on pipes.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

namespace testing {

struct child {
    pid_t pid = -1;
    int out = -1;  ///< read end of the child's stdout
    int err = -1;  ///< read end of the child's stderr
};

/// Starts args[0] (a path) with 'args'; stdin is inherited. The caller reads and closes the pipes
/// and waits for the child. 'in_child', when given, runs in the child just before exec (only
/// async-signal-safe calls there).
child spawn(const std::vector<std::string>& args, void (*in_child)() = nullptr);

/// Sends SIGTERM, waits for the child and closes its pipes. Returns its exit code, or -1 when a
/// signal ended it.
int stop(child& c);

} // namespace testing
