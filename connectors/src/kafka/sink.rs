//! The Kafka sink: alerts and dead letters through one idempotent producer
//! (`enable.idempotence=true`: acks from all in-sync replicas, retries that
//! neither duplicate nor reorder).
//!
//! Every send is followed to its delivery report. A failed delivery is sent again
//! (with backoff) until the broker takes it — the input offset is not stored
//! meanwhile — except for errors that no retry can fix (the message is too
//! large), which [`deliver`] reports so the pipeline can dead-letter the input
//! instead of stalling. A producer that hit a fatal error (the idempotent
//! producer's state was lost, e.g. by a broker that forgot it) is replaced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use super::metrics::KafkaMetrics;
use super::source::{forward_log, log_level};

/// The producer's callbacks: logs and error counts.
pub(crate) struct SinkContext {
    metrics: KafkaMetrics,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log("producer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics
            .client_errors
            .with_label_values(&["producer"])
            .inc();
        tracing::warn!(target: "librdkafka", client = "producer", %error, reason);
    }

    fn stats(&self, _statistics: rdkafka::statistics::Statistics) {}
}

type KafkaProducer = FutureProducer<SinkContext>;

/// A send handed to librdkafka: the producer that took it and its delivery
/// report (or why it could not be queued).
pub(crate) struct Queued {
    producer: Arc<KafkaProducer>,
    delivery: Result<DeliveryFuture, KafkaError>,
}

/// One message to send, kept until the broker acknowledges it (a failed delivery
/// is sent again from here).
#[derive(Debug, Clone)]
pub(crate) struct OutMessage {
    /// Destination topic.
    pub topic: Arc<str>,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Vec<u8>,
    /// Headers (name, value).
    pub headers: Vec<(&'static str, String)>,
}

impl OutMessage {
    fn owned_headers(&self) -> Option<OwnedHeaders> {
        if self.headers.is_empty() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (key, value) in &self.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        Some(headers)
    }
}

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// The broker refuses this message whatever the retry (e.g. too large).
    #[error("the broker refuses this message for good: {0}")]
    Permanent(KafkaError),
    /// The pipeline is stopping; the message may or may not have arrived.
    #[error("stopped before the broker acknowledged the message")]
    Stopped,
}

/// The producer, replaceable after a fatal error.
pub(crate) struct Sink {
    producer: Mutex<Arc<KafkaProducer>>,
    settings: BTreeMap<String, String>,
    metrics: KafkaMetrics,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Sink {
    /// Creates the producer with `settings` (librdkafka keys).
    pub fn new(
        settings: BTreeMap<String, String>,
        metrics: KafkaMetrics,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> KafkaResult<Self> {
        let producer = create_producer(&settings, &metrics)?;
        Ok(Self {
            producer: Mutex::new(Arc::new(producer)),
            settings,
            metrics,
            stopping,
        })
    }

    fn producer(&self) -> Arc<KafkaProducer> {
        Arc::clone(&self.producer.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the producer if it is still the broken one; `why` says what broke.
    fn replace(&self, broken: &Arc<KafkaProducer>, why: &str) {
        let mut slot = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&slot, broken) {
            return; // someone else replaced it already
        }
        match create_producer(&self.settings, &self.metrics) {
            Ok(fresh) => {
                tracing::warn!(
                    why,
                    fatal_error = ?broken.client().fatal_error(),
                    "the alert producer was replaced; unacknowledged alerts are sent again by the new one"
                );
                *slot = Arc::new(fresh);
            }
            Err(err) => tracing::error!(error = %err, "cannot replace the failed alert producer"),
        }
    }

    /// Queues `message` for sending (waiting while librdkafka's queue is full).
    pub async fn send(&self, message: &OutMessage) -> Queued {
        let mut backoff = Duration::from_millis(1);
        loop {
            let producer = self.producer();
            let mut record =
                FutureRecord::<[u8], [u8]>::to(&message.topic).payload(&message.payload);
            if let Some(key) = &message.key {
                record = record.key(key.as_slice());
            }
            if let Some(headers) = message.owned_headers() {
                record = record.headers(headers);
            }
            match producer.send_result(record) {
                Ok(future) => {
                    return Queued {
                        producer,
                        delivery: Ok(future),
                    };
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's own queue is full: wait for deliveries to drain it.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                Err((err, _)) => {
                    return Queued {
                        producer,
                        delivery: Err(err),
                    };
                }
            }
        }
    }

    /// Sends `message` and follows it until the broker acknowledges it, sending it
    /// again after each failed delivery; gives up only on a permanent error or
    /// when the pipeline stops.
    pub async fn deliver(
        &self,
        message: &OutMessage,
        first: Option<Queued>,
    ) -> Result<(), DeliveryError> {
        let mut attempt = first;
        let mut backoff = Duration::from_millis(50);
        loop {
            let Queued { producer, delivery } = match attempt.take() {
                Some(queued) => queued,
                None => self.send(message).await,
            };
            let error = match delivery {
                Ok(future) => match future.await {
                    Ok(Ok(_delivery)) => return Ok(()),
                    Ok(Err((err, _message))) => err,
                    // The producer was dropped (replaced) before reporting.
                    Err(_canceled) => KafkaError::Canceled,
                },
                Err(err) => err,
            };
            if is_permanent(&error) {
                return Err(DeliveryError::Permanent(error));
            }
            if producer.client().fatal_error().is_some() {
                self.replace(
                    &producer,
                    "fatal error (e.g. the idempotent producer's state was lost)",
                );
            } else if is_stuck(&error) {
                // message.timeout.ms passed without an acknowledgement. Besides a
                // broker that is away, this is how an idempotent producer shows a
                // broker that forgot its producer id (a broker restarted without
                // its state: librdkafka bumps the epoch locally and retries
                // forever). A fresh producer asks for a new id; its first sends
                // also tell whether the broker is back.
                self.replace(&producer, "no acknowledgement within message.timeout.ms");
            }
            if *self.stopping.borrow() {
                // Shutting down with the broker unreachable: give up; the input
                // offset stays unstored, so the message is read again.
                return Err(DeliveryError::Stopped);
            }
            self.metrics.delivery_retries.inc();
            tracing::debug!(error = %error, topic = %message.topic, "delivery failed; sending again");
            let mut stopping = self.stopping.clone();
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopping.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Waits up to `timeout` for everything queued to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(err) = self.producer().flush(timeout) {
            tracing::warn!(error = %err, "producer flush at shutdown did not finish");
        }
    }
}

fn create_producer(
    settings: &BTreeMap<String, String>,
    metrics: &KafkaMetrics,
) -> KafkaResult<KafkaProducer> {
    let mut config = ClientConfig::new();
    for (key, value) in settings {
        config.set(key, value);
    }
    config.set_log_level(log_level(settings));
    config.create_with_context(SinkContext {
        metrics: metrics.clone(),
    })
}

/// Errors after which the same producer is not tried again.
fn is_stuck(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut)
}

/// Errors no resend can fix for this message.
fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_message_specific_errors_are_permanent() {
        assert!(is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::NotEnoughReplicas
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!is_permanent(&KafkaError::Canceled));
    }
}
