#include "broker/adapter.hpp"
namespace broker::adapters {
void register_http_push(adapter_registry&) {}
}
