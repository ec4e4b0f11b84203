//! The outbox: the SQLite message store every message goes through before it is sent.
//!
//! In: messages the tasks build (detections, kept recordings, heartbeats, summaries) and what
//! each destination made of each delivery. Out: the next batch to send, in the program's
//! order; which recordings still have messages to send (retention keeps those files); the
//! backlog for heartbeats and `acoupi status`.
//!
//! The file holds acoupi 0.8's `message` and `response` tables (acoupi's `SqliteMessageStore`
//! reads it: a message is unsent to acoupi while it has no response with status 0), plus ours
//! ([`schema`]). A message is **sent** when every destination has acknowledged it; each
//! attempt at each destination is one acoupi `response` row. Two kinds of failure:
//! - **refused**: a destination answered and said no (an HTTP 500, a payload too large). The
//!   message backs off on its own ([`backoff_ms`]: 30 s, doubling, at most an hour) and is
//!   **expired** after `max_attempts` refusals;
//! - **unreachable**: no answer (connection refused, DNS, timeout): not the message's fault,
//!   so it costs no attempt and no backoff. A sensor offline for a week delivers everything,
//!   oldest first, once its network is back.
//!
//! Messages older than the maximum age are expired whatever happened ([`Outbox::expire_before`]).
//! Expired messages stay in the file, counted and reported, never silently dropped.

mod schema;

use std::collections::HashSet;

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use uuid::Uuid;

pub use schema::OUTBOX_SCHEMA_VERSION;

use super::{Error, classify, connect, open_writable};
use crate::messaging::{MessageKind, Outcome};
use crate::spec::MessageOrder;
use crate::spec::isotime;

/// First backoff after a refusal.
pub const BACKOFF_BASE_MS: u64 = 30_000;
/// Longest backoff after refusals.
pub const BACKOFF_MAX_MS: u64 = 3_600_000;
/// Longest response text stored per attempt.
const RESPONSE_TEXT_MAX: usize = 2048;

/// How long a message waits after its `refusals`-th refusal: 30 s, 1 min, 2 min … 1 h.
pub fn backoff_ms(refusals: u32) -> u64 {
    let doublings = refusals.saturating_sub(1).min(20);
    BACKOFF_BASE_MS
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX_MS)
}

/// A message to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Its id: derived from what it is about, so building it twice stores it once.
    pub id: Uuid,
    /// What it carries.
    pub kind: MessageKind,
    /// The payload (JSON).
    pub content: String,
    /// When it was made.
    pub created_on: Timestamp,
    /// The recording it is about, if any: retention keeps that file until it is sent.
    pub recording: Option<Uuid>,
}

/// A message waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Its id.
    pub id: Uuid,
    /// Its type (`None` for a message acoupi stored without one).
    pub kind: Option<MessageKind>,
    /// The payload.
    pub content: Vec<u8>,
    /// When it was made.
    pub created_on: Timestamp,
    /// The destinations that already have it.
    pub delivered_to: Vec<String>,
}

/// What the outbox holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Messages not yet sent to every destination (and not expired).
    pub unsent: u64,
    /// Messages given up on.
    pub expired: u64,
    /// When the oldest unsent message was made.
    pub oldest_unsent: Option<Timestamp>,
}

/// What [`Outbox::record`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Messages now sent to every destination.
    pub sent: u64,
    /// Deliveries refused by the destination.
    pub refused: u64,
    /// Messages expired by this record (their last refusal allowed).
    pub expired: u64,
}

/// The message store.
#[derive(Debug)]
pub struct Outbox {
    conn: Connection,
    path: Utf8PathBuf,
}

impl Outbox {
    /// Frees what the connection caches (see [`crate::store::release_memory`]).
    pub fn release_memory(&self) {
        super::release_memory(&self.conn);
    }

    /// Opens (creating it and its directory if needed) the outbox at `path`, migrating it, and
    /// adopts the messages acoupi (or an older file) stored without our state: unsent ones
    /// become pending.
    pub fn open(path: &Utf8Path) -> Result<Outbox, Error> {
        let mut conn = open_writable(path, |conn| schema::check(conn, path))?;
        schema::migrate(&mut conn, path)?;
        let mut outbox = Outbox {
            conn,
            path: path.to_owned(),
        };
        outbox.adopt()?;
        Ok(outbox)
    }

