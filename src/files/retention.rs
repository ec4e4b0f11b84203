//! The storage policy, pure: which kept recordings a `retention` block deletes, and how many
//! bytes the staging directory may hold.
//!
//! In: the program's [`spec::Retention`], every kept recording under `paths.recordings` as a
//! [`Kept`], the recordings file system's [`FsUsage`] and the time now. Out: a [`Plan`], the
//! [`Deletion`]s in the order to carry them out, each with its [`Reason`], and the bytes still
//! over the usage limit when the recordings that may be deleted are not enough. Nothing here
//! touches a file or the store; the caller lists, deletes and records.
//!
//! The rules, in order:
//!
//! 1. **Protected** recordings are never deleted: those with messages still to send, and the
//!    newest `keep_newest.n` recordings of each value of the tag key `keep_newest.per_tag_key`
//!    (a recording tagged with several values is protected when it is among the newest of any
//!    of them; a recording without that key is not protected by this rule).
//! 2. **Age**: every unprotected recording that started more than `max_age_ms` before now.
//! 3. **Usage**: while the projected usage (after the deletions so far) is above the limit,
//!    the oldest unprotected recording left. With a percentage the usage is the file system's
//!    used bytes against that share of its size; with a size it is the kept recordings' total
//!    bytes against that size.
//!
//! Order is deterministic whatever the input order: oldest first by start time, then by id.

use camino::Utf8PathBuf;
use jiff::Timestamp;
use uuid::Uuid;

use crate::spec::{Retention, Usage};

/// The staging budget when the manifest gives none: this share of the staging file system.
pub const DEFAULT_STAGING_PERCENT: u8 = 25;

/// A kept recording, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The recording's id.
    pub id: Uuid,
    /// Its audio file.
    pub path: Utf8PathBuf,
    /// When it started.
    pub start: Timestamp,
    /// Its file's size.
    pub bytes: u64,
    /// Tags its detections carry, as `(key, value)` pairs; repeats are harmless.
    pub tags: Vec<(String, String)>,
    /// Whether messages about it are still waiting to be sent.
    pub messages_pending: bool,
}

/// How full a file system is, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Its size.
    pub total: u64,
    /// Bytes in use (size minus the bytes available to acoupi).
    pub used: u64,
}

/// Why a recording is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It is older than `max-age`.
    Age,
    /// Usage is above `max-usage` and it is among the oldest.
    Usage,
}

/// One recording to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The recording's id.
    pub id: Uuid,
    /// Its audio file.
    pub path: Utf8PathBuf,
    /// The rule that deletes it.
    pub reason: Reason,
}

/// What the policy decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The recordings to delete, in order: age deletions oldest first, then usage deletions
    /// oldest first.
    pub deletions: Vec<Deletion>,
    /// Bytes still over the usage limit once every deletion is done: non-zero only when the
    /// unprotected recordings are not enough (or usage is held by other files).
    pub shortfall_bytes: u64,
}

/// Decides which kept recordings to delete; see the module docs for the rules.
pub fn plan(policy: &Retention, kept: &[Kept], fs: FsUsage, now: Timestamp) -> Plan {
    let mut order: Vec<&Kept> = kept.iter().collect();
    order.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    let protected = protected(policy, &order);
    let mut deleted = vec![false; order.len()];
    let mut out = Plan::default();
    let mut freed: u64 = 0;
    if let Some(max_age_ms) = policy.max_age_ms {
        let now_ms = i128::from(now.as_millisecond());
        for (i, k) in order.iter().enumerate() {
            let age_ms = now_ms - i128::from(k.start.as_millisecond());
            if !protected[i] && age_ms > i128::from(max_age_ms) {
                deleted[i] = true;
                freed = freed.saturating_add(k.bytes);
                out.deletions.push(deletion(k, Reason::Age));
            }
        }
    }
    if let Some(limit) = policy.max_usage {
        let (used, limit) = match limit {
            Usage::Percent(p) => (fs.used, share(fs.total, p)),
            Usage::Bytes(b) => (kept.iter().map(|k| k.bytes).fold(0, u64::saturating_add), b),
        };
        let mut projected = used.saturating_sub(freed);
        for (i, k) in order.iter().enumerate() {
            if projected <= limit {
                break;
            }
            if !protected[i] && !deleted[i] {
                deleted[i] = true;
                projected = projected.saturating_sub(k.bytes);
                out.deletions.push(deletion(k, Reason::Usage));
            }
        }
        out.shortfall_bytes = projected.saturating_sub(limit);
    }
    out
}

