//! AMQP headers: what the worker reads from an incoming delivery and the identity headers it
//! writes on everything it publishes (sailor-protocol.md 2.2-2.4).
//!
//! Identity travels in headers only, never in basic properties. Integers are written in the
//! smallest signed width, as amqplib does, and read in any width.

use std::borrow::Cow;
use std::sync::Arc;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::settings::Identity;

/// Header with the message id.
pub const MESSAGE_ID: &str = "messageId";
/// Header with the protocol version (body encoding).
pub const PROTOCOL_VERSION: &str = "protocolVersion";
/// Header counting rebounds.
pub const REBOUND_ITERATION: &str = "reboundIteration";
/// Header counting publish retries.
pub const RETRY: &str = "retry";
const META_PREFIX: &str = "x-eio-meta-";

/// The headers of an incoming delivery that the worker uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncomingHeaders {
    /// `messageId`.
    pub message_id: Option<String>,
    /// `threadId`, else `x-eio-meta-trace-id`.
    pub thread_id: Option<String>,
    /// `parentMessageId`: the message the previous step emitted this one from.
    pub parent_message_id: Option<String>,
    /// `stepId`: the previous step (for passthrough).
    pub step_id: Option<String>,
    /// `reply_to`.
    pub reply_to: Option<String>,
    /// `protocolVersion`, any integer width.
    pub protocol_version: Option<i64>,
    /// `reboundIteration`, any integer width.
    pub rebound_iteration: Option<i64>,
    /// Every `x-eio-meta-*` header, names lower-cased.
    pub meta: Vec<(String, AMQPValue)>,
}

/// An integer header value, whatever width (or decimal text) it arrived in.
pub fn int_of(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        AMQPValue::Float(v) if v.fract() == 0.0 => Some(*v as i64),
        AMQPValue::Double(v) if v.fract() == 0.0 => Some(*v as i64),
        other => text_of(other).and_then(|text| text.trim().parse().ok()),
    }
}

/// A text header value.
pub fn text_of(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// An integer as amqplib writes it: the smallest signed width that fits.
pub fn int_value(value: i64) -> AMQPValue {
    if let Ok(v) = i8::try_from(value) {
        AMQPValue::ShortShortInt(v)
    } else if let Ok(v) = i16::try_from(value) {
        AMQPValue::ShortInt(v)
    } else if let Ok(v) = i32::try_from(value) {
        AMQPValue::LongInt(v)
    } else {
        AMQPValue::LongLongInt(value)
    }
}

/// A text header value.
pub fn text_value(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

impl IncomingHeaders {
    /// Reads the headers of a delivery (absent headers read as empty).
    pub fn read(table: Option<&FieldTable>) -> Self {
        let mut headers = Self::default();
        let Some(table) = table else {
            return headers;
        };
        let mut trace_id = None;
        for (name, value) in table.inner() {
            let name = name.as_str();
            match name {
                MESSAGE_ID => headers.message_id = text_of(value).filter(|s| !s.is_empty()),
                "threadId" => headers.thread_id = text_of(value).filter(|s| !s.is_empty()),
                "parentMessageId" => headers.parent_message_id = text_of(value),
                "stepId" => headers.step_id = text_of(value),
                "reply_to" => headers.reply_to = text_of(value),
                PROTOCOL_VERSION => headers.protocol_version = int_of(value),
                REBOUND_ITERATION => headers.rebound_iteration = int_of(value),
                _ => {}
            }
            // Compared before lower-casing: most headers are not meta headers, and a name
            // is copied only when it is one.
            let is_meta = name
                .get(..META_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(META_PREFIX));
            if is_meta {
                let lower = name.to_ascii_lowercase();
                if lower == "x-eio-meta-trace-id" {
                    trace_id = text_of(value);
                }
                headers.meta.push((lower, value.clone()));
            }
        }
        if headers.thread_id.is_none() {
            headers.thread_id = trace_id;
        }
        headers
    }
}

/// The headers of one publish: its own, over those it shares with the step's other publishes
/// (the step's identity, [`step_headers`], built once). Kept apart until the publisher writes
/// them, so that the shared part is copied once per publish, into the frame, and not into
/// every message first and again for every attempt. The own headers are a short list, not a
/// table: a message has half a dozen, each set once, and they go into the written table
/// anyway.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublishHeaders {
    shared: Option<Arc<FieldTable>>,
    own: Vec<(Cow<'static, str>, AMQPValue)>,
}

impl PublishHeaders {
    /// Headers of their own (none yet) over `shared`.
    pub fn over(shared: Arc<FieldTable>) -> Self {
        Self {
            shared: Some(shared),
            own: Vec::with_capacity(OWN_HEADERS_CAPACITY),
        }
    }

    /// Sets a header of this publish; it wins over a shared one of the same name. Names are
    /// mostly the protocol's own (`messageId`, `threadId`, ...), kept without a copy.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: AMQPValue) {
        let name = name.into();
        match self.own.iter_mut().find(|(known, _)| *known == name) {
            Some((_, known)) => *known = value,
            None => self.own.push((name, value)),
        }
    }

    /// A header as it goes on the wire.
    pub fn get(&self, name: &str) -> Option<&AMQPValue> {
        self.own
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value)
            .or_else(|| self.shared.as_ref()?.inner().get(name))
    }

    /// The table as it goes on the wire: the shared headers, then this publish's own.
    pub fn to_table(&self) -> FieldTable {
        let mut table = self
            .shared
            .as_deref()
            .map_or_else(FieldTable::default, FieldTable::clone);
        for (name, value) in &self.own {
            table.insert(ShortString::from(&**name), value.clone());
        }
        table
    }
}

