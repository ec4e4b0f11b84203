//! `send-messages`: delivers the outbox's next batch to every destination.
//!
//! In: nothing (scheduled). Out: a [`Report`] of what was selected, delivered, refused and
//! expired, per destination.
//!
//! 1. Messages older than `max-age` are expired (kept in the file, counted, logged).
//! 2. Up to `batch` due messages are taken in the manifest's `order` (oldest first by
//!    default; a message backing off after a refusal waits its turn).
//! 3. Each destination gets the messages it does not have yet, in that order; every outcome
//!    is stored as one acoupi `response`. A refusal backs that message off (and expires it at
//!    `max-attempts`); the rest go on. An unreachable destination (connection refused, DNS,
//!    TLS, timeout) ends that destination's share of the run: one failed response is stored
//!    for the message it was sending, and the others wait, unharmed, for the next run. The
//!    other destination still gets its share.
//! 4. A message is sent once every destination has it.
//!
//! Network errors never fail the task: they are outcomes. The task fails only when the outbox
//! cannot be read or written (retried) or a destination cannot be set up from the program (an
//! unset secret: dead-lettered, and the next scheduled run tries again).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{TaskContext, TaskError, TaskFuture};
use crate::messaging::{Outcome, Outgoing};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    /// Messages taken from the outbox.
    pub selected: usize,
    /// Messages now sent to every destination.
    pub sent: u64,
    /// Deliveries refused by a destination (backing off).
    pub refused: u64,
    /// Messages expired by this run (too old, or refused too often).
    pub expired: u64,
    /// Per destination: messages delivered, and the error that made it unreachable, if any.
    pub destinations: BTreeMap<String, DestinationReport>,
}

/// One destination's share of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct DestinationReport {
    /// Messages it acknowledged.
    pub delivered: u64,
    /// Messages it refused.
    pub refused: u64,
    /// Why it could not be reached, when it could not.
    pub unreachable: Option<String>,
}

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let report = send(&ctx).await?;
        serde_json::to_value(&report).map_err(|e| TaskError::Permanent(e.to_string()))
    })
}

/// One run of the task.
pub(crate) async fn send(ctx: &TaskContext) -> Result<Report, TaskError> {
    let services = &ctx.services;
    let Some(messaging) = services.program.messaging.clone() else {
        return Ok(Report::default());
    };
    let messengers = services.messengers()?;
    let now = services.clock.now();
    let mut report = Report::default();

    let max_age =
        SignedDuration::from_millis(i64::try_from(messaging.max_age_ms).unwrap_or(i64::MAX));
    let cutoff = now.checked_sub(max_age).unwrap_or(Timestamp::MIN);
    report.expired = services
        .with_outbox(move |o, _| o.expire_before(cutoff, now))
        .await?;
    if report.expired > 0 {
        tracing::warn!(
            expired = report.expired,
            max_age_ms = messaging.max_age_ms,
            "messages older than the maximum age expired unsent"
        );
    }

    let (limit, order) = (messaging.batch as usize, messaging.order);
    let batch = services
        .with_outbox(move |o, _| o.due(now, limit, order))
        .await?;
    report.selected = batch.len();
    let names: Vec<String> = messengers.iter().map(|m| m.name().to_owned()).collect();

    // Messages every present destination already has (a destination was removed since).
    let covered: Vec<uuid::Uuid> = batch
        .iter()
        .filter(|q| names.iter().all(|n| q.delivered_to.contains(n)))
        .map(|q| q.id)
        .collect();
    if !covered.is_empty() {
        report.sent += services
            .with_outbox(move |o, _| o.mark_sent(&covered, now))
            .await?;
    }

    for messenger in messengers.iter() {
        let name = messenger.name().to_owned();
        let share: Vec<Outgoing> = batch
            .iter()
            .filter(|q| !q.delivered_to.contains(&name))
            .map(|q| Outgoing {
                id: q.id,
                kind: q.kind,
                content: q.content.clone(),
            })
            .collect();
        if share.is_empty() {
            continue;
        }
        let outcomes = messenger.send(&share).await;
        let mut mine = DestinationReport::default();
        let mut recorded: Vec<(uuid::Uuid, Outcome)> = Vec::with_capacity(outcomes.len());
        for (message, outcome) in share.iter().zip(outcomes) {
            match &outcome {
                Outcome::Delivered(_) => mine.delivered += 1,
                Outcome::Refused { .. } => mine.refused += 1,
                Outcome::Unreachable { detail, .. } => {
                    // Only the message being sent when the destination failed was attempted.
                    if mine.unreachable.is_some() {
                        continue;
                    }
                    mine.unreachable = Some(detail.clone());
                }
            }
            recorded.push((message.id, outcome));
        }
        let all: Vec<String> = names.clone();
        let max_attempts = messaging.max_attempts;
        let destination = name.clone();
        let tally = services
            .with_outbox(move |o, _| {
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                o.record(&destination, &recorded, &all, now, max_attempts)
            })
            .await?;
        report.sent += tally.sent;
        report.refused += tally.refused;
        report.expired += tally.expired;
        match &mine.unreachable {
            Some(cause) => tracing::warn!(
                destination = %name,
                delivered = mine.delivered,
                waiting = share.len() as u64 - mine.delivered - mine.refused,
                %cause,
                "destination unreachable; its messages wait for the next run"
            ),
            None => tracing::info!(
                destination = %name,
                delivered = mine.delivered,
                refused = mine.refused,
                "messages sent"
            ),
        }
        if tally.expired > 0 {
            tracing::warn!(
                destination = %name,
                expired = tally.expired,
                max_attempts,
                "messages refused too often expired unsent"
            );
        }
        report.destinations.insert(name, mine);
    }
    Ok(report)
}
