//! `GET /metrics`: the API's own health in the Prometheus text format — requests by route and
//! status, their latency as a histogram, metric points ingested, live-update subscribers.
//!
//! Hand-written rather than a metrics framework: a handful of series, one lock taken once per
//! request, and the exposition format is a page of text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Latency {
    /// Observations ≤ each bound (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Telemetry {
    /// (method, route template, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route template) → latency.
    latency: Mutex<BTreeMap<(String, String), Latency>>,
    points: AtomicU64,
}

impl Telemetry {
    /// One answered request. `route` is the matched template (`/api/v1/trials/{id}`), never the
    /// raw path, so the number of series stays bounded.
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        let key = (method.to_string(), route.to_string());
        *self
            .requests
            .lock()
            .expect("telemetry lock")
            .entry((key.0.clone(), key.1.clone(), status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut lat = self.latency.lock().expect("telemetry lock");
        let l = lat.entry(key).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            l.buckets[i] += 1;
        }
        l.count += 1;
        l.sum += secs;
    }

    pub fn ingested(&self, points: usize) {
        self.points.fetch_add(points as u64, Ordering::Relaxed);
    }

    /// The exposition text; `subscribers`: live-update streams open now.
    pub fn render(&self, subscribers: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP orrery_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE orrery_http_requests_total counter\n");
        for ((m, r, s), n) in self.requests.lock().expect("telemetry lock").iter() {
            let _ = writeln!(
                out,
                "orrery_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                label(r)
            );
        }
        out.push_str(
            "# HELP orrery_http_request_duration_seconds Time to answer a request, by route.\n",
        );
        out.push_str("# TYPE orrery_http_request_duration_seconds histogram\n");
        for ((m, r), l) in self.latency.lock().expect("telemetry lock").iter() {
            let labels = format!("method=\"{m}\",route=\"{}\"", label(r));
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(l.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "orrery_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "orrery_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                l.count
            );
            let _ = writeln!(
                out,
                "orrery_http_request_duration_seconds_sum{{{labels}}} {}",
                l.sum
            );
            let _ = writeln!(
                out,
                "orrery_http_request_duration_seconds_count{{{labels}}} {}",
                l.count
            );
        }
        out.push_str("# HELP orrery_metric_points_ingested_total Metric points acknowledged by ingest (new or already stored).\n");
        out.push_str("# TYPE orrery_metric_points_ingested_total counter\n");
        let _ = writeln!(
            out,
            "orrery_metric_points_ingested_total {}",
            self.points.load(Ordering::Relaxed)
        );
        out.push_str("# HELP orrery_event_subscribers Live-update streams open now.\n");
        out.push_str("# TYPE orrery_event_subscribers gauge\n");
        let _ = writeln!(out, "orrery_event_subscribers {subscribers}");
        out
    }
}

/// A label value, escaped as the text format asks.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let t = Telemetry::default();
        t.observe("GET", "/a/{id}", 200, Duration::from_micros(500));
        t.observe("GET", "/a/{id}", 404, Duration::from_millis(30));
        t.observe("GET", "/a/{id}", 200, Duration::from_secs(20));
        t.ingested(7);
        let text = t.render(2);
        assert!(text.contains(
            "orrery_http_requests_total{method=\"GET\",route=\"/a/{id}\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "orrery_http_requests_total{method=\"GET\",route=\"/a/{id}\",status=\"404\"} 1"
        ));
        let labels = "method=\"GET\",route=\"/a/{id}\"";
        assert!(text.contains(&format!(
            "orrery_http_request_duration_seconds_bucket{{{labels},le=\"0.001\"}} 1"
        )));
        assert!(text.contains(&format!(
            "orrery_http_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2"
        )));
        // 20 s is above every bound: only +Inf counts it.
        assert!(text.contains(&format!(
            "orrery_http_request_duration_seconds_bucket{{{labels},le=\"10\"}} 2"
        )));
        assert!(text.contains(&format!(
            "orrery_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"
        )));
        assert!(text.contains("orrery_metric_points_ingested_total 7"));
        assert!(text.contains("orrery_event_subscribers 2"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
