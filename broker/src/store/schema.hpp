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

/// Since schema 7 a message's first transitions (received, validated, routed, recorded at the same
/// time by intake) are one row of transitions: their states, and their details, joined by this
/// character (which no state, rule id or error code contains). The reader splits such a row back
/// into the transitions it stands for; rows written before schema 7 are one transition each.
inline constexpr char transition_separator = '\x1f';

/// The columns of message_row, comma-separated, for "SELECT <this> FROM messages ...".
extern const char* const message_columns;

/// Fill a message_row from the current row of a statement that selected message_columns.
message_row read_message_row(sqlite3_stmt* s);

} // namespace broker::store::detail
