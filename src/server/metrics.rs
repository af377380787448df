//! Prometheus metrics (`/metrics`): decisions by operation and outcome, request latency by
//! route, writes, and — read at scrape time — the current revision, index size and the
//! reachability cache's hits and misses.

use crate::service::Clew;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
}

fn latency_histogram() -> Histogram {
    // 10 µs … ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 21))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    requests: Family<RouteLabels, Histogram, fn() -> Histogram>,
    writes: Family<WriteLabels, Counter>,
}

impl Metrics {
    pub fn new(clew: Arc<Clew>) -> Self {
        let mut registry = Registry::with_prefix("clew");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let requests = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions made, by operation (check, batch_check, filter, lookup, subjects, authzen) and outcome",
            decisions.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "writes",
            "Acknowledged writes (revisions), by kind (tuples, model, sparql)",
            writes.clone(),
        );
        registry.register_collector(Box::new(StateCollector { clew }));
        Self {
            registry,
            decisions,
            requests,
            writes,
        }
    }

    pub fn decision(&self, operation: &str, outcome: &str, n: u64) {
        self.decisions
            .get_or_create(&DecisionLabels {
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: status.to_string(),
            })
            .observe(seconds);
    }

    pub fn write(&self, kind: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Values read from the service at scrape time.
struct StateCollector {
    clew: Arc<Clew>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.clew.state();
        let stats = self.clew.stats();
        let gauges: [(&str, &str, i64); 4] = [
            (
                "revision",
                "The latest published revision",
                state.revision as i64,
            ),
            (
                "index_tuples",
                "Tuples in the relationship index",
                state.index.tuple_count() as i64,
            ),
            (
                "index_objects",
                "Objects interned in the relationship index",
                state.index.object_count() as i64,
            ),
            (
                "reach_cache_entries",
                "Result bitmaps in the reachability cache",
                self.clew.cache_entries() as i64,
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let counters = [
            (
                "reach_cache_hits",
                "Reads answered from a cached result bitmap",
                stats.cache_hits.load(Ordering::Relaxed),
            ),
            (
                "reach_cache_misses",
                "Reads that found no valid cached result bitmap",
                stats.cache_misses.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}
