#include "xml/detail.hpp"

#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/regx/RegularExpression.hpp>

#include <mutex>
#include <stdexcept>

namespace broker::xml {

namespace xc = XERCES_CPP_NAMESPACE;

void detail::prewarm_regex() {
    // Xerces shares the character-class RangeTokens of \d, \w, \s, \i, \c, \p{..} between all
    // compiled patterns of all grammar pools and builds each one's lookup bitmap lazily, without a
    // lock, on first match (limits.md: "RangeToken::doCreateMap(): Assertion '!fMap' failed").
    // Matching once here, single-threaded, builds the bitmaps our schemas' patterns use (the OID
    // pattern uses \d), plus the other escapes for good measure. Each validator also validates a
    // small sample under a lock when it is built (validator.cpp).
    static const char* const patterns[] = {"\\d+(\\.\\d+)*", "\\D", "\\w", "\\W", "\\s", "\\S", "\\i\\c*", "\\I\\C"};
    static const char* const inputs[] = {"1.2", "a", "a", ".", " ", "x", "a1", "1."};
    for (std::size_t i = 0; i < sizeof patterns / sizeof *patterns; ++i) {
        xc::RegularExpression re(patterns[i], "X");
        (void)re.matches(inputs[i]);
        (void)re.matches("\xC3\xA6.9 z");  // a non-ASCII character too
    }
}

void platform_init() {
    static std::once_flag once;
    // call_once: if Initialize throws, the next call tries again.
    std::call_once(once, [] {
        try {
            xc::XMLPlatformUtils::Initialize();
            detail::prewarm_regex();
        } catch (const xc::XMLException& e) {
            throw std::runtime_error("xerces initialisation failed: " + detail::to_utf8(e.getMessage()));
        } catch (const xc::OutOfMemoryException&) {
            throw std::runtime_error("xerces initialisation failed: out of memory");
        }
    });
}

const char* apprec_code(verdict v) noexcept {
    switch (v) {
    case verdict::valid:
        return "";
    case verdict::not_well_formed:
        return "T01";
    case verdict::invalid:
        return "T02";
    case verdict::unsupported:
        return "T10";
    }
    return "T99";
}

} // namespace broker::xml
