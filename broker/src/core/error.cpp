#include "broker/error.hpp"
#include "broker/message.hpp"

#include <stdexcept>

namespace broker {

void throw_exception_from_error(error const& e, boost::source_location const&) {
    throw std::runtime_error(e.where());
}

std::string message_facts::apprec_version() const {
    if (root_ns == ns::apprec_1_0)
        return "1.0";
    if (root_ns == ns::apprec_1_1)
        return "1.1";
    return {};
}

std::string message_facts::dialog_version() const {
    if (content_ns == ns::dialog_1_0)
        return "1.0";
    if (content_ns == ns::dialog_1_1)
        return "1.1";
    return {};
}

} // namespace broker
