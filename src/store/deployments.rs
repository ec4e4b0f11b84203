//! Deployments: the `deployment` table.
//!
//! In: a `spec::data::Deployment`. Out: the row written (inserted, or its name, place and end
//! updated), and the current deployment read back: the one with the latest `started_on`, as
//! acoupi picks it. Unlike acoupi, reading never creates a deployment.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{Error, Store};
use crate::spec::data::Deployment;
use crate::spec::isotime;

/// The columns [`from_row`] reads, in its order.
pub(super) const COLUMNS: &str = "id, name, latitude, longitude, started_on, ended_on";

impl Store {
    /// Inserts `deployment`, or updates the name, location and end of the row with its id.
    /// `started_on` is the deployment's identity in acoupi (it is UNIQUE) and is never changed.
    pub fn upsert_deployment(&mut self, deployment: &Deployment) -> Result<(), Error> {
        upsert(&self.conn, deployment).map_err(|e| self.error(e))
    }

    /// The deployment that started last, if any.
    pub fn current_deployment(&self) -> Result<Option<Deployment>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM deployment ORDER BY started_on DESC LIMIT 1");
        let raw = self
            .conn
            .query_row(&sql, [], RawDeployment::read)
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(|r| r.decode(self)).transpose()
    }

    /// The deployment with `id`, if any.
    pub fn deployment(&self, id: Uuid) -> Result<Option<Deployment>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM deployment WHERE id = ?1");
        let raw = self
            .conn
            .query_row(&sql, [id.as_bytes().as_slice()], RawDeployment::read)
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(|r| r.decode(self)).transpose()
    }
}

pub(super) fn upsert(conn: &Connection, d: &Deployment) -> rusqlite::Result<()> {
    insert(
        conn,
        d,
        "DO UPDATE SET name = excluded.name, latitude = excluded.latitude, \
         longitude = excluded.longitude, ended_on = excluded.ended_on",
    )
}

/// Inserts `d` unless a deployment with its id exists (what acoupi does for a recording's).
pub(super) fn insert_if_missing(conn: &Connection, d: &Deployment) -> rusqlite::Result<()> {
    insert(conn, d, "DO NOTHING")
}

/// Inserts `d`, doing `on_conflict` when its id is taken.
fn insert(conn: &Connection, d: &Deployment, on_conflict: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO deployment (id, started_on, name, latitude, longitude, ended_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) {on_conflict}"
    ))?
    .execute(params![
        d.id.as_bytes().as_slice(),
        isotime::isoformat(d.started_on),
        d.name,
        d.latitude,
        d.longitude,
        d.ended_on.map(isotime::isoformat),
    ])?;
    Ok(())
}

/// A deployment row as stored, before its id and times are decoded.
pub(super) struct RawDeployment {
    id: Vec<u8>,
    name: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    started_on: String,
    ended_on: Option<String>,
}

impl RawDeployment {
    /// Reads [`COLUMNS`] starting at column `at`.
    pub(super) fn read_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(RawDeployment {
            id: row.get(at)?,
            name: row.get(at + 1)?,
            latitude: row.get(at + 2)?,
            longitude: row.get(at + 3)?,
            started_on: row.get(at + 4)?,
            ended_on: row.get(at + 5)?,
        })
    }

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Self::read_at(row, 0)
    }

    pub(super) fn decode(self, store: &Store) -> Result<Deployment, Error> {
        Ok(Deployment {
            id: store.uuid(&self.id, "deployment.id")?,
            name: self.name,
            latitude: self.latitude,
            longitude: self.longitude,
            started_on: store.time(&self.started_on, "deployment.started_on")?,
            ended_on: self
                .ended_on
                .map(|t| store.time(&t, "deployment.ended_on"))
                .transpose()?,
        })
    }
}

impl Store {
    /// A stored 16-byte id.
    pub(super) fn uuid(&self, bytes: &[u8], column: &str) -> Result<Uuid, Error> {
        Uuid::from_slice(bytes).map_err(|_| Error::BadValue {
            path: self.path.clone(),
            detail: format!("`{column}` is {} bytes, not a 16-byte UUID", bytes.len()),
        })
    }

    /// A stored time.
    pub(super) fn time(&self, text: &str, column: &str) -> Result<jiff::Timestamp, Error> {
        isotime::parse_iso(text).map_err(|detail| Error::BadValue {
            path: self.path.clone(),
            detail: format!("`{column}`: {detail}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{deployment, t0, temp_path};
    use jiff::SignedDuration;

    #[test]
    fn upsert_inserts_then_updates_and_the_latest_start_is_current() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        assert_eq!(store.current_deployment().expect("query"), None);
        let mut first = deployment();
        store.upsert_deployment(&first).expect("insert");
        assert_eq!(
            store.current_deployment().expect("query"),
            Some(first.clone())
        );
        first.name = "renamed".into();
        first.ended_on = Some(t0() + SignedDuration::from_hours(24));
        store.upsert_deployment(&first).expect("update");
        assert_eq!(
            store.deployment(first.id).expect("query"),
            Some(first.clone())
        );
        let second = Deployment {
            id: Uuid::from_u128(0xe),
            name: "second".into(),
            latitude: None,
            longitude: None,
            started_on: t0() + SignedDuration::from_hours(48),
            ended_on: None,
        };
        store.upsert_deployment(&second).expect("insert");
        assert_eq!(store.current_deployment().expect("query"), Some(second));
    }

    #[test]
    fn two_deployments_cannot_start_at_the_same_time() {
        let (_d, path) = temp_path();
        let mut store = Store::open(&path).expect("open");
        store.upsert_deployment(&deployment()).expect("insert");
        let mut twin = deployment();
        twin.id = Uuid::from_u128(0xf);
        let err = store.upsert_deployment(&twin).expect_err("same started_on");
        assert!(matches!(err, Error::Constraint { .. }), "{err}");
        assert!(err.to_string().contains("deployment.started_on"), "{err}");
    }
}
