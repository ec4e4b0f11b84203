//! Retention-policy benchmark: the time `acoupi::files::retention::plan` takes over a full card.
//!
//! In: nothing. Out: figures on stderr: for 100,000 and 1,000,000 kept recordings (3 s at
//! 256 kHz, 16-bit mono, about 1.5 MB each, one every 10 s of the last N × 10 s, a third of
//! them with messages pending, every one tagged with one of 20 species, in shuffled order),
//! the time to plan with every rule at once (`max-age`, `max-usage` as a percentage that is
//! exceeded, `keep-newest 20 per="species"`): first run and the median of 5. It asserts only
//! what it measures: that the plan is non-empty and the same each time.
//!
//! Run with `cargo test --release --test bench_retention -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use acoupi::files::retention::{FsUsage, Kept, plan};
use acoupi::spec::{KeepNewest, Retention, Usage};
use jiff::Timestamp;
use uuid::Uuid;

const BYTES: u64 = 256_000 * 2 * 3 + 44;

/// `n` kept recordings ending at `now`, in a shuffled but reproducible order.
fn card(n: u64, now: Timestamp) -> Vec<Kept> {
    let species: Vec<String> = (0..20).map(|i| format!("species-{i}")).collect();
    let ordered: Vec<Kept> = (0..n)
        .map(|i| {
            let start = Timestamp::from_second(now.as_second() - (i as i64 + 1) * 10)
                .expect("within jiff's range");
            Kept {
                id: Uuid::from_u128(u128::from(i)),
                path: format!("/rec/{i}.wav").into(),
                start,
                bytes: BYTES,
                tags: vec![("species".into(), species[(i % 20) as usize].clone())],
                messages_pending: i % 3 == 0,
            }
        })
        .collect();
    // A fixed permutation (multiplicative step coprime with n) instead of a random shuffle.
    let len = ordered.len();
    let step = (1..len.max(2))
        .rev()
        .find(|s| gcd(*s, len) == 1)
        .unwrap_or(1);
    let mut shuffled = Vec::with_capacity(len);
    for j in 0..len {
        shuffled.push(ordered[(j * step) % len].clone());
    }
    shuffled
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[test]
#[ignore = "benchmark: cargo test --release --test bench_retention -- --ignored --nocapture"]
fn plan_over_a_full_card() {
    let now = Timestamp::from_second(1_767_225_600).expect("a valid timestamp");
    for n in [100_000u64, 1_000_000] {
        let kept = card(n, now);
        let total = n * BYTES;
        let fs = FsUsage {
            total: total * 100 / 90,
            used: total,
        };
        let policy = Retention {
            // Half the recordings are older than this.
            max_age_ms: Some(n * 10 * 1000 / 2),
            max_usage: Some(Usage::Percent(30)),
            keep_newest: Some(KeepNewest {
                n: 20,
                per_tag_key: "species".into(),
            }),
        };
        let start = Instant::now();
        let first = plan(&policy, &kept, fs, now);
        let first_time = start.elapsed();
        assert!(!first.deletions.is_empty());
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let again = plan(&policy, &kept, fs, now);
                let t = start.elapsed();
                assert_eq!(again, first);
                t
            })
            .collect();
        times.sort();
        eprintln!(
            "retention::plan over {n} kept recordings: {} deletions, shortfall {} bytes; first {:.1} ms, median of 5 {:.1} ms",
            first.deletions.len(),
            first.shortfall_bytes,
            first_time.as_secs_f64() * 1e3,
            times[2].as_secs_f64() * 1e3,
        );
    }
}
