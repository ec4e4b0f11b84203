//! A summary of the store's health, for `acoupi db info`.
//!
//! In: an open store. Out: [`Info`]: the path, both schema versions, the journal mode, the
//! size, the row count of every table, and SQLite's `integrity_check` verdict. Reads only.

use camino::Utf8PathBuf;
use serde::Serialize;

use super::schema::{self, ACOUPI_TABLE_NAMES};
use super::{Error, Store};

/// What `acoupi db info` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Info {
    /// The file.
    pub path: Utf8PathBuf,
    /// Our schema version (0 for a file only acoupi has written).
    pub schema_version: i64,
    /// acoupi's `PRAGMA user_version`.
    pub user_version: i64,
    /// `wal` for a file we wrote, `delete` for one only acoupi wrote.
    pub journal_mode: String,
    /// Size of the database in bytes (pages times page size, without the WAL file).
    pub size_bytes: u64,
    /// Rows per table: acoupi's, then ours.
    pub tables: Vec<TableCount>,
    /// `ok`, or the problems `PRAGMA integrity_check` found.
    pub integrity: Vec<String>,
}

/// The number of rows of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
}

impl Info {
    /// The row count of `table`, if it is listed.
    pub fn count(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map(|t| t.rows)
    }

    /// Whether the integrity check passed.
    pub fn is_ok(&self) -> bool {
        self.integrity == ["ok"]
    }
}

impl Store {
    /// The store's versions, size, row counts and integrity (a full read of the file).
    pub fn info(&self) -> Result<Info, Error> {
        let run = || -> rusqlite::Result<Info> {
            let versions = schema::versions(&self.conn)?;
            let pragma = |name: &str| -> rusqlite::Result<i64> {
                self.conn
                    .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            };
            let size = pragma("page_count")? * pragma("page_size")?;
            let journal_mode: String = self
                .conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let mut tables = Vec::new();
            for table in ACOUPI_TABLE_NAMES
                .iter()
                .chain(&["acoupi_rs_recording", "acoupi_rs_model_output"])
            {
                let rows: i64 =
                    self.conn
                        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                tables.push(TableCount {
                    table: (*table).to_owned(),
                    rows: u64::try_from(rows).unwrap_or(0),
                });
            }
            let integrity = integrity_check(&self.conn)?;
            Ok(Info {
                path: self.path.clone(),
                schema_version: versions.schema,
                user_version: versions.user,
                journal_mode,
                size_bytes: u64::try_from(size).unwrap_or(0),
                tables,
                integrity,
            })
        };
        run().map_err(|e| self.error(e))
    }
}

/// The problems `PRAGMA integrity_check` reports, or `["ok"]`. SQLite may stop the check part
/// way with a corruption error of its own when a page is damaged badly enough; that error is
/// one more problem found, kept with those reported before it, not a failure of the report.
fn integrity_check(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let mut rows = stmt.query([])?;
    let mut problems = Vec::new();
    loop {
        match rows.next() {
            Ok(Some(row)) => problems.push(row.get::<_, String>(0)?),
            Ok(None) => return Ok(problems),
            Err(rusqlite::Error::SqliteFailure(e, message))
                if e.code == rusqlite::ErrorCode::DatabaseCorrupt =>
            {
                problems.push(message.unwrap_or_else(|| e.to_string()));
                return Ok(problems);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SCHEMA_VERSION;
    use crate::store::fixtures::{output, recording, temp_path};

    #[test]
    fn info_counts_rows_and_checks_integrity() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        let r = recording(0);
        store.insert_recording(&r, Some("t")).expect("recording");
        store
            .insert_model_output(&output(&r, 1, 3))
            .expect("output");
        drop(store);
        let info = Store::open_read_only(&path)
            .expect("open")
            .info()
            .expect("info");
        assert_eq!(info.path, path);
        assert_eq!(info.schema_version, i64::from(SCHEMA_VERSION));
        assert_eq!(info.user_version, 1);
        assert_eq!(info.journal_mode, "wal");
        assert!(info.is_ok(), "{:?}", info.integrity);
        let counts: Vec<(&str, u64)> = info
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.rows))
            .collect();
        assert_eq!(
            counts,
            [
                ("deployment", 1),
                ("recording", 1),
                ("model_output", 1),
                ("detection", 3),
                ("predicted_tag", 5),
                ("acoupi_rs_recording", 1),
                ("acoupi_rs_model_output", 1)
            ]
        );
    }
}