    /// Opens an existing outbox for reading only (`acoupi status`); nothing is written.
    pub fn open_read_only(path: &Utf8Path) -> Result<Outbox, Error> {
        if !path.exists() {
            return Err(Error::Missing {
                path: path.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let outbox = Outbox {
            conn: connect(path, flags)?,
            path: path.to_owned(),
        };
        schema::check(&outbox.conn, path)?;
        for (present, table) in [
            (schema::has_messages(&outbox.conn), "message"),
            (schema::has_ours(&outbox.conn), "acoupi_rs_message"),
        ] {
            if !present.map_err(|e| outbox.error(e))? {
                return Err(Error::NotAStore {
                    path: path.to_owned(),
                    table,
                });
            }
        }
        Ok(outbox)
    }

    /// The file.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    fn error(&self, e: rusqlite::Error) -> Error {
        classify(&self.path, e)
    }

    /// Gives every message of acoupi's table without a row of ours one: pending unless acoupi
    /// recorded a successful response.
    fn adopt(&mut self) -> Result<u64, Error> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let orphans: Vec<(Vec<u8>, String, bool)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT m.id, m.created_on,
                        EXISTS (SELECT 1 FROM response r WHERE r.message_id = m.id AND r.status = 0)
                     FROM message m
                     WHERE NOT EXISTS (SELECT 1 FROM acoupi_rs_message a WHERE a.message_id = m.id)",
                )
                .map_err(err)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?
        };
        let now = Timestamp::now().as_microsecond();
        let mut insert = tx
            .prepare(
                "INSERT OR IGNORE INTO acoupi_rs_message (message_id, created_us, state, done_us)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(err)?;
        for (id, created_on, sent) in &orphans {
            let created = isotime::parse_iso(created_on).map_or(now, |t| t.as_microsecond());
            let (state, done) = if *sent { (1, Some(now)) } else { (0, None) };
            insert
                .execute(params![id, created, state, done])
                .map_err(err)?;
        }
        drop(insert);
        tx.commit().map_err(err)?;
        Ok(orphans.len() as u64)
    }

