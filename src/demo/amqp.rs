//! The broker driver of `component demo --amqp URI`: the demo plays the platform's part
//! against a real RabbitMQ.
//!
//! It declares a flow of its own ([`super::topology`]: one direct exchange, the two steps'
//! input queues and an observer queue bound to every routing key the steps publish with),
//! runs `pollItems` and `request` as real workers ([`worker::serve`], in-process, each
//! with its own [`Settings`]), sends each step encrypted messages as the platform would, and
//! reads back and decrypts everything the workers publish. At the end it stops the workers,
//! which closes their channels: a delivery they had not acked would then be back in its
//! queue, so empty input queues prove every delivery was acked. Then it deletes the flow.

use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::checks::Checks;
use super::driver::{Driver, Round};
use super::journal::{Entry, Published};
use super::topology::Names;
use super::{DemoError, say};
use sailor::amqp::consumer::ready_count;
use sailor::amqp::headers::{self, int_of, int_value, text_of, text_value};
use sailor::amqp::publisher::json_properties;
use sailor::crypto::{Encoding, MessageCipher};
use sailor::event::{ErrorReport, Event, Keys};
use sailor::message::Message;
use sailor::secret::Password;
use sailor::settings::AmqpUri;
use sailor::step::Step;
use sailor::worker;

/// How long the demo waits for the broker to answer its connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a round waits for the messages it expects.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a round keeps listening after its last expected message, to catch extras.
const QUIET: Duration = Duration::from_millis(250);
/// How long stopping a worker may take (it has nothing in flight by then).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running flow: the topology, the two workers and the demo's own connection.
pub struct Flow {
    host: String,
    vhost: String,
    names: Names,
    connection: Connection,
    channel: Channel,
    observer: Consumer,
    cipher: MessageCipher,
    workers: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// A moment and the same moment in Unix milliseconds, to place published messages
    /// (their `end` header) among the HTTP exchanges.
    epoch: (Instant, i64),
    sent: usize,
    dead_letters: usize,
    deleted: bool,
}

impl Flow {
    /// Connects, declares the flow and starts a worker for each step.
    pub async fn start(uri: &AmqpUri, poll: Step, request: Step) -> Result<Self, DemoError> {
        let names = Names::new();
        // This run's own message key, as the platform gives each flow.
        let password = uuid::Uuid::new_v4().simple().to_string();
        let iv = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let cipher = MessageCipher::new(&Password::new(password.as_str()), &iv)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        let crypto = (password.as_str(), iv.as_str());
        let poll_settings = names.settings(uri, &names.poll, poll.name(), crypto)?;
        let request_settings = names.settings(uri, &names.request, request.name(), crypto)?;

        let unreachable = |reason: String| DemoError::Unreachable {
            host: uri.host(),
            vhost: uri.vhost().to_owned(),
            reason,
        };
        let properties =
            ConnectionProperties::default().with_connection_name("component-demo".into());
        let connection = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(uri.expose_secret(), properties),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(DemoError::Broker)?;
        let observer = match Self::open(&names, &channel).await {
            Ok(observer) => observer,
            Err(error) => {
                let _ = names.delete(&channel).await;
                let _ = connection.close(200, "failed".into()).await;
                return Err(DemoError::Broker(error));
            }
        };
        let workers = [(poll_settings, poll), (request_settings, request)]
            .into_iter()
            .map(|(settings, step)| {
                let (stop, stopped) = oneshot::channel::<()>();
                let shutdown = async {
                    let _ = stopped.await;
                };
                let running = tokio::spawn(async move {
                    // The demo's settings set no reconnection bound: serve runs to shutdown.
                    let _ = worker::serve(settings, step, json!({}), false, shutdown).await;
                });
                (stop, running)
            })
            .collect();
        Ok(Self {
            host: uri.host(),
            vhost: uri.vhost().to_owned(),
            names,
            connection,
            channel,
            observer,
            cipher,
            workers,
            epoch: (Instant::now(), headers::now_ms()),
            sent: 0,
            dead_letters: 0,
            deleted: false,
        })
    }

