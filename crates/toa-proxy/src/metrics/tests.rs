//! The exposition as a scraper reads it: exact sample lines, every enum value listed,
//! and every sample under a TYPE line.

use super::*;
use crate::error::ConnectErrorKind;
use crate::metrics::DropReason;
use toa_common::edge::EdgeCounter;

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );
}

#[test]
fn render_lists_rule_counters_and_origin_health() {
    let m = Metrics::default();
    let web = m.rule("web");
    web.connections_total.fetch_add(3, Ordering::Relaxed);
    web.bytes_to_origin.fetch_add(42, Ordering::Relaxed);
    web.connect_error(ConnectErrorKind::Refused);
    web.udp.drop(DropReason::TooLarge);
    m.reloads_ok.fetch_add(1, Ordering::Relaxed);
    let health = HealthRegistry::default();
    health
        .get("198.18.2.2:80".parse().unwrap(), &Default::default())
        .mark_failed(ConnectErrorKind::Refused, 1, 1);
    let text = m.render(&health);
    for line in [
        "toa_proxy_connections_total{rule=\"web\"} 3",
        "toa_proxy_connections_active{rule=\"web\"} 0",
        "toa_proxy_bytes_total{rule=\"web\",direction=\"client_to_origin\"} 42",
        "toa_proxy_connect_errors_total{rule=\"web\",kind=\"refused\"} 1",
        "toa_proxy_udp_drops_total{rule=\"web\",reason=\"too_large\"} 1",
        "toa_proxy_origin_up{origin=\"198.18.2.2:80\"} 0",
        "toa_proxy_reloads_total{result=\"ok\"} 1",
        "toa_proxy_reloads_total{result=\"rejected\"} 0",
        "toa_proxy_toa_options_written_total 0",
        "toa_proxy_metrics_requests_timed_out_total 0",
    ] {
        has_line(&text, line);
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn render_escapes_rule_tags_in_labels() {
    let m = Metrics::default();
    m.rule("a\"b\\c");
    let text = m.render(&HealthRegistry::default());
    has_line(&text, "toa_proxy_connections_total{rule=\"a\\\"b\\\\c\"} 0");
}

#[test]
fn render_lists_the_edge_writer_rows_it_is_given() {
    let m = Metrics::default();
    m.set_toa_source(Box::new(|| {
        let mut totals = [0; EdgeCounter::COUNT as usize];
        totals[EdgeCounter::OptionsWritten as usize] = 4;
        totals[EdgeCounter::ReserveFailed as usize] = 1;
        totals
    }));
    let text = m.render(&HealthRegistry::default());
    for line in [
        "toa_proxy_toa_options_written_total 4",
        "toa_proxy_toa_options_failed_total 1",
        "toa_proxy_edge_writer_total{counter=\"options_written\"} 4",
        "toa_proxy_edge_writer_total{counter=\"store_failed\"} 0",
    ] {
        has_line(&text, line);
    }
}

/// Every label value of every enum-indexed family is exported, so a counter added to
/// one of the enums cannot go unseen.
#[test]
fn render_lists_every_counter_of_every_enum() {
    let m = Metrics::default();
    m.rule("web");
    let text = m.render(&HealthRegistry::default());
    for k in ConnectErrorKind::ALL {
        let kind = k.name();
        has_line(
            &text,
            &format!("toa_proxy_connect_errors_total{{rule=\"web\",kind=\"{kind}\"}} 0"),
        );
    }
    for r in Reject::ALL {
        let reason = r.name();
        has_line(
            &text,
            &format!("toa_proxy_connections_rejected_total{{rule=\"web\",reason=\"{reason}\"}} 0"),
        );
    }
    for r in DropReason::ALL {
        let reason = r.name();
        has_line(
            &text,
            &format!("toa_proxy_udp_drops_total{{rule=\"web\",reason=\"{reason}\"}} 0"),
        );
    }
    // Every family has its HELP and TYPE, and every sample line belongs to one: a
    // counter's samples carry the `_total` its TYPE line leaves out.
    let families: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let sample = l.split(['{', ' ']).next().unwrap();
        let typed = families.iter().any(|&(name, kind)| match kind {
            "counter" => sample.strip_suffix("_total") == Some(name),
            _ => sample == name,
        });
        assert!(typed, "{sample} has no TYPE line");
    }
}