    /// Adds `messages` in one transaction. A message whose id is already stored is left as it
    /// is (a task run twice builds the same ids). Returns how many were new.
    pub fn push(&mut self, messages: &[NewMessage]) -> Result<usize, Error> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut added = 0;
        {
            let mut message = tx
                .prepare(
                    "INSERT OR IGNORE INTO message (id, content, created_on, message_type)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            let mut ours = tx
                .prepare(
                    "INSERT OR IGNORE INTO acoupi_rs_message (message_id, created_us, recording_id)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            for m in messages {
                let n = message
                    .execute(params![
                        m.id,
                        m.content.as_bytes(),
                        message_time(m.created_on),
                        m.kind.as_str()
                    ])
                    .map_err(err)?;
                if n > 0 {
                    ours.execute(params![m.id, m.created_on.as_microsecond(), m.recording])
                        .map_err(err)?;
                    added += 1;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// Expires the pending messages made before `cutoff` (the maximum age); returns how many.
    pub fn expire_before(&mut self, cutoff: Timestamp, now: Timestamp) -> Result<u64, Error> {
        let n = self
            .conn
            .execute(
                "UPDATE acoupi_rs_message
                 SET state = 2, done_us = ?2,
                     last_error = COALESCE(last_error || '; ', '') || 'older than the maximum age'
                 WHERE state = 0 AND created_us < ?1",
                params![cutoff.as_microsecond(), now.as_microsecond()],
            )
            .map_err(|e| self.error(e))?;
        Ok(n as u64)
    }

    /// Up to `limit` pending messages whose backoff has passed at `now`, in `order` of their
    /// creation (ties by id), with the destinations that already have each.
    pub fn due(
        &self,
        now: Timestamp,
        limit: usize,
        order: MessageOrder,
    ) -> Result<Vec<Queued>, Error> {
        let err = |e| self.error(e);
        let sql = format!(
            "SELECT m.id, m.message_type, m.content, a.created_us
             FROM acoupi_rs_message a JOIN message m ON m.id = a.message_id
             WHERE a.state = 0 AND a.next_attempt_us <= ?1
             ORDER BY a.created_us {dir}, a.message_id {dir}
             LIMIT ?2",
            dir = match order {
                MessageOrder::OldestFirst => "ASC",
                MessageOrder::NewestFirst => "DESC",
            }
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![now.as_microsecond(), limit], |r| {
                let kind: Option<String> = r.get(1)?;
                let created: i64 = r.get(3)?;
                Ok(Queued {
                    id: r.get(0)?,
                    kind: kind.as_deref().and_then(MessageKind::from_name),
                    content: r.get(2)?,
                    created_on: Timestamp::from_microsecond(created)
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                    delivered_to: Vec::new(),
                })
            })
            .map_err(err)?;
        let mut queued: Vec<Queued> = rows.collect::<Result<_, _>>().map_err(err)?;
        let mut delivered = self
            .conn
            .prepare_cached("SELECT destination FROM acoupi_rs_delivery WHERE message_id = ?1")
            .map_err(err)?;
        for q in &mut queued {
            q.delivered_to = delivered
                .query_map([q.id], |r| r.get(0))
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
        }
        Ok(queued)
    }

    /// Records what `destination` made of each message, in one transaction: one acoupi
    /// `response` row per outcome; a delivery marks the message sent once every one of
    /// `destinations` has it; a refusal backs the message off, and expires it at
    /// `max_attempts` refusals; an unreachable destination only notes the error.
    pub fn record(
        &mut self,
        destination: &str,
        outcomes: &[(Uuid, Outcome)],
        destinations: &[&str],
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Tally, Error> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let now_us = now.as_microsecond();
        let received_on = message_time(now);
        let tx = self.conn.transaction().map_err(err)?;
        let mut tally = Tally::default();
        {
            let mut response = tx
                .prepare(
                    "INSERT INTO response (content, message_id, status, received_on)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            let mut delivery = tx
                .prepare(
                    "INSERT OR IGNORE INTO acoupi_rs_delivery (message_id, destination, delivered_us)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            let mut delivered_to = tx
                .prepare("SELECT destination FROM acoupi_rs_delivery WHERE message_id = ?1")
                .map_err(err)?;
            let mut sent = tx
                .prepare(
                    "UPDATE acoupi_rs_message SET state = 1, done_us = ?2, last_error = NULL
                     WHERE message_id = ?1 AND state = 0",
                )
                .map_err(err)?;
            let mut refused = tx
                .prepare(
                    "UPDATE acoupi_rs_message SET refusals = refusals + 1, last_error = ?2
                     WHERE message_id = ?1 AND state = 0
                     RETURNING refusals",
                )
                .map_err(err)?;
            let mut backoff = tx
                .prepare(
                    "UPDATE acoupi_rs_message SET next_attempt_us = ?2,
                        state = CASE WHEN ?3 THEN 2 ELSE state END,
                        done_us = CASE WHEN ?3 THEN ?4 ELSE done_us END
                     WHERE message_id = ?1",
                )
                .map_err(err)?;
            let mut unreachable = tx
                .prepare(
                    "UPDATE acoupi_rs_message SET last_error = ?2 WHERE message_id = ?1 AND state = 0",
                )
                .map_err(err)?;
            for (id, outcome) in outcomes {
                let text = response_text(destination, outcome.detail());
                response
                    .execute(params![text, id, outcome.status().code(), received_on])
                    .map_err(err)?;
                match outcome {
                    Outcome::Delivered(_) => {
                        delivery
                            .execute(params![id, destination, now_us])
                            .map_err(err)?;
                        let have: HashSet<String> = delivered_to
                            .query_map([id], |r| r.get(0))
                            .map_err(err)?
                            .collect::<Result<_, _>>()
                            .map_err(err)?;
                        if destinations.iter().all(|d| have.contains(*d))
                            && sent.execute(params![id, now_us]).map_err(err)? > 0
                        {
                            tally.sent += 1;
                        }
                    }
                    Outcome::Refused { .. } => {
                        let n: Option<u32> = refused
                            .query_row(params![id, text], |r| r.get(0))
                            .optional()
                            .map_err(err)?;
                        if let Some(n) = n {
                            tally.refused += 1;
                            let expire = n >= max_attempts;
                            let next = now_us.saturating_add(
                                i64::try_from(backoff_ms(n) * 1000).unwrap_or(i64::MAX),
                            );
                            backoff
                                .execute(params![id, next, expire, now_us])
                                .map_err(err)?;
                            if expire {
                                tally.expired += 1;
                            }
                        }
                    }
                    Outcome::Unreachable { .. } => {
                        unreachable.execute(params![id, text]).map_err(err)?;
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(tally)
    }

    /// Marks sent the pending messages among `ids` (every destination the program now has
    /// already has them: a destination was removed from the manifest). Returns how many.
    pub fn mark_sent(&mut self, ids: &[Uuid], now: Timestamp) -> Result<u64, Error> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare(
                    "UPDATE acoupi_rs_message SET state = 1, done_us = ?2
                     WHERE message_id = ?1 AND state = 0",
                )
                .map_err(err)?;
            for id in ids {
                n += stmt
                    .execute(params![id, now.as_microsecond()])
                    .map_err(err)? as u64;
            }
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }

    /// The backlog: unsent and expired counts, and the oldest unsent message's time.
    pub fn backlog(&self) -> Result<Backlog, Error> {
        let err = |e| self.error(e);
        let (unsent, oldest): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(created_us) FROM acoupi_rs_message WHERE state = 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        let expired: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM acoupi_rs_message WHERE state = 2",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(Backlog {
            unsent: unsent.unsigned_abs(),
            expired: expired.unsigned_abs(),
            oldest_unsent: oldest.and_then(|us| Timestamp::from_microsecond(us).ok()),
        })
    }

    /// The recordings with messages still to send.
    pub fn recordings_with_unsent(&self) -> Result<HashSet<Uuid>, Error> {
        let err = |e| self.error(e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT recording_id FROM acoupi_rs_message
                 WHERE state = 0 AND recording_id IS NOT NULL",
            )
            .map_err(err)?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        Ok(ids)
    }
}

/// A time as acoupi's message store writes it: `isoformat(sep=" ")`.
fn message_time(t: Timestamp) -> String {
    isotime::isoformat(t).replacen('T', " ", 1)
}

/// The response content stored for one attempt: the destination and what it said.
fn response_text(destination: &str, detail: &str) -> String {
    let mut text = format!("{destination}: {detail}");
    if text.len() > RESPONSE_TEXT_MAX {
        let mut end = RESPONSE_TEXT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests;
