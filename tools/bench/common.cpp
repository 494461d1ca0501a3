// Clocks, CPU and memory readings, percentiles, and the benchmark message.
#include "bench.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace bench {

std::int64_t mono_us() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

namespace {
std::int64_t tv_us(const timeval& tv) { return static_cast<std::int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec; }
} // namespace

std::int64_t process_cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

std::int64_t thread_cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

namespace {

/// utime + stime (or stime alone: the kernel's part) of a /proc/.../stat file, microseconds; -1 if
/// unreadable.
std::int64_t stat_cpu_us(const std::string& path, bool kernel_only = false) {
    std::ifstream in(path);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may contain spaces: fields count from the last ')'.
    auto close = s.rfind(')');
    if (close == std::string::npos)
        return -1;
    std::istringstream rest(s.substr(close + 2));
    std::string field;
    long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14)
            utime = std::atoll(field.c_str());
        if (i == 15)
            stime = std::atoll(field.c_str());
    }
    const long hz = sysconf(_SC_CLK_TCK);
    return ((kernel_only ? 0 : utime) + stime) * 1000000 / (hz > 0 ? hz : 100);
}

} // namespace

std::int64_t pid_cpu_us(int pid) { return stat_cpu_us("/proc/" + std::to_string(pid) + "/stat"); }

std::int64_t pid_kernel_cpu_us(int pid) { return stat_cpu_us("/proc/" + std::to_string(pid) + "/stat", true); }

std::int64_t process_kernel_cpu_us() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return tv_us(ru.ru_stime);
}

std::map<std::string, std::int64_t> pid_thread_cpu_us(int pid) {
    std::map<std::string, std::int64_t> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream comm(e.path() / "comm");
        std::string name;
        if (!std::getline(comm, name))
            continue;  // the thread ended meanwhile
        const std::int64_t us = stat_cpu_us((e.path() / "stat").string());
        if (us < 0)
            continue;
        const auto dash = name.rfind('-');
        if (dash != std::string::npos && dash + 1 < name.size() &&
            name.find_first_not_of("0123456789", dash + 1) == std::string::npos)
            name.erase(dash);
        out[name] += us;
    }
    return out;
}

std::int64_t pid_peak_rss_kib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0)
            return std::atoll(line.c_str() + 6);
    return -1;
}

store_counters read_store_counters(unsigned short port) {
    store_counters c;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return c;
    timeval tv{2, 0};  // every send and receive below gives up after 2 s
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string text;
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&
        ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
        char buf[16384];
        for (ssize_t n; text.size() < (4u << 20) && (n = recv_retrying(fd, buf, sizeof buf)) > 0;)
            text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    // Prometheus text: "name value" per line; HELP and TYPE lines start with '#'.
    auto value = [&](std::string_view name) -> std::int64_t {
        for (std::size_t at = 0; (at = text.find(name, at)) != std::string::npos; at += name.size())
            if ((at == 0 || text[at - 1] == '\n') && at + name.size() < text.size() && text[at + name.size()] == ' ')
                return std::atoll(text.c_str() + at + name.size() + 1);
        return -1;
    };
    const std::int64_t commits = value("edibroker_store_commits_total");
    const std::int64_t ops = value("edibroker_store_write_ops_total");
    if (commits >= 0 && ops >= 0)
        c = {commits, ops};
    return c;
}

