// The store's schema: the ordered list of forward migrations and the column list shared by every
// query that reads a message_row.
#pragma once

#include "broker/error.hpp"
#include "broker/store.hpp"

#include <sqlite3.h>

namespace broker::store::detail {

/// The newest schema version this binary knows (the number of migrations).
int latest_schema_version();

/// Bring the database on 'db' to latest_schema_version() in one IMMEDIATE transaction, recording
/// each applied migration in schema_version. Returns the resulting version.
/// Errors: store.schema when the database is newer than this binary; store.sql/store.io otherwise.
/// Runs on: the opening thread, before the writer thread starts.
result<int> migrate(sqlite3* db);

/// The columns of message_row, comma-separated, for "SELECT <this> FROM messages ...".
extern const char* const message_columns;

/// Fill a message_row from the current row of a statement that selected message_columns.
message_row read_message_row(sqlite3_stmt* s);

} // namespace broker::store::detail
