//! A histogram whose observations take no lock (prometheus-client's own
//! takes a mutex per observation): bucket counts, count and sum are atomics,
//! read consistently enough for a scrape.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
struct Inner {
    bounds: Vec<f64>,
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// An f64 as its bits.
    sum: AtomicU64,
}

/// A cloneable handle; clones record into the same histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    inner: Arc<Inner>,
}

impl Histogram {
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Histogram {
        let bounds: Vec<f64> = bounds.into_iter().collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            inner: Arc::new(Inner {
                bounds,
                counts,
                count: AtomicU64::new(0),
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// etcd's disk histograms: 1 ms doubling, 14 buckets.
    pub fn disk() -> Histogram {
        Histogram::new(exponential(0.001, 2.0, 14))
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .inner
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.inner.bounds.len());
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .inner
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// (count, sum) so far.
    #[cfg(test)]
    pub fn totals(&self) -> (u64, f64) {
        (
            self.inner.count.load(Ordering::Relaxed),
            f64::from_bits(self.inner.sum.load(Ordering::Relaxed)),
        )
    }
}

/// `n` bounds from `start`, each `factor` times the one before.
pub fn exponential(start: f64, factor: f64, n: u16) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| start * factor.powi(i32::from(i)))
}

impl Default for Histogram {
    /// Prometheus' default buckets (what etcd's gRPC handling histogram uses).
    fn default() -> Histogram {
        Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(self.inner.counts.len());
        for (i, c) in self.inner.counts.iter().enumerate() {
            let bound = self.inner.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, c.load(Ordering::Relaxed)));
        }
        // The count is the buckets' total, so the +Inf bucket equals it.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = f64::from_bits(self.inner.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_encode_cumulatively() {
        let h = Histogram::new([0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.totals(), (4, 3.65));
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("lat_seconds", "Latency.", h);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"1.0\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count 4\n"), "{text}");
    }
}
