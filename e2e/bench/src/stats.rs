//! Latency samples of one run and their summary, printed as etcd's
//! `benchmark` tool prints it (or as JSON).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub latencies: Vec<Duration>,
    pub errors: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Samples {
    pub fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
    }

    pub fn summary(&self) -> Summary {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let secs = |d: Duration| d.as_secs_f64();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * l.len() as f64).ceil() as usize;
            secs(l[i.clamp(1, l.len()) - 1])
        };
        let n = l.len() as f64;
        let average = if l.is_empty() {
            0.0
        } else {
            l.iter().map(|d| secs(*d)).sum::<f64>() / n
        };
        let variance = if l.is_empty() {
            0.0
        } else {
            l.iter().map(|d| (secs(*d) - average).powi(2)).sum::<f64>() / n
        };
        let elapsed = secs(self.elapsed);
        Summary {
            total_secs: elapsed,
            requests: l.len(),
            errors: self.errors,
            requests_per_sec: if elapsed > 0.0 { n / elapsed } else { 0.0 },
            slowest_secs: l.last().map_or(0.0, |d| secs(*d)),
            fastest_secs: l.first().map_or(0.0, |d| secs(*d)),
            average_secs: average,
            stddev_secs: variance.sqrt(),
            p50_secs: pct(50.0),
            p90_secs: pct(90.0),
            p99_secs: pct(99.0),
            p999_secs: pct(99.9),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub total_secs: f64,
    pub requests: usize,
    pub errors: usize,
    pub requests_per_sec: f64,
    pub slowest_secs: f64,
    pub fastest_secs: f64,
    pub average_secs: f64,
    pub stddev_secs: f64,
    pub p50_secs: f64,
    pub p90_secs: f64,
    pub p99_secs: f64,
    pub p999_secs: f64,
}

impl Summary {
    /// etcd's benchmark tool's layout.
    pub fn text(&self) -> String {
        format!(
            "\nSummary:\n  Total:\t{:.4} secs.\n  Slowest:\t{:.4} secs.\n  Fastest:\t{:.4} secs.\n  Average:\t{:.4} secs.\n  Stddev:\t{:.4} secs.\n  Requests/sec:\t{:.4}\n\nLatency distribution:\n  50% in {:.4} secs.\n  90% in {:.4} secs.\n  99% in {:.4} secs.\n  99.9% in {:.4} secs.\n\nErrors: {}\n",
            self.total_secs,
            self.slowest_secs,
            self.fastest_secs,
            self.average_secs,
            self.stddev_secs,
            self.requests_per_sec,
            self.p50_secs,
            self.p90_secs,
            self.p99_secs,
            self.p999_secs,
            self.errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let s = Samples {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            errors: 2,
            elapsed: Duration::from_secs(2),
        };
        let m = s.summary();
        assert_eq!(m.requests, 100);
        assert!((m.requests_per_sec - 50.0).abs() < 1e-9);
        assert!((m.p50_secs - 0.050).abs() < 1e-9);
        assert!((m.p99_secs - 0.099).abs() < 1e-9);
        assert!((m.slowest_secs - 0.100).abs() < 1e-9);
        assert!(m.text().contains("Requests/sec:\t50.0000"));
    }
}