machine_cpu machine_cpu_us() {
    machine_cpu m;
    std::ifstream in("/proc/stat");
    std::string cpu;
    if (!(in >> cpu) || cpu != "cpu")
        return m;
    // user nice system idle iowait irq softirq steal (guest time is inside user/nice)
    long long v[8] = {};
    for (auto& x : v)
        if (!(in >> x))
            return m;
    const long hz = sysconf(_SC_CLK_TCK);
    auto us = [&](long long ticks) { return static_cast<std::int64_t>(ticks * 1000000 / (hz > 0 ? hz : 100)); };
    m.busy_us = us(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
    m.idle_us = us(v[3]);
    m.iowait_us = us(v[4]);
    return m;
}

double load_average_1m() {
    std::ifstream in("/proc/loadavg");
    double l = -1;
    if (!(in >> l))
        return -1;
    return l;
}

double percentile(std::vector<std::uint32_t> v, double p) {
    if (v.empty())
        return 0;
    std::size_t k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    k = std::min(k, v.size() - 1);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

double median(std::vector<double> v) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void make_msg_id(char* out, std::uint32_t run, std::uint32_t sender, std::uint32_t seq, std::int64_t t_us) {
    char buf[msg_id_len + 1];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", run, sender & 0xffffu, (seq >> 16) & 0xffffu,
                  seq & 0xffffu, static_cast<unsigned long long>(t_us) & 0xffffffffffffull);
    std::memcpy(out, buf, msg_id_len);
}

bool parse_msg_id(std::string_view id, std::uint32_t& run, std::int64_t& t_us) {
    if (id.size() != msg_id_len || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-')
        return false;
    auto hex = [](std::string_view s, unsigned long long& v) {
        v = 0;
        for (char c : s) {
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return false;
            v = v * 16 + static_cast<unsigned>(d);
        }
        return true;
    };
    unsigned long long r = 0, t = 0;
    if (!hex(id.substr(0, 8), r) || !hex(id.substr(24, 12), t))
        return false;
    run = static_cast<std::uint32_t>(r);
    t_us = static_cast<std::int64_t>(t);
    return true;
}

message_template dialog_message(std::size_t size) {
    // The shape of tests/fixtures/messages/dialog-portal-to-oslo.xml: the portal (Helsenorge.no,
    // HER-id 8093244 under 115851) writes to Oslo's home care (9100110 under 9100100).
    static const char* head =
        R"(<?xml version="1.0" encoding="UTF-8"?>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">
  <MsgInfo>
    <Type V="DIALOG_INNBYGGER_EKONTAKT" DN="Dialog med innbygger - eKontakt"/>
    <MIGversion>v1.2 2006-05-24</MIGversion>
    <GenDate>2026-11-21T10:15:00Z</GenDate>
    <MsgId>)";
    static const char* middle = R"(</MsgId>
    <Ack V="J" DN="Ja"/>
    <Sender>
      <Organisation>
        <OrganisationName>Direktoratet for e-helse</OrganisationName>
        <Ident>
          <Id>115851</Id>
          <TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/>
        </Ident>
        <Organisation>
          <OrganisationName>Helsenorge.no</OrganisationName>
          <Ident>
            <Id>8093244</Id>
            <TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/>
          </Ident>
        </Organisation>
      </Organisation>
    </Sender>
    <Receiver>
      <Organisation>
        <OrganisationName>Oslo kommune</OrganisationName>
        <Ident>
          <Id>9100100</Id>
          <TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/>
        </Ident>
        <Organisation>
          <OrganisationName>Hjemmetjenesten Bydel Grunerlokka</OrganisationName>
          <Ident>
            <Id>9100110</Id>
            <TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/>
          </Ident>
        </Organisation>
      </Organisation>
    </Receiver>
    <Patient>
      <FamilyName>Testesen</FamilyName>
      <GivenName>Ola</GivenName>
      <Ident>
        <Id>01010112345</Id>
        <TypeId V="FNR" DN="Fodselsnummer" S="2.16.578.1.12.4.1.1.8116"/>
      </Ident>
    </Patient>
  </MsgInfo>
  <Document>
    <RefDoc>
      <IssueDate V="2026-11-21T10:15:00Z"/>
      <MsgType V="XML" DN="XML-instans"/>
      <Content>
        <Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23">
          <Foresporsel>
            <TypeForesp V="HE" DN="Henvendelse" S="2.16.578.1.12.4.1.1.7601"/>
            <Sporsmal>)";
    static const char* tail = R"(</Sporsmal>
          </Foresporsel>
        </Dialogmelding>
      </Content>
    </RefDoc>
  </Document>
</MsgHead>
)";
    // The portal lets a citizen write at most 1000 characters (issue 6 enforces it, T99), so the
    // message reaches its size the way a real one does: a short text and an attached PDF (a
    // Base64Container Document, as the portal sends photos and scans).
    static const char* attach_head =
        R"(  <Document>
    <RefDoc>
      <MsgType V="A" DN="Vedlegg"/>
      <MimeType>application/pdf</MimeType>
      <Content>
        <Base64Container xmlns="http://www.kith.no/xmlstds/base64container">)";
    static const char* attach_tail = R"(</Base64Container>
      </Content>
    </RefDoc>
  </Document>
)";
    static const char* end = "</MsgHead>\n";
    message_template t;
    t.doc = head;
    t.msg_id_offset = t.doc.size();
    t.doc.append(msg_id_len, '0');
    t.doc += middle;
    constexpr std::size_t text_bytes = 880;  // fewer than 1000 characters whatever the encoding
    const std::size_t fixed =
        t.doc.size() + std::strlen(tail) + std::strlen(attach_head) + std::strlen(attach_tail);  // tail already ends with end
    if (size < fixed + text_bytes + 64)
        throw std::invalid_argument("message size below " + std::to_string(fixed + text_bytes + 64) + " bytes");
    // Base64 comes in groups of 4; the text takes the 0-3 bytes left over (as trailing spaces).
    const std::size_t b64_len = (size - fixed - text_bytes) / 4 * 4;
    const std::size_t want = size - fixed - b64_len;
    // Fictional text (no patient data), cut on a character boundary, padded with spaces.
    static const std::string_view words =
        "Kan hjemmesykepleien komme litt senere på torsdag? Vi har time hos fastlegen klokken ti. ";
    std::string text;
    while (text.size() < want)
        text += words;
    text.resize(std::min<std::size_t>(want, text_bytes));
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80))
        text.pop_back();
    text.append(want - text.size(), ' ');
    t.doc += text;
    t.doc += tail;
    // The PDF: a real header, then filler, base64 without '=' padding.
    std::string pdf = "%PDF-1.4\n";
    while (pdf.size() < b64_len / 4 * 3)
        pdf += "% fictional scanned letter, page filler\n";
    pdf.resize(b64_len / 4 * 3);
    static constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    t.doc.erase(t.doc.size() - std::strlen("</MsgHead>\n"));  // 'tail' closes MsgHead; reopen after the body
    t.doc += attach_head;
    for (std::size_t i = 0; i < pdf.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(pdf[i]) << 16) | (static_cast<unsigned char>(pdf[i + 1]) << 8) |
                           static_cast<unsigned char>(pdf[i + 2]);
        t.doc += b64[(v >> 18) & 63];
        t.doc += b64[(v >> 12) & 63];
        t.doc += b64[(v >> 6) & 63];
        t.doc += b64[v & 63];
    }
    t.doc += attach_tail;
    t.doc += end;
    return t;
}

bool iequal_prefix(std::string_view line, std::string_view lower_name) {
    if (line.size() < lower_name.size())
        return false;
    for (std::size_t i = 0; i < lower_name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != lower_name[i])
            return false;
    return true;
}

send_result send_some(int fd, std::string_view data, std::size_t& at) {
    while (at < data.size()) {
        const ssize_t n = ::send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
        if (n > 0) {
            at += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return send_result::would_block;
        return send_result::failed;
    }
    return send_result::done;
}

ssize_t recv_retrying(int fd, char* buf, std::size_t size) {
    ssize_t n;
    int tries = 0;
    do
        n = ::recv(fd, buf, size, 0);
    while (n < 0 && errno == EINTR && ++tries < 100);
    return n;
}

void want_output(int ep, int fd, std::uint64_t data, bool on, bool& watching) {
    if (watching == on)
        return;
    epoll_event ev{};
    ev.events = on ? EPOLLIN | EPOLLOUT : EPOLLIN;
    ev.data.u64 = data;
    ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    watching = on;
}

} // namespace bench
