//! Serving `/metrics` in the format the scraper asks for.
//!
//! Every binary renders its metrics with `prometheus-client`, which writes
//! OpenMetrics text. Prometheus asks for OpenMetrics first (`Accept:
//! application/openmetrics-text;version=1.0.0,…,text/plain;version=0.0.4;q=0.5`),
//! but many tools (`curl`, older scrapers, `promtool check metrics`) read
//! only the classic text format 0.0.4, whose rules differ: a counter family
//! is named with its `_total` suffix, there is no `# EOF` or `# UNIT`, and
//! `info`/`stateset` are not types. [`negotiate`] picks the format from the
//! `Accept` header and [`to_prometheus_text`] rewrites the OpenMetrics body
//! for the classic readers. Pure text functions, so every crate that serves
//! `/metrics` shares them without a dependency.

use std::collections::HashMap;

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The classic Prometheus text format's content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header prefers OpenMetrics over the classic text
/// format: OpenMetrics is named with a quality above zero and at least that
/// of `text/plain` (or a wildcard standing for it).
pub fn wants_openmetrics(accept: &str) -> bool {
    let (mut om, mut text) = (0.0_f64, 0.0_f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    om > 0.0 && om >= text
}

/// The body and content type to answer `accept` with, from an OpenMetrics
/// `body` (as `prometheus-client` encodes it).
pub fn negotiate(accept: Option<&str>, body: String) -> (&'static str, String) {
    if accept.is_some_and(wants_openmetrics) {
        (OPENMETRICS, body)
    } else {
        (PROMETHEUS_TEXT, to_prometheus_text(&body))
    }
}

/// Rewrites OpenMetrics text as the classic Prometheus text format 0.0.4:
/// counter families take their samples' `_total` name, `info` families
/// become gauges named `_info`, `stateset` gauges and `unknown` untyped;
/// `# UNIT`, `# EOF` and exemplars are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    // The family names to rename, from their TYPE lines (HELP comes first).
    let mut renamed: HashMap<&str, (String, &str)> = HashMap::new();
    for line in openmetrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let Some((name, kind)) = rest.split_once(' ') else {
            continue;
        };
        let (new_name, new_kind) = match kind.trim() {
            "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
            "info" => (format!("{name}_info"), "gauge"),
            "stateset" => (name.to_string(), "gauge"),
            "unknown" => (name.to_string(), "untyped"),
            _ => continue,
        };
        renamed.insert(name, (new_name, new_kind));
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, _)) = rest.split_once(' ') {
                if let Some((new_name, kind)) = renamed.get(name) {
                    out.push_str(&format!("# TYPE {new_name} {kind}\n"));
                    continue;
                }
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some((new_name, _)) = renamed.get(name) {
                out.push_str(&format!("# HELP {new_name} {help}\n"));
                continue;
            }
        } else if !line.starts_with('#') {
            // A sample: an exemplar (` # {…} v`) is OpenMetrics only.
            let sample = match line.find(" # {") {
                Some(i) => &line[..i],
                None => line,
            };
            out.push_str(sample);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_text() {
        assert!(wants_openmetrics(PROMETHEUS_ACCEPT));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
        assert!(!wants_openmetrics("text/plain, application/openmetrics-text;q=0.5"));
        assert!(wants_openmetrics("application/openmetrics-text"));
        assert_eq!(negotiate(Some(PROMETHEUS_ACCEPT), "x".into()).0, OPENMETRICS);
        assert_eq!(negotiate(None, "# EOF\n".into()), (PROMETHEUS_TEXT, String::new()));
    }

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let om = "# HELP app_requests Requests taken.\n# TYPE app_requests counter\n\
                  app_requests_total{code=\"200\"} 3 # {trace=\"a\"} 1.0\n\
                  # HELP app_build Build.\n# TYPE app_build info\napp_build_info{version=\"1\"} 1\n\
                  # HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram\n# UNIT app_latency_seconds seconds\n\
                  app_latency_seconds_bucket{le=\"+Inf\"} 1\napp_latency_seconds_sum 0.1\napp_latency_seconds_count 1\n\
                  # HELP already_total Already suffixed.\n# TYPE already_total counter\nalready_total 1\n# EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP app_requests_total Requests taken.\n# TYPE app_requests_total counter\n\
             app_requests_total{code=\"200\"} 3\n\
             # HELP app_build_info Build.\n# TYPE app_build_info gauge\napp_build_info{version=\"1\"} 1\n\
             # HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram\n\
             app_latency_seconds_bucket{le=\"+Inf\"} 1\napp_latency_seconds_sum 0.1\napp_latency_seconds_count 1\n\
             # HELP already_total Already suffixed.\n# TYPE already_total counter\nalready_total 1\n"
        );
    }
}
