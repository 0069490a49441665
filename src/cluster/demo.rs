//! `warden serve --demo --cluster …`: the demo directory seeded through the directory log, once
//! for the whole cluster, and only into an empty log.
//!
//! Every sidecar started with `--demo` runs [`Cluster::spawn_demo_seed`] once its stream answers.
//! It reads the log: empty, or holding only a prefix of the demo's entries (a seeder that died
//! halfway; `warden.policy` epochs in between are fine), it publishes the rest; anything else
//! (a write of someone else, a purged log, a snapshot in the bucket) means the directory is not
//! the demo's to seed, and nothing is published. Two guards make N sidecars seeding at once one
//! seed: entry `i` of the demo has the fixed message id (and request id) [`demo_id`], so a second
//! copy inside the duplicate window is dropped by the log, and each is published with
//! `expected_last_sequence` = the last entry the seeder read, so a seeder that lost a race gets
//! a refusal and reads the log again instead of appending after someone else's entry. The times
//! a seeder draws do not matter: only one copy of each entry is stored, and apply takes its time
//! from the log.
//!
//! The demo's changes are applied like any other entry, by every sidecar's apply loop, under the
//! log's policy, as the operator (the envelope's operator bit: the demo picks org plans).

use super::{
    APPLY_VERSION_HEADER, Cluster, SUBJECT_CHANGES, SUBJECT_POLICY, apply_version, duplicate_in_process,
    snapshot,
};
use crate::directory::ChangeEnvelope;
use async_nats::jetstream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The message id and request id of the demo's entry `i` (1-based) of `n`.
pub fn demo_id(i: usize, n: usize) -> String {
    format!("warden-demo-{i}-of-{n}")
}

/// The demo's changes as the seed publishes them: entry `i` with request id [`demo_id`], as
/// the operator (the demo picks org plans, an operator's choice).
pub fn envelopes(at_ms: u64) -> Vec<ChangeEnvelope> {
    let changes = crate::store::demo::demo_changes(at_ms);
    let n = changes.len();
    changes
        .into_iter()
        .enumerate()
        .map(|(i, env)| {
            let mut env = env.as_operator(true);
            env.request_id = Some(demo_id(i + 1, n));
            env
        })
        .collect()
}

/// What one seeding attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// The whole demo is in the log now; this attempt published that many of its entries.
    Published(usize),
    /// The whole demo was in the log already.
    Already,
    /// The log holds something else (why): not the demo's to seed.
    NotEmpty(String),
}

/// One seeding attempt of `envelopes` (from [`envelopes`]) on `stream` (see the module doc).
/// An error (the log unreachable, a timeout) leaves the log a prefix of the demo: try again.
pub async fn seed(
    js: &jetstream::Context,
    stream: &str,
    envelopes: &[ChangeEnvelope],
    timeout: Duration,
) -> Result<Seeded, String> {
    let mut published = 0;
    loop {
        let (done, mut last) = match prefix(js, stream, envelopes.len()).await? {
            Prefix::Demo { done, last } => (done, last),
            Prefix::NotEmpty(why) => return Ok(Seeded::NotEmpty(why)),
        };
        if done == envelopes.len() {
            return Ok(if published == 0 {
                Seeded::Already
            } else {
                Seeded::Published(published)
            });
        }
        let mut raced = false;
        for (i, env) in envelopes.iter().enumerate().skip(done) {
            let id = demo_id(i + 1, envelopes.len());
            let payload = serde_json::to_vec(env).map_err(|e| e.to_string())?;
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(&id)
                .expected_last_sequence(last)
                .header(APPLY_VERSION_HEADER, apply_version().to_string().as_str());
            let acked = tokio::time::timeout(timeout, async {
                let ack = js.send_publish(SUBJECT_CHANGES, publish).await?;
                ack.await
            })
            .await
            .map_err(|_| format!("publishing {id}: no acknowledgement in time"))?;
            match acked {
                Ok(ack) if !ack.duplicate => {
                    last = ack.sequence;
                    published += 1;
                }
                // Another seeder stored this entry first, or something else was appended: read
                // the log again.
                Ok(_) => {
                    raced = true;
                    break;
                }
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    raced = true;
                    break;
                }
                // The same entry of another seeder is being stored right now: give it a moment.
                Err(e) if duplicate_in_process(&e) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    raced = true;
                    break;
                }
                Err(e) => return Err(format!("publishing {id}: {e}")),
            }
        }
        if !raced {
            return Ok(Seeded::Published(published));
        }
    }
}

