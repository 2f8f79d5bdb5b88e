//! Check metrics as plain atomics: the Check path never takes a lock to count.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tollgate_core::DenyReason;

/// Upper bounds of the Check latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.05,
];

#[derive(Default)]
pub struct CheckMetrics {
    allowed: AtomicU64,
    denied: [AtomicU64; DenyReason::ALL.len()],
    /// Checks answered UNAVAILABLE (stale snapshot) or INVALID_ARGUMENT.
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

pub enum Outcome {
    Allowed,
    Denied(DenyReason),
    Error,
}

impl CheckMetrics {
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        match outcome {
            Outcome::Allowed => self.allowed.fetch_add(1, Ordering::Relaxed),
            Outcome::Denied(reason) => {
                let index = DenyReason::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .unwrap_or(0);
                self.denied[index].fetch_add(1, Ordering::Relaxed)
            }
            Outcome::Error => self.errors.fetch_add(1, Ordering::Relaxed),
        };
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends the Prometheus text exposition of these metrics.
    pub fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tollgate_checks_total ext_authz Check calls by decision and reason."
        );
        let _ = writeln!(out, "# TYPE tollgate_checks_total counter");
        let _ = writeln!(
            out,
            "tollgate_checks_total{{decision=\"allow\",reason=\"allowed\"}} {}",
            load(&self.allowed)
        );
        for (reason, count) in DenyReason::ALL.iter().zip(&self.denied) {
            let _ = writeln!(
                out,
                "tollgate_checks_total{{decision=\"deny\",reason=\"{}\"}} {}",
                reason.as_str(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "tollgate_checks_total{{decision=\"error\",reason=\"unavailable\"}} {}",
            load(&self.errors)
        );
        let _ = writeln!(
            out,
            "# HELP tollgate_check_duration_seconds Time to decide a Check, from request to response."
        );
        let _ = writeln!(out, "# TYPE tollgate_check_duration_seconds histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += load(count);
            let _ = writeln!(
                out,
                "tollgate_check_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let total = load(&self.count);
        let _ = writeln!(
            out,
            "tollgate_check_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "tollgate_check_duration_seconds_sum {}",
            load(&self.sum_nanos) as f64 / 1e9
        );
        let _ = writeln!(out, "tollgate_check_duration_seconds_count {total}");
    }
}

/// The filter's protocol (`tollgate.v1.Grants`): what the VMs ask of this server. A flood of
/// forged tokens the membership filter stops shows here as Resolve calls that did not happen.
#[derive(Default)]
pub struct GrantsMetrics {
    pub resolves: AtomicU64,
    pub polls: AtomicU64,
    pub streams_opened: AtomicU64,
    /// Watch streams open now.
    pub streams_open: AtomicU64,
}

impl GrantsMetrics {
    pub fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tollgate_grants_calls_total Calls of the filter's protocol by method (Watch: streams opened)."
        );
        let _ = writeln!(out, "# TYPE tollgate_grants_calls_total counter");
        for (method, count) in [
            ("resolve", &self.resolves),
            ("changes", &self.polls),
            ("watch", &self.streams_opened),
        ] {
            let _ = writeln!(
                out,
                "tollgate_grants_calls_total{{method=\"{method}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tollgate_grants_watch_streams Watch streams open now (one per filter VM: each Envoy worker and the main thread)."
        );
        let _ = writeln!(out, "# TYPE tollgate_grants_watch_streams gauge");
        let _ = writeln!(
            out,
            "tollgate_grants_watch_streams {}",
            load(&self.streams_open)
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = CheckMetrics::default();
        metrics.record(Outcome::Allowed, Duration::from_micros(3));
        metrics.record(
            Outcome::Denied(DenyReason::ExpiredToken),
            Duration::from_micros(30),
        );
        metrics.record(Outcome::Error, Duration::from_secs(1));
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("tollgate_checks_total{decision=\"allow\",reason=\"allowed\"} 1"));
        assert!(
            out.contains("tollgate_checks_total{decision=\"deny\",reason=\"expired_token\"} 1")
        );
        assert!(out.contains("tollgate_checks_total{decision=\"error\",reason=\"unavailable\"} 1"));
        assert!(out.contains("tollgate_check_duration_seconds_bucket{le=\"0.000005\"} 1"));
        assert!(out.contains("tollgate_check_duration_seconds_bucket{le=\"0.00005\"} 2"));
        assert!(out.contains("tollgate_check_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(out.contains("tollgate_check_duration_seconds_count 3"));
    }
}
