// Files compiled into the binary (the XSDs of schemas/).
#pragma once

#include <span>
#include <string_view>

namespace broker {

struct embedded_file {
    std::string_view name;     ///< file name without directory, e.g. "MsgHead-v1_2.xsd"
    std::string_view content;  ///< the file's bytes
};

namespace schemas {
/// Every XSD of schemas/, as built into this binary.
std::span<const embedded_file> files() noexcept;
} // namespace schemas

} // namespace broker
