// edibroker: the whole program is in the libraries; this is only the entry point.
#include "broker/server.hpp"

int main(int argc, char** argv) { return broker::run_cli(argc, argv); }
