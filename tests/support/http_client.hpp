// Test support: blocking HTTP requests with libcurl, for tests that talk to the broker's API (or to
// an http_receiver). One new connection per call; nothing is shared between calls.
#pragma once

#include "http_receiver.hpp"  // header_map

#include <string>
#include <string_view>
#include <vector>

namespace testing {

struct http_response {
    long status = 0;       ///< 0 when no HTTP answer came (see 'error')
    std::string body;
    header_map headers;    ///< of the final response; lookups ignore case
    std::string error;     ///< libcurl's reason when status == 0, else ""
};

/// Send one request and wait for the answer (at most 30 s). 'headers' are "Name: value" lines.
/// A body is sent for any method when non-empty (and always for POST/PUT/PATCH); no
/// "Expect: 100-continue". Never throws for network errors: status 0 and 'error' say what failed.
http_response http_request(std::string method, std::string url, std::string body = "",
                           std::vector<std::string> headers = {});

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view in);
/// Inverse of base64_encode; whitespace is skipped; throws std::invalid_argument on bad input.
std::string base64_decode(std::string_view in);

} // namespace testing