/// Room for a message's own headers without growing: its lineage (`parentMessageId`,
/// `threadId`, `start`), its stamp (`messageId`, `end`) and `protocolVersion`.
const OWN_HEADERS_CAPACITY: usize = 8;

/// A whole table of headers, none of them set since.
impl From<FieldTable> for PublishHeaders {
    fn from(table: FieldTable) -> Self {
        Self::over(Arc::new(table))
    }
}

/// Builds the headers of one incoming message's publishes (sailor-protocol.md 2.4): the
/// step's [`step_headers`] with the message's [`add_lineage`].
pub fn base_headers(
    identity: &Identity,
    function: &str,
    incoming: &IncomingHeaders,
    thread_id: &str,
    start_ms: i64,
) -> PublishHeaders {
    let mut headers = PublishHeaders::over(Arc::new(step_headers(identity, function)));
    add_lineage(&mut headers, incoming, thread_id, start_ms);
    headers
}

/// The headers every publish of a step carries, whatever the message: the
/// `ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS` values, then the identity and `function` (which win
/// over an additional variable of the same name). The worker builds them once and shares
/// them with every publish ([`PublishHeaders::over`]).
pub fn step_headers(identity: &Identity, function: &str) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in &identity.additional {
        table.insert(ShortString::from(name.as_str()), text_value(value));
    }
    for (name, value) in [
        ("execId", identity.exec_id.as_str()),
        ("taskId", &identity.flow_id),
        ("workspaceId", &identity.workspace_id),
        ("containerId", &identity.container_id),
        ("userId", &identity.user_id),
        ("stepId", &identity.step_id),
        ("compId", &identity.comp_id),
        ("function", function),
    ] {
        table.insert(name.into(), text_value(value));
    }
    table
}

/// Adds to `headers` (over a step's [`step_headers`]) what an incoming message gives each of
/// its publishes: its `x-eio-meta-*` headers and `reply_to`, unless the step has a header of
/// the name (an additional variable), then `parentMessageId` (its `messageId`), `threadId` and
/// `start`.
pub fn add_lineage(
    headers: &mut PublishHeaders,
    incoming: &IncomingHeaders,
    thread_id: &str,
    start_ms: i64,
) {
    let reply_to = incoming
        .reply_to
        .as_deref()
        .map(|reply_to| (Cow::Borrowed("reply_to"), text_value(reply_to)));
    let carried = incoming
        .meta
        .iter()
        .map(|(name, value)| (Cow::Owned(name.clone()), value.clone()))
        .chain(reply_to);
    for (name, value) in carried {
        let step_has_it = headers
            .shared
            .as_ref()
            .is_some_and(|shared| shared.contains_key(&name));
        if !step_has_it {
            headers.insert(name, value);
        }
    }
    if let Some(parent) = &incoming.message_id {
        headers.insert("parentMessageId", text_value(parent));
    }
    headers.insert("threadId", text_value(thread_id));
    headers.insert("start", int_value(start_ms));
}

