//! Pure part of the `sqs` source: queue depths → metric families and the status section.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::queues::{Depth, QueueRef, QUEUE_LABELS};
use crate::metrics::{Def, MetricFamily};

/// A queue and its depth, or None when reading it failed this time.
pub type QueueRow = (QueueRef, Option<Depth>);

pub static VISIBLE: Def = Def::gauge(
    "polo_sqs_messages_visible",
    "Messages available for retrieval (SQS ApproximateNumberOfMessages; approximate).",
    QUEUE_LABELS,
);
pub static IN_FLIGHT: Def = Def::gauge(
    "polo_sqs_messages_in_flight",
    "Messages received but not yet deleted (SQS ApproximateNumberOfMessagesNotVisible; approximate).",
    QUEUE_LABELS,
);
pub static DELAYED: Def = Def::gauge(
    "polo_sqs_messages_delayed",
    "Messages delayed and not yet available (SQS ApproximateNumberOfMessagesDelayed; approximate).",
    QUEUE_LABELS,
);
pub static QUEUE_UP: Def = Def::gauge(
    "polo_sqs_queue_up",
    "1 if the queue's attributes were read in the latest run, 0 if that failed (deleted, denied, throttled).",
    &["queue", "region"],
);

pub fn families(rows: &[QueueRow]) -> Vec<MetricFamily> {
    let mut visible = VISIBLE.family();
    let mut in_flight = IN_FLIGHT.family();
    let mut delayed = DELAYED.family();
    let mut up = QUEUE_UP.family();
    for (queue, depth) in rows {
        up.push([queue.name.clone(), queue.region.clone()], f64::from(u8::from(depth.is_some())));
        if let Some(d) = depth {
            visible.push(queue.label_values(), d.visible as f64);
            in_flight.push(queue.label_values(), d.in_flight as f64);
            delayed.push(queue.label_values(), d.delayed as f64);
        }
    }
    vec![visible, in_flight, delayed, up]
}

/// The status document's `sqs` section: queue depth and dead-letter depth, as Polo's status page shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqsStatus {
    pub queue_depth: u64,
    pub dlq_depth: u64,
    pub queues: Vec<QueueStatus>,
    pub dead_letter_queues: Vec<DeadLetterStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    pub name: String,
    pub region: String,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterStatus {
    pub name: String,
    pub region: String,
    pub source_queues: Vec<String>,
    pub visible: u64,
}

pub fn status(rows: &[QueueRow]) -> SqsStatus {
    let mut queues = BTreeMap::new();
    let mut dead_letter = BTreeMap::new();
    for (q, depth) in rows {
        let Some(d) = depth else { continue };
        let key = (q.region.clone(), q.name.clone());
        if q.dead_letter {
            dead_letter.insert(
                key,
                DeadLetterStatus {
                    name: q.name.clone(),
                    region: q.region.clone(),
                    source_queues: q.source_queues.clone(),
                    visible: d.visible,
                },
            );
        } else {
            queues.insert(
                key,
                QueueStatus {
                    name: q.name.clone(),
                    region: q.region.clone(),
                    visible: d.visible,
                    in_flight: d.in_flight,
                    delayed: d.delayed,
                },
            );
        }
    }
    SqsStatus {
        queue_depth: queues.values().map(|q| q.visible).sum(),
        dlq_depth: dead_letter.values().map(|q| q.visible).sum(),
        queues: queues.into_values().collect(),
        dead_letter_queues: dead_letter.into_values().collect(),
    }
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
    fn maps_depths_with_dead_letter_pairing() {
        let rows = vec![
            (q("polo-events", false, &[]), Some(Depth { visible: 12, in_flight: 1, delayed: 0 })),
            (q("polo-events-dlq", true, &["polo-events"]), Some(Depth { visible: 3, in_flight: 0, delayed: 0 })),
            (q("denied", false, &[]), None),
        ];
        let f = families(&rows);
        let visible = f.iter().find(|f| f.def() == &VISIBLE).unwrap();
        let dlq = visible
            .samples()
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| *k == "queue" && v == "polo-events-dlq"))
            .unwrap();
        assert!(dlq.labels.contains(&("source_queue", "polo-events".to_string())));
        assert!(dlq.labels.contains(&("dead_letter", "true".to_string())));
        assert_eq!(dlq.value, Value::Gauge(3.0));
        assert_eq!(visible.samples().len(), 2, "no depth series for a queue that could not be read");
        let up = f.iter().find(|f| f.def() == &QUEUE_UP).unwrap();
        let up: Vec<Value> = up.samples().iter().map(|s| s.value.clone()).collect();
        assert_eq!(up, vec![Value::Gauge(1.0), Value::Gauge(1.0), Value::Gauge(0.0)]);
        let s = status(&rows);
        assert_eq!(s.queue_depth, 12);
        assert_eq!(s.dlq_depth, 3);
    }
}
