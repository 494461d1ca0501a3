// Which I/O backend Boost.Asio runs on in this build, and whether the kernel lets it run.
#include "broker/server.hpp"

#if defined(EDIBROKER_IO_URING)
#include <liburing.h>

#include <cstring>
#endif

namespace broker {

const char* io_backend() {
#if defined(EDIBROKER_IO_URING)
    return "io_uring";
#else
    return "epoll";
#endif
}

result<void> io_backend_ready() {
#if defined(EDIBROKER_IO_URING)
    // The same ring size as Asio's io_uring_service asks for per io_context, so that a limit on
    // the ring's memory shows here rather than as an exception from inside Asio.
    constexpr unsigned entries = 16384;
    io_uring ring;
    if (int r = io_uring_queue_init(entries, &ring, 0); r < 0)
        return error{"io.unavailable",
                     std::string("this edibroker runs its network I/O on io_uring and the kernel refuses it "
                                 "(io_uring_setup: ") +
                         std::strerror(-r) +
                         "); a container's seccomp profile or the sysctl kernel.io_uring_disabled forbid it. "
                         "Allow io_uring, or build with cmake -DEDIBROKER_IO_URING=OFF (epoll)"};
    io_uring_queue_exit(&ring);
#endif
    return {};
}

} // namespace broker