/// Adds what each publish has of its own to headers built by [`base_headers`]: its
/// `messageId` and `end` = now.
pub fn stamp(headers: &mut PublishHeaders, message_id: &str) {
    headers.insert(MESSAGE_ID, text_value(message_id));
    headers.insert("end", int_value(now_ms()));
}

/// The headers of a publish that answers no incoming message (a start-up error, keys from a
/// credential check): the identity, a new thread and a new `messageId`, `start` and `end` now.
pub fn standalone_headers(identity: &Identity, function: &str) -> PublishHeaders {
    let thread_id = uuid::Uuid::new_v4().to_string();
    let mut headers = base_headers(
        identity,
        function,
        &IncomingHeaders::default(),
        &thread_id,
        now_ms(),
    );
    stamp(&mut headers, &uuid::Uuid::new_v4().to_string());
    headers
}

/// A variable name as lodash's `_.camelCase` turns it into a header name, the way
/// sailor-nodejs names `ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS` headers: words split at
/// anything not a letter or digit, at a lower-to-upper change, before the last capital of a
/// run followed by a lower-case letter, and between letters and digits; then the first word
/// lower-cased and the others capitalised (`TENANT_ID` is `tenantId`, `X_API2` is `xApi2`).
pub fn camel_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if let Some(&previous) = word.chars().last().as_ref() {
            let next = chars.get(i + 1).copied();
            let boundary = (previous.is_ascii_lowercase() && c.is_ascii_uppercase())
                || (previous.is_ascii_digit() != c.is_ascii_digit())
                || (previous.is_ascii_uppercase()
                    && c.is_ascii_uppercase()
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary {
                words.push(std::mem::take(&mut word));
            }
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let lower = word.to_ascii_lowercase();
            if i == 0 {
                return lower;
            }
            let mut chars = lower.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Milliseconds since the Unix epoch, for `start` and `end`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_in_any_signed_width() {
        for value in [
            AMQPValue::ShortShortInt(2),
            AMQPValue::ShortInt(2),
            AMQPValue::LongInt(2),
            AMQPValue::LongLongInt(2),
            AMQPValue::ShortShortUInt(2),
            AMQPValue::LongString("2".into()),
        ] {
            assert_eq!(int_of(&value), Some(2), "{value:?}");
        }
        assert_eq!(int_of(&AMQPValue::Boolean(true)), None);
    }

    #[test]
    fn integers_are_written_in_the_smallest_width() {
        assert_eq!(int_value(1), AMQPValue::ShortShortInt(1));
        assert_eq!(int_value(300), AMQPValue::ShortInt(300));
        assert_eq!(int_value(70_000), AMQPValue::LongInt(70_000));
        assert_eq!(
            int_value(1_700_000_000_000),
            AMQPValue::LongLongInt(1_700_000_000_000)
        );
    }

    #[test]
    fn incoming_headers_fall_back_to_the_trace_id_and_keep_meta_headers() {
        let mut table = FieldTable::default();
        table.insert("messageId".into(), text_value("m1"));
        table.insert("X-EIO-META-Trace-Id".into(), text_value("t1"));
        table.insert("x-eio-meta-tenant".into(), text_value("acme"));
        table.insert("protocolVersion".into(), AMQPValue::LongLongInt(2));
        table.insert("other".into(), text_value("ignored"));
        let headers = IncomingHeaders::read(Some(&table));
        assert_eq!(headers.message_id.as_deref(), Some("m1"));
        assert_eq!(headers.thread_id.as_deref(), Some("t1"));
        assert_eq!(headers.protocol_version, Some(2));
        let names: Vec<&str> = headers.meta.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-eio-meta-trace-id", "x-eio-meta-tenant"]);
    }

    #[test]
    fn base_headers_carry_identity_and_lineage() {
        let identity = Identity {
            flow_id: "flow".into(),
            exec_id: "exec".into(),
            step_id: "step_2".into(),
            user_id: "user".into(),
            comp_id: "comp".into(),
            container_id: "cont".into(),
            workspace_id: "ws".into(),
            additional: Vec::new(),
        };
        let incoming = IncomingHeaders {
            message_id: Some("parent".into()),
            reply_to: Some("reply".into()),
            ..IncomingHeaders::default()
        };
        let headers = base_headers(&identity, "send", &incoming, "thread", 5);
        let table = headers.to_table();
        let get = |name: &str| table.inner().get(name).and_then(text_of);
        assert_eq!(get("parentMessageId").as_deref(), Some("parent"));
        assert_eq!(get("taskId").as_deref(), Some("flow"));
        assert_eq!(get("threadId").as_deref(), Some("thread"));
        assert_eq!(get("function").as_deref(), Some("send"));
        assert_eq!(get("reply_to").as_deref(), Some("reply"));
        assert_eq!(table.inner()["start"], AMQPValue::ShortShortInt(5));
        assert_eq!(table.inner().len(), 12);
    }

    #[test]
    fn a_publish_header_of_its_own_wins_over_a_shared_one_and_both_go_on_the_wire() {
        let mut shared = FieldTable::default();
        shared.insert("stepId".into(), text_value("step_1"));
        shared.insert("function".into(), text_value("send"));
        let mut headers = PublishHeaders::over(Arc::new(shared.clone()));
        headers.insert("function", text_value("mine"));
        headers.insert(MESSAGE_ID, text_value("m-1"));
        assert_eq!(headers.get("function"), Some(&text_value("mine")));
        assert_eq!(headers.get("stepId"), Some(&text_value("step_1")));
        assert_eq!(headers.get("absent"), None);
        let mut wire = shared;
        wire.insert("function".into(), text_value("mine"));
        wire.insert(MESSAGE_ID.into(), text_value("m-1"));
        assert_eq!(headers.to_table(), wire);
        assert_eq!(PublishHeaders::from(wire.clone()).to_table(), wire);
    }

    #[test]
    fn header_names_are_camel_cased_as_lodash_does() {
        // Each pair checked against lodash 4's `_.camelCase` in sailor-nodejs' node_modules.
        for (name, expected) in [
            ("TENANT_ID", "tenantId"),
            ("X_API2", "xApi2"),
            ("fooBar_baz", "fooBarBaz"),
            ("MY_VAR", "myVar"),
            ("A1B2", "a1B2"),
            ("XMLHttp_REQUEST", "xmlHttpRequest"),
            ("region", "region"),
            ("SOME__DOUBLE", "someDouble"),
            ("VAR_2X", "var2X"),
            ("abc123def", "abc123Def"),
            ("ID", "id"),
        ] {
            assert_eq!(camel_case(name), expected, "{name}");
        }
    }

    #[test]
    fn additional_headers_sit_between_the_incoming_ones_and_the_identity() {
        let identity = Identity {
            step_id: "step_2".into(),
            additional: vec![
                ("tenantId".into(), "t-1".into()),
                ("stepId".into(), "not me".into()),
                ("x-eio-meta-tenant".into(), "from env".into()),
            ],
            ..Identity::default()
        };
        let incoming = IncomingHeaders {
            meta: vec![("x-eio-meta-tenant".into(), text_value("incoming"))],
            ..IncomingHeaders::default()
        };
        let table = base_headers(&identity, "send", &incoming, "thread", 5).to_table();
        let get = |name: &str| table.inner().get(name).and_then(text_of);
        assert_eq!(get("tenantId").as_deref(), Some("t-1"));
        assert_eq!(get("stepId").as_deref(), Some("step_2"), "identity wins");
        assert_eq!(get("x-eio-meta-tenant").as_deref(), Some("from env"));
    }

    #[test]
    fn standalone_headers_have_identity_and_their_own_thread_and_message_ids() {
        let identity = Identity {
            step_id: "step_1".into(),
            ..Identity::default()
        };
        let table = standalone_headers(&identity, "verifyCredentials").to_table();
        let get = |name: &str| table.inner().get(name).and_then(text_of);
        assert_eq!(get("stepId").as_deref(), Some("step_1"));
        assert_eq!(get("function").as_deref(), Some("verifyCredentials"));
        let (message_id, thread_id) = (get(MESSAGE_ID).unwrap(), get("threadId").unwrap());
        assert_eq!((message_id.len(), thread_id.len()), (36, 36));
        assert_ne!(message_id, thread_id);
        assert!(get("parentMessageId").is_none());
        assert!(table.inner().get("end").and_then(int_of).is_some());
    }
}
