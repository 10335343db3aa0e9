//! Pure part of the `sqs` source: queue depths → metric families and the status section.

use std::collections::BTreeMap;

use crate::metrics::{Labels, MetricFamily};

/// A watched queue, as resolved in the latest successful run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueRef {
    pub name: String,
    pub region: String,
    pub url: String,
    pub dead_letter: bool,
    /// For a dead-letter queue: the queues whose RedrivePolicy targets it.
    pub source_queues: Vec<String>,
}

impl QueueRef {
    pub fn labels(&self) -> Labels {
        let mut labels = vec![
            ("queue", self.name.clone()),
            ("region", self.region.clone()),
            ("dead_letter", self.dead_letter.to_string()),
        ];
        if self.dead_letter && !self.source_queues.is_empty() {
            labels.push(("source_queue", self.source_queues.join(",")));
        }
        labels
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// A queue and its depth, or None when reading it failed this time.
pub type QueueRow = (QueueRef, Option<Depth>);

/// Extracts the dead-letter queue ARN's (region, account, name) from a RedrivePolicy document.
pub fn dead_letter_target(redrive_policy: &str) -> Option<(String, String, String)> {
    let doc: serde_json::Value = serde_json::from_str(redrive_policy).ok()?;
    let arn = doc.get("deadLetterTargetArn")?.as_str()?;
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", region, account, name] => Some((region.to_string(), account.to_string(), name.to_string())),
        _ => None,
    }
}

pub fn families(rows: &[QueueRow]) -> Vec<MetricFamily> {
    let mut visible = MetricFamily::gauge(
        "polo_sqs_messages_visible",
        "Messages available for retrieval (SQS ApproximateNumberOfMessages; approximate).",
    );
    let mut in_flight = MetricFamily::gauge(
        "polo_sqs_messages_in_flight",
        "Messages received but not yet deleted (SQS ApproximateNumberOfMessagesNotVisible; approximate).",
    );
    let mut delayed = MetricFamily::gauge(
        "polo_sqs_messages_delayed",
        "Messages delayed and not yet available (SQS ApproximateNumberOfMessagesDelayed; approximate).",
    );
    let mut up = MetricFamily::gauge(
        "polo_sqs_queue_up",
        "1 if the queue's attributes were read in the latest run, 0 if that failed (deleted, denied, throttled).",
    );
    for (queue, depth) in rows {
        up.push(
            vec![("queue", queue.name.clone()), ("region", queue.region.clone())],
            f64::from(u8::from(depth.is_some())),
        );
        if let Some(d) = depth {
            visible.push(queue.labels(), d.visible as f64);
            in_flight.push(queue.labels(), d.in_flight as f64);
            delayed.push(queue.labels(), d.delayed as f64);
        }
    }
    vec![visible, in_flight, delayed, up]
}

/// The status document's `sqs` section: the spec's queue depth and DLQ depth.
pub fn status(rows: &[QueueRow]) -> serde_json::Value {
    let mut queues = BTreeMap::new();
    let mut dead_letter = BTreeMap::new();
    for (q, depth) in rows {
        let Some(d) = depth else { continue };
        let key = format!("{}/{}", q.region, q.name);
        if q.dead_letter {
            dead_letter.insert(key, serde_json::json!({"name": q.name, "region": q.region, "source_queues": q.source_queues, "visible": d.visible}));
        } else {
            queues.insert(key, serde_json::json!({"name": q.name, "region": q.region, "visible": d.visible, "in_flight": d.in_flight, "delayed": d.delayed}));
        }
    }
    serde_json::json!({
        "queue_depth": queues.values().map(|q| q["visible"].as_u64().unwrap_or(0)).sum::<u64>(),
        "dlq_depth": dead_letter.values().map(|q| q["visible"].as_u64().unwrap_or(0)).sum::<u64>(),
        "queues": queues.into_values().collect::<Vec<_>>(),
        "dead_letter_queues": dead_letter.into_values().collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Value;

    fn q(name: &str, dlq: bool, sources: &[&str]) -> QueueRef {
        QueueRef {
            name: name.into(),
            region: "eu-west-1".into(),
            url: format!("http://x/{name}"),
            dead_letter: dlq,
            source_queues: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parses_redrive_policy() {
        let policy =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:polo-events-dlq","maxReceiveCount":"3"}"#;
        assert_eq!(
            dead_letter_target(policy),
            Some(("eu-west-1".into(), "123456789012".into(), "polo-events-dlq".into()))
        );
        assert_eq!(dead_letter_target("not json"), None);
        assert_eq!(dead_letter_target(r#"{"deadLetterTargetArn":"arn:aws:sns:x"}"#), None);
    }

    #[test]
    fn maps_depths_with_dead_letter_pairing() {
        let rows = vec![
            (q("polo-events", false, &[]), Some(Depth { visible: 12, in_flight: 1, delayed: 0 })),
            (q("polo-events-dlq", true, &["polo-events"]), Some(Depth { visible: 3, in_flight: 0, delayed: 0 })),
            (q("denied", false, &[]), None),
        ];
        let f = families(&rows);
        let dlq = f[0]
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| *k == "queue" && v == "polo-events-dlq"))
            .unwrap();
        assert!(dlq.labels.contains(&("source_queue", "polo-events".to_string())));
        assert!(dlq.labels.contains(&("dead_letter", "true".to_string())));
        assert_eq!(dlq.value, Value::Gauge(3.0));
        assert_eq!(f[0].samples.len(), 2, "no depth series for a queue that could not be read");
        let up: Vec<f64> = f[3].samples.iter().map(|s| if let Value::Gauge(v) = s.value { v } else { 0.0 }).collect();
        assert_eq!(up, vec![1.0, 1.0, 0.0]);
        let s = status(&rows);
        assert_eq!(s["queue_depth"], 12);
        assert_eq!(s["dlq_depth"], 3);
    }
}
