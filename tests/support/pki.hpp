// Test support: a throw-away PKI made at test time with the OpenSSL API — a CA, a server
// certificate for 127.0.0.1/localhost and a client certificate, all PEM files in a folder.
// Keys are EC P-256 (fast to generate). Nothing is read from or written to anywhere else.
#pragma once

#include <filesystem>
#include <string>

namespace testing::pki {

struct files {
    std::filesystem::path ca_cert;      ///< the CA's certificate (trust anchor for both sides)
    std::filesystem::path server_cert;  ///< CN=127.0.0.1, SAN IP:127.0.0.1 + DNS:localhost, serverAuth
    std::filesystem::path server_key;
    std::filesystem::path client_cert;  ///< CN=<client_cn>, clientAuth
    std::filesystem::path client_key;
    std::string client_cn;
};

/// Generate a fresh CA and the two certificates it signs into 'dir' (created if missing), valid
/// from an hour ago for a day. Throws std::runtime_error with OpenSSL's reason on failure.
files generate(const std::filesystem::path& dir, const std::string& client_cn = "edibroker-test-client");

} // namespace testing::pki
