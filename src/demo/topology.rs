//! The flow `component demo --amqp` declares on the broker, as the platform would for two
//! steps: one direct exchange, each step's input queue (rejected input dead-lettered back to
//! the exchange, so a rejection is seen, not lost), an observer queue bound to every routing
//! key the steps publish with, and each step's worker settings. Every name carries a fresh id,
//! so runs never meet; the queues expire when left unused, should the demo be killed.

use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};

use super::DemoError;
use sailor::amqp::headers::text_value;
use sailor::settings::{AmqpUri, Settings};

/// A queue left behind by a killed demo is deleted after this long unused (`x-expires`);
/// the exchange, auto-deleting, goes with its last binding.
const QUEUE_EXPIRES_MS: i32 = 60_000;
/// The routing-key kinds a step publishes with.
const KINDS: [&str; 5] = ["data", "error", "snapshot", "rebound", "updateKeys"];

/// One step of the demo's flow.
pub struct FlowStep {
    /// `step_1` or `step_2`, as the platform numbers them.
    pub id: &'static str,
    /// Its input queue.
    pub queue: String,
}

/// The flow's names, all carrying one fresh id so that runs never meet.
pub struct Names {
    /// `component-demo-<id>`: the flow id, and the start of every name.
    pub prefix: String,
    /// The flow's direct exchange.
    pub exchange: String,
    /// `step_1`, running `pollItems`.
    pub poll: FlowStep,
    /// `step_2`, running `request`.
    pub request: FlowStep,
    /// The queue bound to everything the steps publish, which the demo reads.
    pub observer: String,
}

impl Names {
    /// Names with a fresh id.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("component-demo-{}", &id[..12]);
        Self {
            exchange: format!("{prefix}:exchange"),
            poll: FlowStep {
                id: "step_1",
                queue: format!("{prefix}:step_1:messages"),
            },
            request: FlowStep {
                id: "step_2",
                queue: format!("{prefix}:step_2:messages"),
            },
            observer: format!("{prefix}:observer"),
            prefix,
        }
    }

    /// The routing key of `kind` for `step`.
    pub fn key(&self, step: &FlowStep, kind: &str) -> String {
        format!("{}.{}.{kind}", self.prefix, step.id)
    }

    /// Where rejected input goes (dead letters), so that a rejection is seen, not lost.
    pub fn dead_key(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// What the platform declares for a flow of two steps.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    auto_delete: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for (queue, is_input) in [
            (&self.poll.queue, true),
            (&self.request.queue, true),
            (&self.observer, false),
        ] {
            let mut args = FieldTable::default();
            args.insert("x-expires".into(), AMQPValue::LongInt(QUEUE_EXPIRES_MS));
            if is_input {
                args.insert("x-dead-letter-exchange".into(), text_value(&self.exchange));
                args.insert(
                    "x-dead-letter-routing-key".into(),
                    text_value(&self.dead_key()),
                );
            }
            channel
                .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
                .await?;
        }
        let mut bindings = vec![
            (&self.poll.queue, self.key(&self.poll, "messages")),
            (&self.request.queue, self.key(&self.request, "messages")),
            (&self.observer, self.dead_key()),
        ];
        for step in [&self.poll, &self.request] {
            bindings.extend(KINDS.map(|kind| (&self.observer, self.key(step, kind))));
        }
        for (queue, key) in bindings {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Deletes the exchange first (taking its bindings), then the queues.
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        for queue in [&self.poll.queue, &self.request.queue, &self.observer] {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    /// The worker settings of `step`, as the platform would set its environment.
    pub fn settings(
        &self,
        uri: &AmqpUri,
        step: &FlowStep,
        function: &str,
        crypto: (&str, &str),
    ) -> Result<Settings, DemoError> {
        let vars = [
            ("ELASTICIO_AMQP_URI", uri.expose_secret().to_owned()),
            ("ELASTICIO_LISTEN_MESSAGES_ON", step.queue.clone()),
            ("ELASTICIO_PUBLISH_MESSAGES_TO", self.exchange.clone()),
            ("ELASTICIO_DATA_ROUTING_KEY", self.key(step, "data")),
            ("ELASTICIO_ERROR_ROUTING_KEY", self.key(step, "error")),
            ("ELASTICIO_SNAPSHOT_ROUTING_KEY", self.key(step, "snapshot")),
            ("ELASTICIO_REBOUND_ROUTING_KEY", self.key(step, "rebound")),
            (
                "ELASTICIO_UPDATE_KEYS_ROUTING_KEY",
                self.key(step, "updateKeys"),
            ),
            ("ELASTICIO_FUNCTION", function.to_owned()),
            ("ELASTICIO_MESSAGE_CRYPTO_PASSWORD", crypto.0.to_owned()),
            ("ELASTICIO_MESSAGE_CRYPTO_IV", crypto.1.to_owned()),
            ("ELASTICIO_FLOW_ID", self.prefix.clone()),
            ("ELASTICIO_EXEC_ID", format!("{}-exec", self.prefix)),
            ("ELASTICIO_STEP_ID", step.id.to_owned()),
            ("ELASTICIO_USER_ID", "demo-user".to_owned()),
            ("ELASTICIO_COMP_ID", "component".to_owned()),
            (
                "ELASTICIO_CONTAINER_ID",
                format!("{}-{}", self.prefix, step.id),
            ),
            ("ELASTICIO_WORKSPACE_ID", "demo-workspace".to_owned()),
            // The demo builds the step itself (shared token cache, held clock) and hands it
            // to the worker, which therefore never reads its config source.
            ("ELASTICIO_CFG", "{}".to_owned()),
            ("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "1".to_owned()),
            ("ELASTICIO_PROTOCOL_VERSION", "2".to_owned()),
            ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "3".to_owned()),
        ];
        Settings::from_vars(vars).map_err(|e| DemoError::Setup(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_publishes_on_its_own_keys_of_the_flow_exchange() {
        let names = Names::new();
        let uri = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        let settings = names
            .settings(
                &uri,
                &names.request,
                "request",
                ("password", "iv=any16_symbols"),
            )
            .unwrap();
        let prefix = &names.prefix;
        assert!(
            prefix.starts_with("component-demo-") && prefix.len() == 27,
            "{prefix}"
        );
        assert_eq!(
            settings.listen_messages_on,
            format!("{prefix}:step_2:messages")
        );
        assert_eq!(settings.publish_messages_to, format!("{prefix}:exchange"));
        assert_eq!(settings.data_routing_key, format!("{prefix}.step_2.data"));
        assert_eq!(settings.error_routing_key, format!("{prefix}.step_2.error"));
        assert_eq!(
            settings.update_keys_routing_key,
            format!("{prefix}.step_2.updateKeys")
        );
        assert_eq!(settings.identity.step_id, "step_2");
        assert_eq!(
            (settings.prefetch, settings.protocol.protocol_version()),
            (1, 2)
        );
        assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
        assert_ne!(
            Names::new().prefix,
            names.prefix,
            "every run has its own flow"
        );
    }
}