    /// Declares the topology and starts reading the observer queue; the channel then
    /// publishes with confirms.
    async fn open(names: &Names, channel: &Channel) -> Result<Consumer, lapin::Error> {
        names.declare(channel).await?;
        let observer = channel
            .basic_consume(
                names.observer.as_str().into(),
                "component-demo".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(observer)
    }

    /// Publishes `body` as a message to `step`'s queue, encrypted in `encoding`, and waits
    /// for the broker's confirm; returns the note saying so.
    async fn send(
        &mut self,
        to_poll: bool,
        body: Value,
        encoding: Encoding,
    ) -> Result<(Instant, Entry), DemoError> {
        self.sent += 1;
        let step = if to_poll {
            &self.names.poll
        } else {
            &self.names.request
        };
        let message_id = format!("{}-m{:02}", self.names.prefix, self.sent);
        let message = json!({"id": message_id, "body": body, "headers": {}, "attachments": {}});
        let payload = self.cipher.encode(message.to_string().as_bytes(), encoding);
        let mut headers = FieldTable::default();
        headers.insert(headers::MESSAGE_ID.into(), text_value(&message_id));
        if encoding == Encoding::Raw {
            headers.insert(
                headers::PROTOCOL_VERSION.into(),
                int_value(encoding.protocol_version()),
            );
        }
        let at = Instant::now();
        let confirm = self
            .channel
            .basic_publish(
                self.names.exchange.as_str().into(),
                self.names.key(step, "messages").as_str().into(),
                BasicPublishOptions::default(),
                &payload,
                json_properties().with_headers(headers),
            )
            .await
            .map_err(DemoError::Broker)?;
        confirm.await.map_err(DemoError::Broker)?;
        let what = if to_poll {
            "trigger message"
        } else {
            "request message"
        };
        let form = match encoding {
            Encoding::Base64 => "protocol v1, base64 of the ciphertext",
            Encoding::Raw => "protocol v2, raw ciphertext",
        };
        Ok((
            at,
            Entry::Note(format!(
                "send  {what} ...{} to queue {} ({form}, {} bytes), confirmed",
                &message_id[message_id.len() - 4..],
                step.queue,
                payload.len()
            )),
        ))
    }

    /// Reads what the workers publish until `expected` messages of kind `terminal` (or
    /// failures standing in for them) arrived, plus a quiet moment for extras.
    async fn collect(
        &mut self,
        mut entries: Vec<(Instant, Entry)>,
        terminal: &str,
        expected: usize,
    ) -> Result<Round, DemoError> {
        let deadline = Instant::now() + ROUND_TIMEOUT;
        let (mut seen, mut failures) = (0, 0);
        let mut quiet_until = None;
        loop {
            let until = quiet_until.unwrap_or(deadline);
            let next = tokio::time::timeout_at(until.into(), self.observer.next()).await;
            let delivery = match next {
                Err(_) | Ok(None) => break,
                Ok(Some(Err(error))) => return Err(DemoError::Broker(error)),
                Ok(Some(Ok(delivery))) => delivery,
            };
            let (kind, entry) = self.read(&delivery);
            match kind.as_str() {
                k if k == terminal => seen += 1,
                "data" | "snapshot" | "updateKeys" => {}
                _ => failures += 1,
            }
            entries.push(entry);
            if quiet_until.is_none() && seen + failures >= expected {
                quiet_until = Some(Instant::now() + QUIET);
            }
        }
        if seen + failures < expected {
            failures += expected - seen - failures;
            entries.push((
                Instant::now(),
                Entry::Note(format!(
                    "!!!   only {seen} of {expected} expected {terminal} message(s) arrived within {} s",
                    ROUND_TIMEOUT.as_secs()
                )),
            ));
        }
        Ok(Round {
            entries,
            completed: failures == 0,
        })
    }

    /// Decodes one published message: its kind (the routing key's last part) and its entry.
    fn read(&mut self, delivery: &Delivery) -> (String, (Instant, Entry)) {
        let routing_key = delivery.routing_key.as_str().to_owned();
        let kind = routing_key
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let table = delivery.properties.headers().as_ref();
        let header = |name: &str| table.and_then(|t| t.inner().get(name));
        let at = header("end")
            .and_then(int_of)
            .map_or_else(Instant::now, |end| {
                let (base, base_ms) = self.epoch;
                // `end` is whole milliseconds: place it mid-millisecond.
                base + Duration::from_millis(end.saturating_sub(base_ms).max(0) as u64)
                    + Duration::from_micros(500)
            });
        let encoding = Encoding::from_protocol_version(header("protocolVersion").and_then(int_of));
        let event = match kind.as_str() {
            "data" => self
                .decrypt(&delivery.data, encoding)
                .and_then(|v| serde_json::from_value::<Message>(v).ok())
                .map(Event::Data),
            "updateKeys" => self
                .decrypt(&delivery.data, encoding)
                .map(|v| Event::UpdateKeys(Keys::new(v))),
            "snapshot" => serde_json::from_slice(&delivery.data)
                .ok()
                .map(Event::Snapshot),
            "error" => serde_json::from_slice::<Value>(&delivery.data)
                .ok()
                .and_then(|v| self.decrypt(v["error"].as_str()?.as_bytes(), Encoding::Base64))
                .map(|report| {
                    Event::Error(ErrorReport {
                        name: report["name"].as_str().unwrap_or_default().to_owned(),
                        message: report["message"].as_str().unwrap_or_default().to_owned(),
                        stack: String::new(),
                    })
                }),
            _ => None,
        };
        let entry = match event {
            Some(event) => {
                let headers = ["accountId", "keysEvent"]
                    .into_iter()
                    .filter_map(|name| {
                        header(name)
                            .and_then(text_of)
                            .map(|value| (name.to_owned(), value))
                    })
                    .collect();
                Entry::Published(Published {
                    event,
                    routing_key,
                    headers,
                })
            }
            None if kind == "dead" => {
                self.dead_letters += 1;
                Entry::Note(format!(
                    "dead  a delivery was rejected and dead-lettered to {routing_key}"
                ))
            }
            None => Entry::Note(format!(
                "amqp  a {kind} message on {routing_key} that the demo cannot read"
            )),
        };
        (kind, (at, entry))
    }

    fn decrypt(&self, body: &[u8], encoding: Encoding) -> Option<Value> {
        let plain = self.cipher.decode(body, encoding).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// Messages ready in `queue`.
    async fn ready(&self, queue: &str) -> Result<u32, DemoError> {
        ready_count(&self.channel, queue)
            .await
            .map_err(DemoError::Broker)
    }

    /// Stops the workers, waiting for each to close its connections.
    async fn stop_workers(&mut self) {
        for (stop, running) in self.workers.drain(..) {
            let _ = stop.send(());
            if tokio::time::timeout(STOP_TIMEOUT, running).await.is_err() {
                tracing::warn!(message = "A demo worker did not stop in time.");
            }
        }
    }

    /// Deletes the flow and closes the demo's connection.
    async fn delete(&mut self) -> Result<(), DemoError> {
        if std::mem::replace(&mut self.deleted, true) {
            return Ok(());
        }
        let deleted = self.names.delete(&self.channel).await;
        let _ = self.connection.close(200, "done".into()).await;
        deleted.map_err(DemoError::Broker)
    }
}

impl Driver for Flow {
    fn title(&self) -> &'static str {
        "component demo --amqp: the REST component and its runtime through RabbitMQ, against a loopback OAuth2 provider"
    }

    fn preamble(&self) -> Vec<String> {
        let names = &self.names;
        vec![
            format!("  broker    {} vhost {}", self.host, self.vhost),
            format!("  exchange  {} (direct)", names.exchange),
            format!(
                "  queue     {}  <- {}, consumed by the pollItems worker",
                names.poll.queue,
                names.key(&names.poll, "messages")
            ),
            format!(
                "  queue     {}  <- {}, consumed by the request worker",
                names.request.queue,
                names.key(&names.request, "messages")
            ),
            format!(
                "  queue     {}  <- {}.step_1|step_2.data|error|snapshot|rebound|updateKeys, and dead letters",
                names.observer, names.prefix
            ),
            "  workers   two, running the library's worker loop in-process: prefetch 1, protocol v2 out,".to_owned(),
            "            messages AES-256-CBC encrypted with this run's password and IV; the two steps".to_owned(),
            "            share one account's token cache, as the in-process demo's do".to_owned(),
        ]
    }

    fn update_keys_noun(&self) -> &'static str {
        "message"
    }

