// Entry points of the edibroker-bench subcommands (see main.cpp for their options).
#pragma once

#include <string>

namespace bench {

int stage_sqlite(const std::string& dir, int runs, double secs);
/// 'probe' non-empty: only the Xerces SAX stage, its row named 'probe' (run.sh's machine-speed
/// check before and after the broker phases).
int stage_xml(int runs, double secs, const std::string& probe = "");
int stage_curl(const std::string& url, int runs, double secs, int server_pid);
int stage_wrk(const std::string& wrk, const std::string& script, const std::string& url, int runs, double secs,
              int server_pid);
/// Reads the JSON lines of a run, prints the table, writes the JSON document to 'json_out'
/// ("" = do not write). Returns 0 when every check held (zero loss, zero duplicates).
int report(const std::string& in, const std::string& json_out, int cores);

} // namespace bench
