// Where tests find the repository, the shared interop material and the built binary.
#pragma once

#include <filesystem>
#include <string>

namespace testing {

inline std::filesystem::path source_dir() { return EDIBROKER_SOURCE_DIR; }
inline std::filesystem::path shared_dir() { return EDIBROKER_SHARED_DIR; }
inline std::filesystem::path interop_dir() { return shared_dir() / "interop"; }
inline std::filesystem::path broker_binary() { return EDIBROKER_BINARY; }

/// True if ../shared/interop is present. When not, tests that need it print why and skip.
bool have_interop();

/// Read a whole file (throws std::runtime_error if it cannot).
std::string read_file(const std::filesystem::path& p);

/// A fresh empty directory under the build tree's temp area, removed by the destructor.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

} // namespace testing