/// What a look at the log found.
enum Prefix {
    /// The log holds the first `done` demo entries and nothing else but policy epochs; its last
    /// sequence is `last`.
    Demo { done: usize, last: u64 },
    /// The log holds something else: not the demo's to seed.
    NotEmpty(String),
}

impl Cluster {
    /// Seed the demo through the log in the background (see the module doc), retrying while
    /// the log is unreachable, until it is seeded, found not empty, or `shutdown`.
    pub fn spawn_demo_seed(self: &Arc<Self>, shutdown: crate::api::shutdown::Shutdown) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.wait() => {}
                _ = me.seed_demo() => {}
            }
        });
    }

    async fn seed_demo(&self) {
        let envelopes = envelopes(crate::api::directory::now_ms());
        let mut delay = Duration::from_millis(200);
        loop {
            if self.connected() && self.stream_ready.load(Ordering::Relaxed) && self.halted.lock().is_none() {
                match seed(
                    &self.js,
                    &self.config.stream,
                    &envelopes,
                    self.config.write_timeout,
                )
                .await
                {
                    Ok(Seeded::Published(published)) => {
                        tracing::info!(
                            published,
                            entries = envelopes.len(),
                            "--demo: seeded the demo directory through the directory log"
                        );
                        return;
                    }
                    Ok(Seeded::Already) => {
                        tracing::info!(
                            "--demo: the demo is already in the directory log; not seeding it again"
                        );
                        return;
                    }
                    Ok(Seeded::NotEmpty(why)) => {
                        tracing::info!(why = %why, "--demo: the directory log is not empty; not seeding the demo");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "--demo: seeding through the directory log failed; trying again");
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Read the log: is it empty or a prefix of the demo's `n` entries?
async fn prefix(js: &jetstream::Context, name: &str, n: usize) -> Result<Prefix, String> {
    if let Some(bucket) = snapshot::bucket(js, name, false).await?
        && !snapshot::list(&bucket).await?.is_empty()
    {
        return Ok(Prefix::NotEmpty("the log has directory snapshots".into()));
    }
    let mut stream = js
        .get_stream(name)
        .await
        .map_err(|e| format!("opening stream `{name}`: {e}"))?;
    let state = stream.info().await.map_err(|e| e.to_string())?.state.clone();
    if state.last_sequence == 0 {
        return Ok(Prefix::Demo { done: 0, last: 0 });
    }
    if state.first_sequence > 1 {
        return Ok(Prefix::NotEmpty(format!(
            "entries below {} were purged",
            state.first_sequence
        )));
    }
    // The demo plus a few policy epochs at most; a longer log is someone's directory.
    if state.last_sequence > (2 * n) as u64 {
        return Ok(Prefix::NotEmpty(format!("{} entries", state.last_sequence)));
    }
    let mut done = 0;
    for seq in 1..=state.last_sequence {
        let message = stream
            .get_raw_message(seq)
            .await
            .map_err(|e| format!("reading entry {seq}: {e}"))?;
        if message.subject.as_str() == SUBJECT_POLICY {
            continue;
        }
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_string());
        if done < n && id.as_deref() == Some(demo_id(done + 1, n).as_str()) {
            done += 1;
        } else {
            return Ok(Prefix::NotEmpty(format!("entry {seq} is not the demo's")));
        }
    }
    Ok(Prefix::Demo {
        done,
        last: state.last_sequence,
    })
}
