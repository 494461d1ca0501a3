#include "broker/adapter.hpp"
namespace broker::adapters {
void register_pull(adapter_registry&) {}
}