/// Which of `order` (sorted oldest first) no rule may delete.
fn protected(policy: &Retention, order: &[&Kept]) -> Vec<bool> {
    let mut out: Vec<bool> = order.iter().map(|k| k.messages_pending).collect();
    let Some(keep) = &policy.keep_newest else {
        return out;
    };
    // Newest first: the first `n` seen of each value are its newest.
    let mut seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for (i, k) in order.iter().enumerate().rev() {
        let mut values: Vec<&str> = k
            .tags
            .iter()
            .filter(|(key, _)| *key == keep.per_tag_key)
            .map(|(_, value)| value.as_str())
            .collect();
        values.sort_unstable();
        values.dedup();
        for value in values {
            let count = seen.entry(value).or_insert(0);
            if *count < keep.n {
                *count += 1;
                out[i] = true;
            }
        }
    }
    out
}

fn deletion(k: &Kept, reason: Reason) -> Deletion {
    Deletion {
        id: k.id,
        path: k.path.clone(),
        reason,
    }
}

/// `percent` % of `total`, rounded down.
fn share(total: u64, percent: u8) -> u64 {
    let bytes = u128::from(total) * u128::from(percent) / 100;
    // At most `total`, since `percent` is at most 99 once validated (and 255 % of a `u64`
    // still fits a `u128` before the clamp).
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// The bytes the staging directory may hold before recording pauses.
///
/// The wanted budget is `setting` (a share of `staging_fs_total`, or a size), or
/// [`DEFAULT_STAGING_PERCENT`] % of `staging_fs_total` when the manifest gives none; it is
/// then capped at `staging_fs_free - min_free` (zero when the file system has less free than
/// `min_free`), so a budget never lets staging eat into `min-free-disk`.
///
/// `staging_fs_free` is the bytes available on the staging file system **plus the bytes the
/// staging directory holds now**: files already staged count towards the budget, not against
/// the room left for it, so the budget does not shrink as staging fills.
pub fn staging_budget(
    setting: Option<Usage>,
    staging_fs_total: u64,
    staging_fs_free: u64,
    min_free: u64,
) -> u64 {
    let wanted = match setting {
        None => share(staging_fs_total, DEFAULT_STAGING_PERCENT),
        Some(Usage::Percent(p)) => share(staging_fs_total, p),
        Some(Usage::Bytes(b)) => b,
    };
    wanted.min(staging_fs_free.saturating_sub(min_free))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::KeepNewest;
    use proptest::prelude::*;

    const DAY_MS: u64 = 86_400_000;

    /// "Now" in every test: 2026-01-01T00:00:00Z.
    fn now() -> Timestamp {
        Timestamp::from_second(1_767_225_600).expect("a valid timestamp")
    }

    /// A kept recording `i` that started `days_ago` days before [`now`], of `bytes` bytes.
    fn kept(i: u128, days_ago: i64, bytes: u64) -> Kept {
        let start = Timestamp::from_second(now().as_second() - days_ago * 86_400)
            .expect("a valid timestamp");
        Kept {
            id: Uuid::from_u128(i),
            path: format!("/rec/{i}.wav").into(),
            start,
            bytes,
            tags: Vec::new(),
            messages_pending: false,
        }
    }

    fn tagged(mut k: Kept, species: &[&str]) -> Kept {
        k.tags = species
            .iter()
            .map(|s| ("species".to_owned(), (*s).to_owned()))
            .collect();
        k
    }

    fn pending(mut k: Kept) -> Kept {
        k.messages_pending = true;
        k
    }

    fn policy(max_age_days: Option<u64>, max_usage: Option<Usage>) -> Retention {
        Retention {
            max_age_ms: max_age_days.map(|d| d * DAY_MS),
            max_usage,
            keep_newest: None,
        }
    }

    fn keep_newest(mut p: Retention, n: u32) -> Retention {
        p.keep_newest = Some(KeepNewest {
            n,
            per_tag_key: "species".into(),
        });
        p
    }

    const FS: FsUsage = FsUsage {
        total: 1000,
        used: 500,
    };

    /// The ids deleted, as small integers, with their reasons.
    fn ids(plan: &Plan) -> Vec<(u128, Reason)> {
        plan.deletions
            .iter()
            .map(|d| (d.id.as_u128(), d.reason))
            .collect()
    }

    #[test]
    fn nothing_kept_nothing_deleted() {
        let p = policy(Some(1), Some(Usage::Percent(1)));
        let fs = FsUsage {
            total: 1000,
            used: 900,
        };
        let out = plan(&p, &[], fs, now());
        assert!(out.deletions.is_empty());
        // Other files hold the usage: it is reported, not hidden.
        assert_eq!(out.shortfall_bytes, 890);
    }

    #[test]
    fn an_empty_policy_deletes_nothing() {
        let all = [kept(1, 1000, 100), kept(2, 1, 100)];
        let full = FsUsage {
            total: 1000,
            used: 1000,
        };
        assert_eq!(
            plan(&policy(None, None), &all, full, now()),
            Plan::default()
        );
    }

    #[test]
    fn age_deletes_what_is_older_than_max_age() {
        let all = [
            kept(1, 10, 1),
            kept(2, 31, 1),
            kept(3, 30, 1),
            kept(4, 400, 1),
        ];
        let out = plan(&policy(Some(30), None), &all, FS, now());
        // Exactly 30 days old is not older than 30 days.
        assert_eq!(ids(&out), [(4, Reason::Age), (2, Reason::Age)]);
        assert_eq!(out.deletions[0].path, "/rec/4.wav");
        assert_eq!(out.shortfall_bytes, 0);
    }

    #[test]
    fn a_percentage_deletes_oldest_until_under_it() {
        let all = [
            kept(1, 1, 30),
            kept(2, 5, 30),
            kept(3, 3, 30),
            kept(4, 4, 30),
        ];
        let fs = FsUsage {
            total: 1000,
            used: 900,
        };
        // Limit 850: 50 bytes over, two 30-byte recordings.
        let out = plan(&policy(None, Some(Usage::Percent(85))), &all, fs, now());
        assert_eq!(ids(&out), [(2, Reason::Usage), (4, Reason::Usage)]);
        assert_eq!(out.shortfall_bytes, 0);
        // At the limit exactly, nothing is over.
        let fs = FsUsage {
            total: 1000,
            used: 850,
        };
        assert!(
            plan(&policy(None, Some(Usage::Percent(85))), &all, fs, now())
                .deletions
                .is_empty()
        );
    }

    #[test]
    fn a_size_counts_the_kept_recordings_not_the_file_system() {
        let all = [kept(1, 1, 100), kept(2, 2, 100), kept(3, 3, 100)];
        let full = FsUsage {
            total: 1000,
            used: 1000,
        };
        let out = plan(&policy(None, Some(Usage::Bytes(150))), &all, full, now());
        assert_eq!(ids(&out), [(3, Reason::Usage), (2, Reason::Usage)]);
        assert_eq!(out.shortfall_bytes, 0);
    }

    #[test]
    fn age_deletions_count_towards_usage() {
        let all = [
            kept(1, 100, 200),
            kept(2, 10, 100),
            kept(3, 5, 100),
            kept(4, 1, 100),
        ];
        // 500 bytes against 250: the old one frees 200, one usage deletion frees the rest.
        let p = policy(Some(30), Some(Usage::Bytes(250)));
        let out = plan(&p, &all, FS, now());
        assert_eq!(ids(&out), [(1, Reason::Age), (2, Reason::Usage)]);
        // Age alone suffices when the limit is met after it.
        let p = policy(Some(30), Some(Usage::Bytes(300)));
        assert_eq!(ids(&plan(&p, &all, FS, now())), [(1, Reason::Age)]);
    }

    #[test]
    fn recordings_with_pending_messages_are_never_deleted() {
        let all = [
            pending(kept(1, 100, 100)),
            kept(2, 90, 100),
            pending(kept(3, 80, 100)),
        ];
        let p = policy(Some(30), Some(Usage::Bytes(1)));
        let out = plan(&p, &all, FS, now());
        assert_eq!(ids(&out), [(2, Reason::Age)]);
        assert_eq!(out.shortfall_bytes, 199);
    }

    #[test]
    fn the_newest_per_tag_value_survive() {
        let all = [
            tagged(kept(1, 50, 10), &["Myotis"]),
            tagged(kept(2, 40, 10), &["Myotis"]),
            tagged(kept(3, 60, 10), &["Myotis"]),
            tagged(kept(4, 90, 10), &["Barbastella"]),
            kept(5, 45, 10),
            tagged(kept(6, 70, 10), &["Pipistrellus", "Myotis"]),
        ];
        let p = keep_newest(policy(Some(30), None), 2);
        let out = plan(&p, &all, FS, now());
        // Myotis: 2 and 1 are the newest two; Barbastella: 4; Pipistrellus: 6.
        assert_eq!(ids(&out), [(3, Reason::Age), (5, Reason::Age)]);
    }

    #[test]
    fn keep_newest_counts_only_its_key_and_each_recording_once_per_value() {
        let mut other = kept(1, 50, 10);
        other.tags = vec![("site".into(), "north".into())];
        let twice = tagged(kept(2, 60, 10), &["Myotis", "Myotis"]);
        let newer = tagged(kept(3, 40, 10), &["Myotis"]);
        let p = keep_newest(policy(Some(30), None), 2);
        let out = plan(&p, &[other, twice, newer], FS, now());
        assert_eq!(ids(&out), [(1, Reason::Age)]);
    }

    #[test]
    fn all_protected_deletes_nothing_and_reports_the_shortfall() {
        let all = [
            pending(kept(1, 100, 100)),
            tagged(kept(2, 100, 100), &["Myotis"]),
        ];
        let p = keep_newest(policy(Some(30), Some(Usage::Bytes(50))), 1);
        let out = plan(&p, &all, FS, now());
        assert!(out.deletions.is_empty());
        assert_eq!(out.shortfall_bytes, 150);
    }

    #[test]
    fn an_unreachable_limit_deletes_what_it_may() {
        let all = [kept(1, 3, 100), pending(kept(2, 2, 100)), kept(3, 1, 100)];
        let fs = FsUsage {
            total: 1000,
            used: 990,
        };
        let out = plan(&policy(None, Some(Usage::Percent(10))), &all, fs, now());
        assert_eq!(ids(&out), [(1, Reason::Usage), (3, Reason::Usage)]);
        assert_eq!(out.shortfall_bytes, 990 - 200 - 100);
    }

    #[test]
    fn equal_start_times_are_ordered_by_id() {
        let all = [kept(9, 5, 10), kept(3, 5, 10), kept(7, 5, 10)];
        let out = plan(&policy(Some(1), None), &all, FS, now());
        let order: Vec<u128> = out.deletions.iter().map(|d| d.id.as_u128()).collect();
        assert_eq!(order, [3, 7, 9]);
    }

    #[test]
    fn every_rule_together() {
        let all = [
            tagged(kept(1, 400, 50), &["Barbastella"]),
            tagged(kept(2, 300, 50), &["Myotis"]),
            pending(kept(3, 250, 50)),
            tagged(kept(4, 20, 50), &["Myotis"]),
            kept(5, 15, 50),
            kept(6, 10, 50),
            tagged(kept(7, 5, 50), &["Myotis"]),
        ];
        let fs = FsUsage {
            total: 1000,
            used: 800,
        };
        // Age deletes 2 (1 is the only Barbastella, 3 is pending); then 750 against 700:
        // the oldest unprotected left is 5 (4 and 7 are the newest two Myotis).
        let p = keep_newest(policy(Some(180), Some(Usage::Percent(70))), 2);
        let out = plan(&p, &all, fs, now());
        assert_eq!(ids(&out), [(2, Reason::Age), (5, Reason::Usage)]);
        assert_eq!(out.shortfall_bytes, 0);
    }

    #[test]
    fn staging_budget_defaults_to_a_quarter_capped_by_free_space() {
        let gib = 1u64 << 30;
        // 4 GiB tmpfs, 3 GiB free, 512 MiB kept free: a quarter is 1 GiB.
        assert_eq!(staging_budget(None, 4 * gib, 3 * gib, gib / 2), gib);
        // Little free space: free minus min-free-disk.
        assert_eq!(staging_budget(None, 4 * gib, gib, gib / 2), gib / 2);
        // Less free than min-free-disk: nothing.
        assert_eq!(staging_budget(None, 4 * gib, gib / 4, gib / 2), 0);
        assert_eq!(
            staging_budget(Some(Usage::Percent(50)), 4 * gib, 4 * gib, 0),
            2 * gib
        );
        assert_eq!(
            staging_budget(Some(Usage::Bytes(256 << 20)), 4 * gib, 4 * gib, 0),
            256 << 20
        );
        assert_eq!(
            staging_budget(Some(Usage::Bytes(8 * gib)), 4 * gib, 3 * gib, gib),
            2 * gib
        );
        assert_eq!(staging_budget(None, 0, 0, 0), 0);
        assert_eq!(staging_budget(None, u64::MAX, u64::MAX, 0), u64::MAX / 4);
    }

    /// Up to 30 recordings with distinct ids, random ages, sizes, species and pending flags.
    fn arb_kept() -> impl Strategy<Value = Vec<Kept>> {
        proptest::collection::vec((0i64..400, 0u64..1000, 0usize..4, any::<bool>()), 0..30)
            .prop_map(|rows| {
                let species = ["Myotis", "Pipistrellus", "Nyctalus"];
                (0u128..)
                    .zip(rows)
                    .map(|(id, (days, bytes, tag, pending))| {
                        let mut k = kept(id, days, bytes);
                        if let Some(s) = species.get(tag) {
                            k = tagged(k, &[s]);
                        }
                        k.messages_pending = pending;
                        k
                    })
                    .collect()
            })
    }

    /// Whether `k` is among the newest `n` of its species in `all` (by start, then id).
    fn among_newest(k: &Kept, all: &[Kept], n: u32) -> bool {
        k.tags.iter().any(|(_, value)| {
            let newer = all
                .iter()
                .filter(|o| o.tags.iter().any(|(_, v)| v == value))
                .filter(|o| (o.start, o.id) > (k.start, k.id))
                .count();
            newer < n as usize
        })
    }

    proptest! {
        #[test]
        fn plans_keep_their_promises(
            all in arb_kept(),
            age_days in proptest::option::of(0u64..500),
            limit in proptest::option::of(0u64..20_000),
            n in proptest::option::of(1u32..3),
            rotate in 0usize..30,
        ) {
            let mut p = policy(age_days, limit.map(Usage::Bytes));
            if let Some(n) = n {
                p = keep_newest(p, n);
            }
            let out = plan(&p, &all, FS, now());
            // The input order does not matter.
            let mut other = all.clone();
            other.reverse();
            let shift = rotate.min(other.len());
            other.rotate_left(shift);
            prop_assert_eq!(&plan(&p, &other, FS, now()), &out);
            let deleted = |k: &Kept| out.deletions.iter().find(|d| d.id == k.id);
            let protected = |k: &Kept| {
                k.messages_pending || n.is_some_and(|n| among_newest(k, &all, n))
            };
            for k in &all {
                let old = age_days.is_some_and(|d| now().as_second() - k.start.as_second() > (d * 86_400) as i64);
                match deleted(k) {
                    Some(d) => {
                        prop_assert!(!protected(k));
                        prop_assert_eq!(d.reason == Reason::Age, old);
                    }
                    None => prop_assert!(protected(k) || !old),
                }
            }
            let freed: u64 = all.iter().filter(|k| deleted(k).is_some()).map(|k| k.bytes).sum();
            let total: u64 = all.iter().map(|k| k.bytes).sum();
            match limit {
                Some(limit) => {
                    let left = total - freed;
                    prop_assert_eq!(out.shortfall_bytes, left.saturating_sub(limit));
                    if out.shortfall_bytes > 0 {
                        // Over the limit: everything deletable was deleted.
                        prop_assert!(all.iter().all(|k| protected(k) || deleted(k).is_some()));
                    }
                    // No usage deletion was one too many.
                    if let Some(last) = out.deletions.iter().rev().find(|d| d.reason == Reason::Usage) {
                        let bytes = all.iter().find(|k| k.id == last.id).map_or(0, |k| k.bytes);
                        prop_assert!(left + bytes > limit);
                    }
                }
                None => {
                    prop_assert_eq!(out.shortfall_bytes, 0);
                    prop_assert!(out.deletions.iter().all(|d| d.reason == Reason::Age));
                }
            }
        }
    }
}