    async fn poll(&mut self) -> Result<Round, DemoError> {
        let sent = self.send(true, json!({}), Encoding::Base64).await?;
        self.collect(vec![sent], "snapshot", 1).await
    }

    async fn request(&mut self, bodies: Vec<Value>) -> Result<Round, DemoError> {
        let expected = bodies.len();
        let mut sent = Vec::new();
        for body in bodies {
            sent.push(self.send(false, body, Encoding::Raw).await?);
        }
        self.collect(sent, "data", expected).await
    }

    async fn finish(
        &mut self,
        out: &mut (dyn Write + Send),
        checks: &mut Checks,
    ) -> Result<(), DemoError> {
        self.stop_workers().await;
        let ready = match (
            self.ready(&self.names.poll.queue).await,
            self.ready(&self.names.request.queue).await,
        ) {
            (Ok(poll), Ok(request)) => Ok((poll, request)),
            (Err(error), _) | (_, Err(error)) => Err(error),
        };
        let deleted = self.delete().await;
        let (poll, request) = ready?;
        deleted?;
        say(out, "")?;
        say(out, "Broker")?;
        say(
            out,
            format!(
                "  workers   stopped; {} messages sent, their channels closed, so an unacked delivery would be back in its queue",
                self.sent
            ),
        )?;
        say(
            out,
            format!(
                "  ack       {poll} message(s) left in {}, {request} in {}",
                self.names.poll.queue, self.names.request.queue
            ),
        )?;
        say(
            out,
            format!(
                "  rejected  {} delivery(ies) dead-lettered",
                self.dead_letters
            ),
        )?;
        say(
            out,
            format!(
                "  deleted   exchange {} and its 3 queues",
                self.names.exchange
            ),
        )?;
        checks.expect_eq(
            (poll, request),
            (0, 0),
            "both input queues are empty after the workers stopped: every delivery was acked",
        );
        checks.expect_eq(self.dead_letters, 0, "no delivery was rejected");
        Ok(())
    }
}
