// Test support: a real AMQP 1.0 broker, Debian's RabbitMQ 3.10 (rabbitmq-server) with its
// rabbitmq_amqp1_0 plugin, started by the test on 127.0.0.1 with free ports, its own mnesia/log/
// config folders in a temp folder, a private Erlang cookie (HOME) and port mapper (epmd on its own
// port) and a unique node name, so it never meets another RabbitMQ on the machine. Stopping and
// starting it again keeps its data: durable queues and persistent messages survive a restart.
//
// Start-up takes a few seconds (the Erlang VM and the plugin): tests share one broker per test
// executable through shared().
#pragma once

#include "test_paths.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace testing {

class amqp_broker {
public:
    /// Whether Debian's rabbitmq-server is installed. Tests print why and skip when it is not.
    static bool available();

    /// Start it and wait (bounded) until it accepts connections. Throws std::runtime_error with
    /// the end of its log when it does not come up.
    amqp_broker();
    /// Stop it (gracefully, bounded) and end its private port mapper.
    ~amqp_broker();
    amqp_broker(const amqp_broker&) = delete;
    amqp_broker& operator=(const amqp_broker&) = delete;

    /// Graceful stop (SIGTERM; RabbitMQ closes client connections, persists queues). Bounded: a
    /// broker that does not stop within 30 s is killed.
    void stop();
    /// Start again on the same port with the same data. Throws like the constructor.
    void start();
    bool running() const;

    unsigned short port() const { return port_; }
    /// amqp://guest:guest@127.0.0.1:<port> (guest may connect from loopback here).
    std::string url() const;
    /// The last lines RabbitMQ printed (for failure messages).
    std::string log_tail() const;
    /// rabbitmqctl list_queues: queue name -> messages held (ready + unacknowledged). Empty when
    /// rabbitmqctl fails. Takes a second or two (it starts an Erlang VM).
    std::map<std::string, long> queue_depths() const;

    /// The broker shared by all tests of this executable, started on first use; nullptr when
    /// rabbitmq-server is not installed (the reason is printed once).
    static amqp_broker* shared();

private:
    std::vector<std::string> environment() const;
    void reader(int fd);
    void kill_epmd();

    temp_dir dir_;
    unsigned short port_ = 0;
    unsigned short dist_port_ = 0;
    unsigned short epmd_port_ = 0;
    std::string node_;
    pid_t pid_ = -1;
    std::thread reader_;

    mutable std::mutex m_;
    std::condition_variable cv_;
    bool started_ = false;  // "Server startup complete" seen
    bool exited_ = false;   // its output ended (the process is gone)
    std::string tail_;
};

} // namespace testing
