// The operator commands of `edibroker` (see cli.cpp for the command table). Each takes the
// arguments after its command word(s) and returns the process exit code: 0 ok, 1 a finding or a
// failure, 2 a usage error.
#pragma once

namespace broker::tools {

int cmd_replay(int argc, char** argv);
int cmd_routes(int argc, char** argv);
int cmd_registry(int argc, char** argv);
int cmd_messages(int argc, char** argv);
int cmd_store(int argc, char** argv);

} // namespace broker::tools
