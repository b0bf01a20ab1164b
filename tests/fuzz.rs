//! Property and fuzz targets over everything the runtime reads from outside: message bodies
//! (v1 base64 and v2 raw ciphertext), incoming AMQP headers, the message JSON, token endpoint
//! answers, `Retry-After`, `Link` headers and path templates.
//!
//! Every target holds for any input: no panic, plus the round trip or invariant the input
//! admits. The number of cases per target comes from `FUZZ_CASES` (default
//! [`DEFAULT_CASES`], a few seconds each in the test command); `scripts/chaos` runs them with
//! far more. A failure prints the smallest input proptest could shrink it to.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use component::actions::retry_after::retry_after_ms;
use component::template::{fill_path, has_dot_segment, is_within};
use component::triggers::link_header;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, ShortString};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sailor::amqp::headers::{IncomingHeaders, base_headers, int_of, int_value, text_of};
use sailor::auth::{RetryPolicy, TokenEndpoint, TokenSet};
use sailor::config::StepConfig;
use sailor::crypto::{Encoding, MessageCipher};
use sailor::message::Message;
use sailor::secret::{Password, RefreshToken};
use sailor::settings::Identity;
use serde_json::{Map, Value, json};
use url::Url;

/// Cases per target when `FUZZ_CASES` is unset: a few seconds each on a small machine.
const DEFAULT_CASES: u32 = 1000;

/// The case count from `FUZZ_CASES`, and no regression files written into the tree.
fn config() -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// Any JSON scalar, floats finite (JSON has no others).
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A JSON object whose keys are mostly the ones `names` lists, with any values.
fn object_with(names: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    let name = prop_oneof![
        4 => prop::sample::select(names).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ];
    prop::collection::vec((name, json_value()), 0..8)
        .prop_map(|fields| fields.into_iter().collect())
}

/// Any header value AMQP can carry, tables and arrays nested.
fn amqp_value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_map(AMQPValue::Float),
        any::<f64>().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        ".{0,20}".prop_map(|s| AMQPValue::ShortString(s.into())),
        prop_oneof![".{0,20}", "[ ]{0,2}-?[0-9]{1,20}[ ]{0,2}"]
            .prop_map(|s| AMQPValue::LongString(s.as_str().into())),
        prop::collection::vec(any::<u8>(), 0..20)
            .prop_map(|bytes| AMQPValue::LongString(bytes.into())),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        prop::collection::vec(any::<u8>(), 0..20)
            .prop_map(|bytes| AMQPValue::ByteArray(ByteArray::from(bytes))),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|values| AMQPValue::FieldArray(FieldArray::from(values))),
            prop::collection::vec(("[a-zA-Z-]{1,10}", inner), 0..4)
                .prop_map(|fields| AMQPValue::FieldTable(table(fields))),
        ]
    })
}

fn table(fields: Vec<(String, AMQPValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in fields {
        table.insert(ShortString::from(name), value);
    }
    table
}

/// Header names the worker reads, in any case for the `x-eio-meta-` ones, and others.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "messageId",
                "threadId",
                "stepId",
                "reply_to",
                "protocolVersion",
                "reboundIteration",
                "x-eio-meta-trace-id",
                "X-EIO-META-TRACE-ID",
                "X-Eio-Meta-Trace-Id",
            ][..]
        )
        .prop_map(str::to_owned),
        "(x|X)-(eio|EIO|Eio)-(meta|META)-[a-zA-Z-]{0,12}",
        "[a-zA-Z_-]{1,16}",
        ".{1,40}",
    ]
}

/// Any incoming header table.
fn header_table() -> impl Strategy<Value = FieldTable> {
    prop::collection::vec((header_name(), amqp_value()), 0..8).prop_map(table)
}

/// An integer in every width that holds it, as the sailors of several languages send it.
fn widths(v: i64) -> Vec<AMQPValue> {
    let mut all = vec![
        AMQPValue::LongLongInt(v),
        AMQPValue::LongString(v.to_string().as_str().into()),
        AMQPValue::ShortString(v.to_string().into()),
    ];
    all.extend(i8::try_from(v).ok().map(AMQPValue::ShortShortInt));
    all.extend(u8::try_from(v).ok().map(AMQPValue::ShortShortUInt));
    all.extend(i16::try_from(v).ok().map(AMQPValue::ShortInt));
    all.extend(u16::try_from(v).ok().map(AMQPValue::ShortUInt));
    all.extend(i32::try_from(v).ok().map(AMQPValue::LongInt));
    all.extend(u32::try_from(v).ok().map(AMQPValue::LongUInt));
    all.extend(u64::try_from(v).ok().map(AMQPValue::Timestamp));
    all
}

fn cipher_for(password: &str, iv: &str) -> MessageCipher {
    MessageCipher::new(&Password::new(password), iv).expect("a 16-byte IV")
}

fn test_cipher() -> MessageCipher {
    cipher_for("testCryptoPassword", "iv=any16_symbols")
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::Base64), Just(Encoding::Raw)]
}

/// Bodies as a delivery may bring them: garbage, or a real ciphertext damaged in one place,
/// truncated or extended.
fn damaged_body() -> impl Strategy<Value = (Vec<u8>, Encoding)> {
    let garbage = (prop::collection::vec(any::<u8>(), 0..300), encoding());
    let damaged = (
        prop::collection::vec(any::<u8>(), 0..200),
        encoding(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0..4u8,
    )
        .prop_map(|(plain, encoding, at, byte, how)| {
            let mut body = test_cipher().encode(&plain, encoding);
            let i = at.index(body.len());
            match how {
                0 => body[i] ^= byte.max(1),
                1 => body.truncate(i),
                2 => body.push(byte),
                _ => body.insert(i, byte),
            }
            (body, encoding)
        });
    prop_oneof![garbage, damaged]
}

// ---------------------------------------------------------------------------------------
// Message bodies

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_plaintext_encoded_as_v1_or_v2_decodes_back_to_itself(
        password in ".{0,40}",
        iv in "[ -~]{16}",
        plaintext in prop::collection::vec(any::<u8>(), 0..2048),
        encoding in encoding(),
    ) {
        let cipher = cipher_for(&password, &iv);
        let body = cipher.encode(&plaintext, encoding);
        prop_assert_eq!(cipher.decode(&body, encoding), Ok(plaintext.clone()));
        if encoding == Encoding::Base64 {
            // Surrounding whitespace, as a Node sender may leave, is tolerated.
            let mut padded = b" \r\n".to_vec();
            padded.extend(&body);
            padded.extend(b"\n");
            prop_assert_eq!(cipher.decode(&padded, encoding), Ok(plaintext));
        }
    }

    #[test]
    fn decoding_garbage_or_a_damaged_body_never_panics_and_accepts_only_true_ciphertexts(
        (body, encoding) in damaged_body(),
    ) {
        let cipher = test_cipher();
        if let Ok(plain) = cipher.decode(&body, encoding) {
            // CBC with a fixed IV is deterministic: whatever decodes is exactly what the
            // plaintext encodes to, so nothing is read out of a body that is not one.
            let again = cipher.encode(&plain, encoding);
            let expected: &[u8] = match encoding {
                Encoding::Raw => &body,
                Encoding::Base64 => body.trim_ascii(),
            };
            prop_assert_eq!(again.as_slice(), expected);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Incoming AMQP headers

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_header_table_is_read_without_panic_and_as_the_protocol_says(table in header_table()) {
        let headers = IncomingHeaders::read(Some(&table));
        let get = |name: &str| table.inner().get(name);
        let nonempty_text = |name: &str| get(name).and_then(text_of).filter(|s| !s.is_empty());
        prop_assert_eq!(headers.message_id.clone(), nonempty_text("messageId"));
        prop_assert_eq!(headers.step_id.clone(), get("stepId").and_then(text_of));
        prop_assert_eq!(headers.reply_to.clone(), get("reply_to").and_then(text_of));
        prop_assert_eq!(headers.protocol_version, get("protocolVersion").and_then(int_of));
        prop_assert_eq!(headers.rebound_iteration, get("reboundIteration").and_then(int_of));
        // Every x-eio-meta-* header, whatever its case, kept in order with its value.
        let meta: Vec<(String, AMQPValue)> = table
            .inner()
            .iter()
            .map(|(name, value)| (name.as_str().to_ascii_lowercase(), value.clone()))
            .filter(|(name, _)| name.starts_with("x-eio-meta-"))
            .collect();
        prop_assert_eq!(&headers.meta, &meta);
        let trace_id = meta
            .iter()
            .rev()
            .find(|(name, _)| name == "x-eio-meta-trace-id")
            .and_then(|(_, value)| text_of(value));
        prop_assert_eq!(headers.thread_id.clone(), nonempty_text("threadId").or(trace_id));

        // What the worker then writes back out carries every meta header unchanged; names
        // that differ only in case were one header after lower-casing, the last one wins.
        let out = base_headers(&Identity::default(), "request", &headers, "thread", 1);
        for (name, _) in &headers.meta {
            let last = headers.meta.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
            prop_assert_eq!(out.get(name), last);
        }
    }

    #[test]
    fn a_protocol_version_in_any_integer_width_chooses_the_same_encoding(
        version in prop_oneof![-3i64..6, any::<i64>()],
    ) {
        for value in widths(version) {
            let headers = IncomingHeaders::read(Some(&table(vec![
                ("protocolVersion".into(), value.clone()),
                ("reboundIteration".into(), value.clone()),
            ])));
            prop_assert_eq!(headers.protocol_version, Some(version), "{:?}", value);
            prop_assert_eq!(headers.rebound_iteration, Some(version), "{:?}", value);
            prop_assert_eq!(
                Encoding::from_protocol_version(headers.protocol_version),
                if version >= 2 { Encoding::Raw } else { Encoding::Base64 }
            );
        }
        // What the runtime writes, in the smallest width, reads back as the same number.
        prop_assert_eq!(int_of(&int_value(version)), Some(version));
    }
}

// ---------------------------------------------------------------------------------------
// The message JSON

/// What a parsed message serialises back to: the input, with elastic.io's defaults for the
/// fields it lacked and no `null` id or passthrough.
fn with_message_defaults(mut input: Map<String, Value>) -> Value {
    for optional in ["id", "passthrough"] {
        if input.get(optional) == Some(&Value::Null) {
            input.remove(optional);
        }
    }
    for (field, default) in [
        ("body", json!({})),
        ("headers", json!({})),
        ("attachments", json!({})),
    ] {
        input.entry(field).or_insert(default);
    }
    Value::Object(input)
}

/// An incoming delivery as the worker reads it: headers, then body, then JSON.
fn read_delivery(table: &FieldTable, body: &[u8]) -> Option<Message> {
    let headers = IncomingHeaders::read(Some(table));
    let encoding = Encoding::from_protocol_version(headers.protocol_version);
    let plain = test_cipher().decode(body, encoding).ok()?;
    serde_json::from_slice::<Message>(&plain).ok()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_object_parses_as_a_message_that_serialises_back_field_for_field(
        input in object_with(&["id", "body", "headers", "attachments", "passthrough", "method", "url"]),
    ) {
        let text = Value::Object(input).to_string();
        // Parsed the way the message is, so that float text reads the same in both.
        let Value::Object(input) = serde_json::from_str::<Value>(&text).unwrap() else {
            unreachable!("an object's text is an object");
        };
        let well_typed = ["headers", "attachments"]
            .iter()
            .all(|f| input.get(*f).is_none_or(Value::is_object))
            && input.get("passthrough").is_none_or(|v| v.is_null() || v.is_object())
            && input.get("id").is_none_or(|v| v.is_null() || v.is_string());
        match Message::from_json(&text) {
            Ok(message) => {
                prop_assert!(well_typed, "accepted a mistyped message: {}", text);
                let out = serde_json::to_value(&message).unwrap();
                prop_assert_eq!(out, with_message_defaults(input));
            }
            Err(error) => {
                prop_assert!(!well_typed, "refused a good message: {} ({})", text, error);
                prop_assert!(error.line() >= 1);
            }
        }
    }

    #[test]
    fn any_bytes_as_message_json_are_an_error_or_a_message_never_a_panic(
        text in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            json_value().prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        let _ = serde_json::from_slice::<Message>(&text);
    }

    #[test]
    fn a_delivery_in_either_protocol_and_any_header_width_reads_as_the_message_sent(
        body in json_value(),
        id in prop::option::of("[a-z0-9-]{1,36}"),
        version in prop_oneof![Just(1i64), Just(2i64), -2i64..5],
        width in any::<prop::sample::Index>(),
        damage in prop::option::of((any::<prop::sample::Index>(), 1..=255u8)),
        extra in header_table(),
    ) {
        let message = Message { id, body, ..Message::default() };
        let encoding = Encoding::from_protocol_version(Some(version));
        let plain = serde_json::to_vec(&message).unwrap();
        let mut wire = test_cipher().encode(&plain, encoding);
        let mut table = extra;
        let widths = widths(version);
        table.insert("protocolVersion".into(), widths[width.index(widths.len())].clone());
        match damage {
            None => {
                let read = read_delivery(&table, &wire).expect("a sent message reads back");
                // Compared with the JSON read directly, so that float text reads the same.
                let direct: Message = serde_json::from_slice(&plain).unwrap();
                prop_assert_eq!(read, direct);
            }
            Some((at, xor)) => {
                let i = at.index(wire.len());
                wire[i] ^= xor;
                let _ = read_delivery(&table, &wire);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoint answers

const TOKEN_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "expires_in",
    "expires_at",
    "token_type",
    "scope",
    "id_token",
    "instance_url",
    "error",
    "error_description",
];

/// A token answer: token fields with marked secret values, or anything else.
fn token_answer() -> impl Strategy<Value = Map<String, Value>> {
    let value_for = |name: &'static str| -> BoxedStrategy<Value> {
        match name {
            "access_token" | "refresh_token" | "id_token" => prop_oneof![
                6 => "[a-z0-9]{4,12}".prop_map(move |s| Value::from(format!("SECRET-{name}-{s}"))),
                1 => Just(json!("")),
                1 => json_leaf(),
            ]
            .boxed(),
            "expires_in" | "expires_at" => prop_oneof![
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                "[ ]?-?[0-9]{0,25}(\\.[0-9]{0,3})?(e[0-9]{1,3})?".prop_map(Value::from),
                json_leaf(),
            ]
            .boxed(),
            "error" => prop_oneof![
                prop::sample::select(
                    &[
                        "invalid_grant",
                        "invalid_client",
                        "unauthorized_client",
                        "temporarily_unavailable",
                        "server_error",
                        "invalid_request",
                    ][..]
                )
                .prop_map(Value::from),
                json_leaf(),
            ]
            .boxed(),
            _ => json_value().boxed(),
        }
    };
    prop::collection::vec(prop::sample::select(TOKEN_FIELDS), 0..8)
        .prop_flat_map(move |names| {
            names
                .into_iter()
                .map(|name| value_for(name).prop_map(move |v| (name.to_owned(), v)))
                .collect::<Vec<_>>()
        })
        .prop_map(|fields| fields.into_iter().collect())
}

fn secrets_in(fields: &Map<String, Value>) -> Vec<String> {
    ["access_token", "refresh_token", "id_token"]
        .iter()
        .filter_map(|name| fields.get(*name).and_then(Value::as_str))
        .filter(|s| s.starts_with("SECRET-"))
        .map(str::to_owned)
        .collect()
}

/// `seconds` as the token set reads it: a non-negative number or numeric text.
fn seconds_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_token_answer_makes_a_token_set_kept_field_for_field_or_a_clean_error(
        answer in token_answer(),
        previous_refresh in prop::option::of("[a-z]{1,8}"),
        received_at in prop_oneof![0u64..2_000_000_000, any::<u64>()],
    ) {
        let previous = previous_refresh.as_ref().map(|rt| {
            TokenSet::from_stored(json!({"access_token": "old", "refresh_token": rt})).unwrap()
        });
        let result = TokenSet::from_response(answer.clone(), received_at, previous.as_ref());
        let access = answer.get("access_token").and_then(Value::as_str).filter(|s| !s.is_empty());
        let refresh_ok = match answer.get("refresh_token") {
            None | Some(Value::Null | Value::String(_)) => true,
            Some(_) => false,
        };
        prop_assert_eq!(result.is_ok(), access.is_some() && refresh_ok, "{:?}", result);
        let tokens = match result {
            Ok(tokens) => tokens,
            Err(error) => {
                for secret in secrets_in(&answer) {
                    prop_assert!(!error.to_string().contains(&secret));
                }
                return Ok(());
            }
        };
        prop_assert_eq!(tokens.access_token().expose_secret(), access.unwrap());
        let mut expected = answer.clone();
        let fresh_refresh = answer
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if fresh_refresh.is_none() && let Some(old) = &previous_refresh {
            expected.insert("refresh_token".into(), Value::from(old.as_str()));
        }
        expected.remove("expires_at");
        let expires_at = answer
            .get("expires_in")
            .and_then(seconds_of)
            .map(|lifetime| received_at.saturating_add(lifetime));
        if let Some(at) = expires_at {
            expected.insert("expires_at".into(), Value::from(at));
        }
        prop_assert_eq!(tokens.expires_at(), expires_at);
        prop_assert_eq!(tokens.expose_json(), Value::Object(expected));
        prop_assert_eq!(
            tokens.refresh_token().map(|t| t.expose_secret().to_owned()),
            fresh_refresh.map(str::to_owned).or(previous_refresh)
        );
        // The token set's Debug, the one form that reaches logs, shows no secret.
        let debug = format!("{tokens:?}");
        for secret in secrets_in(&answer) {
            prop_assert!(!debug.contains(&secret), "{} in {}", secret, debug);
        }
    }

    #[test]
    fn any_stored_token_set_round_trips_field_for_field(stored in json_value(), answer in token_answer()) {
        for value in [stored, Value::Object(answer)] {
            if let Ok(tokens) = TokenSet::from_stored(value.clone()) {
                prop_assert_eq!(tokens.expose_json(), value);
            }
        }
    }
}

/// What the fuzzed token endpoint answers next.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

/// A token endpoint on loopback that answers whatever [`Answer`] holds.
async fn scripted_token_endpoint(answer: Arc<Mutex<Answer>>) -> String {
    use axum::body::Body;
    use axum::http::Response;
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let answer = answer.lock().unwrap().clone();
            async move {
                let mut response = Response::builder().status(answer.status);
                if let Some(content_type) = answer.content_type {
                    response = response.header("content-type", content_type);
                }
                response.body(Body::from(answer.body)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/token")
}

fn answer_strategy() -> impl Strategy<Value = (Answer, Option<Map<String, Value>>)> {
    let status = prop_oneof![
        4 => prop::sample::select(&[200u16, 201, 400, 401, 403, 429, 500, 503][..]),
        1 => 200u16..=599,
    ];
    let content_type = prop::sample::select(
        &[
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/x-www-form-urlencoded"),
            Some("text/plain"),
            Some("text/html"),
            None,
        ][..],
    );
    let body = prop_oneof![
        3 => token_answer().prop_map(|fields| {
            let text = Value::Object(fields).to_string().into_bytes();
            // The oracle is the text read back, so that float text reads the same in both.
            let fields = serde_json::from_slice(&text).ok();
            (text, fields)
        }),
        1 => token_answer().prop_map(|fields| {
            let form = fields
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k.clone(), s.clone()),
                    other => (k.clone(), other.to_string()),
                })
                .collect::<BTreeMap<_, _>>();
            let text = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            (text.into_bytes(), None)
        }),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|bytes| (bytes, None)),
    ];
    (status, content_type, body).prop_map(|(status, content_type, (body, json))| {
        // The JSON oracle holds only where the runtime reads the body as JSON.
        // (and where HTTP lets a body through).
        let json = json.filter(|_| {
            ![204, 205, 304].contains(&status)
                && !content_type.is_some_and(|t| {
                    t.starts_with("application/x-www-form-urlencoded")
                        || t.starts_with("text/plain")
                })
        });
        (
            Answer {
                status,
                content_type,
                body,
            },
            json,
        )
    })
}

#[test]
fn any_token_endpoint_answer_is_a_token_response_or_an_error_that_quotes_no_token() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answer = Arc::new(Mutex::new(Answer {
        status: 200,
        content_type: None,
        body: Vec::new(),
    }));
    let token_uri = runtime.block_on(scripted_token_endpoint(answer.clone()));
    let step_config = StepConfig::from_value(json!({
        "token_uri": token_uri,
        "client_id": "fuzz-client",
        "client_secret": "fuzz-client-SECRET",
    }))
    .unwrap();
    let retry = RetryPolicy {
        request_timeout: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    let endpoint = TokenEndpoint::from_config(&step_config, retry).unwrap();
    let refresh_token = RefreshToken::new("SECRET-sent-refresh-token");

    // Each case is a loopback HTTP exchange: half the cases of the pure targets.
    let config = config();
    let cases = (config.cases / 2).max(1);
    let mut runner = TestRunner::new(Config { cases, ..config });
    runner
        .run(&answer_strategy(), |(scripted, json)| {
            *answer.lock().unwrap() = scripted.clone();
            let result = runtime.block_on(endpoint.request_once(&refresh_token));
            let success = (200..300).contains(&scripted.status);
            match (&result, &json) {
                (Ok(fields), _) => {
                    prop_assert!(success, "status {} accepted", scripted.status);
                    prop_assert!(
                        fields
                            .get("access_token")
                            .and_then(Value::as_str)
                            .is_some_and(|t| !t.is_empty())
                    );
                    prop_assert!(fields.get("error").and_then(Value::as_str).is_none());
                    if let Some(json) = &json {
                        prop_assert_eq!(fields, json);
                    }
                }
                (Err(error), Some(json)) => {
                    let usable = success
                        && json.get("error").and_then(Value::as_str).is_none()
                        && json
                            .get("access_token")
                            .and_then(Value::as_str)
                            .is_some_and(|t| !t.is_empty());
                    prop_assert!(!usable, "a usable answer was refused: {}", error);
                }
                (Err(_), None) => {}
            }
            if let Err(error) = &result {
                let shown = format!("{error} {error:?}");
                let mut secrets = json.as_ref().map(secrets_in).unwrap_or_default();
                secrets.push("SECRET-sent-refresh-token".into());
                secrets.push("fuzz-client-SECRET".into());
                for secret in secrets {
                    prop_assert!(!shown.contains(&secret), "{} in {}", secret, shown);
                }
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Retry-After

/// Any instant an HTTP date can name (1970 to 9999), to the second.
fn http_instant() -> impl Strategy<Value = SystemTime> {
    (0u64..253_402_300_799).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_retry_after_text_is_advice_or_none_never_a_panic(
        value in prop_oneof![".{0,40}", "[ \t]{0,2}[0-9]{1,30}[ \t]{0,2}", "[A-Za-z]{3}, [0-9]{1,2} [A-Za-z]{3} [0-9]{1,5} [0-9:]{8} GMT"],
        now in http_instant(),
    ) {
        if let Some(ms) = retry_after_ms(&value, now) {
            let value = value.trim();
            match value.parse::<u64>() {
                Ok(seconds) => prop_assert_eq!(ms, seconds.saturating_mul(1000)),
                Err(_) => {
                    let at = httpdate::parse_http_date(value).expect("only numbers and dates advise");
                    let wait = at.duration_since(now).unwrap_or_default();
                    prop_assert_eq!(u128::from(ms), wait.as_millis());
                }
            }
        }
    }

    #[test]
    fn a_retry_after_date_is_the_wait_until_it_and_never_negative(
        at in http_instant(),
        now in http_instant(),
        seconds in any::<u64>(),
    ) {
        let ms = retry_after_ms(&httpdate::fmt_http_date(at), now).expect("a date is advice");
        let expected = at.duration_since(now).map_or(0, |wait| wait.as_millis());
        prop_assert_eq!(u128::from(ms), expected);
        // A date in the past means now; delay-seconds are taken as given, saturating.
        prop_assert_eq!(retry_after_ms(&format!(" {seconds} "), now), Some(seconds.saturating_mul(1000)));
    }
}

// ---------------------------------------------------------------------------------------
// Link headers

/// One link as an API writes it, and what parsing it must give.
fn link() -> impl Strategy<Value = (String, link_header::Link)> {
    let target = "[a-zA-Z0-9/?=&:._~%-]{0,30}";
    let rel_token = prop::sample::select(
        &[
            "next",
            "Next",
            "NEXT",
            "prev",
            "first",
            "last",
            "self",
            "alternate",
        ][..],
    );
    let rel = prop::collection::vec(rel_token.clone(), 1..3);
    let quoted = "[a-zA-Z0-9 ,;=<>]{0,12}|[a-z]{0,3}\\\\\"[a-z,]{0,3}";
    let other_param = prop_oneof![
        (
            prop::sample::select(&["title", "type", "hreflang"][..]),
            quoted
        )
            .prop_map(|(n, v)| format!("{n}=\"{v}\"")),
        (prop::sample::select(&["type", "foo"][..]), "[a-z/]{1,8}")
            .prop_map(|(n, v)| format!("{n}={v}")),
        Just("anchor".to_owned()),
    ];
    let rel_name = prop::sample::select(&["rel", "REL", "Rel"][..]);
    (
        target,
        prop::option::of((rel_name, rel, any::<bool>())),
        prop::collection::vec(other_param, 0..3),
        prop::option::of(prop::collection::vec(rel_token, 1..2)),
        any::<prop::sample::Index>(),
        "[ ]{0,2}",
    )
        .prop_map(|(target, rel, mut params, second_rel, at, space)| {
            let rels = rel.as_ref().map_or_else(Vec::new, |(_, tokens, _)| {
                tokens.iter().map(|t| t.to_ascii_lowercase()).collect()
            });
            if let Some((name, tokens, quote)) = &rel {
                let joined = tokens.join(" ");
                let written = if *quote || tokens.len() > 1 {
                    format!("{name}=\"{joined}\"")
                } else {
                    format!("{name}={joined}")
                };
                params.insert(at.index(params.len() + 1), written);
                // A later rel parameter is ignored (RFC 8288 section 3.3).
                if let Some(second) = second_rel {
                    params.push(format!("rel=\"{}\"", second.join(" ")));
                }
            }
            let mut text = format!("<{target}>");
            for param in params {
                text.push_str(&format!("{space};{space}{param}"));
            }
            (text, link_header::Link { target, rels })
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_well_formed_link_header_parses_to_exactly_its_links(
        links in prop::collection::vec(link(), 0..5),
        separator in prop::sample::select(&[",", ", ", " ,\t", ",\r\n "][..]),
    ) {
        let header = links.iter().map(|(text, _)| text.as_str()).collect::<Vec<_>>().join(separator);
        let expected: Vec<link_header::Link> = links.iter().map(|(_, link)| link.clone()).collect();
        prop_assert_eq!(link_header::parse(&header), expected.clone());
        let next = expected
            .iter()
            .find(|l| l.rels.iter().any(|r| r == "next"))
            .map(|l| l.target.clone())
            .filter(|t| !t.is_empty());
        prop_assert_eq!(link_header::next_target([header.as_str()]), next);
    }

    #[test]
    fn any_link_header_yields_only_targets_written_in_it(
        values in prop::collection::vec(
            prop_oneof![
                ".{0,60}",
                "[<>;,=\" a-z\\\\]{0,60}",
                prop::collection::vec(link(), 1..3).prop_map(|l| l.into_iter().map(|(t, _)| t).collect::<Vec<_>>().join(",")),
            ],
            0..3,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        // Well-formed headers cut anywhere, and garbage.
        let mut values = values;
        if let Some(first) = values.first_mut() {
            let mut end = cut.index(first.len() + 1);
            while !first.is_char_boundary(end) {
                end -= 1;
            }
            first.truncate(end);
        }
        for value in &values {
            for link in link_header::parse(value) {
                prop_assert!(value.contains(&link.target), "{:?} not in {:?}", link.target, value);
            }
        }
        if let Some(target) = link_header::next_target(values.iter().map(String::as_str)) {
            prop_assert!(!target.is_empty());
            prop_assert!(values.iter().any(|v| v.contains(&target)));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Path templates

/// A placeholder value as message bodies carry them.
fn path_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => ".{0,16}".prop_map(Value::from),
        2 => "[./?#%{} a-z]{0,6}".prop_map(Value::from),
        1 => prop::sample::select(&[".", "..", "...", "../..", "%2e%2e", "a/../b", "?x=1#f"][..]).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => any::<bool>().prop_map(Value::from),
        1 => json_value(),
    ]
}

/// The text the template puts in the path for a value it accepts.
fn placeholder_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The encoded text that `fill_path` put for `{v}` between `prefix` and `suffix`.
fn filled_segment(
    prefix: &str,
    suffix: &str,
    value: &Value,
) -> Result<Option<String>, TestCaseError> {
    let template = format!("{prefix}{{v}}{suffix}");
    let body = json!({ "v": value });
    match (fill_path(&template, &body), placeholder_text(value)) {
        (Ok(out), Some(_)) => {
            prop_assert!(out.starts_with(prefix) && out.ends_with(suffix), "{}", out);
            Ok(Some(out[prefix.len()..out.len() - suffix.len()].to_owned()))
        }
        (Err(error), None) => {
            prop_assert!(error.contains("no field `v`"), "{}", error);
            Ok(None)
        }
        (result, _) => Err(TestCaseError::fail(format!(
            "{template} with {value}: {result:?}"
        ))),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_template_and_body_fill_or_fail_without_panic(
        template in "[a-z/{}.?#]{0,30}|.{0,30}",
        body in json_value(),
    ) {
        let _ = fill_path(&template, &body);
    }

    #[test]
    fn a_filled_value_stays_one_path_segment_and_decodes_back_to_itself(
        prefix in "(/[a-z]{1,6}){0,3}/",
        suffix in "(/[a-z]{0,6}){0,2}",
        value in path_value(),
    ) {
        if let Some(encoded) = filled_segment(&prefix, &suffix, &value)? {
            for raw in ['/', '?', '#', '{', '}', ' '] {
                prop_assert!(!encoded.contains(raw), "{:?} from {} in {:?}", raw, value, encoded);
            }
            let decoded = percent_decode_str(&encoded).decode_utf8().expect("UTF-8 in, UTF-8 out");
            prop_assert_eq!(Some(decoded.into_owned()), placeholder_text(&value));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A value of `.` or `..` (which URL parsers resolve, encoded as `%2E` or not) never takes
    /// a request out of `api_base_url`'s path: either `request` sees the dot segment and sends
    /// nothing, or the resolved URL is under the base.
    #[test]
    fn a_filled_value_never_climbs_out_of_the_base_path_unnoticed(
        prefix in "(/[a-z]{1,6}){0,3}/",
        suffix in "(/[a-z]{1,6}){0,2}",
        value in path_value(),
    ) {
        let base = Url::parse("http://api.test/base").unwrap();
        if let Ok(path) = fill_path(&format!("{prefix}{{v}}{suffix}"), &json!({ "v": value })) {
            let resolved = Url::parse(&format!("http://api.test/base{path}"));
            prop_assert!(
                has_dot_segment(&path) || resolved.as_ref().is_ok_and(|url| is_within(&base, url)),
                "{} became {:?}, resolved to {:?}",
                value,
                path,
                resolved.map(|url| url.to_string())
            );
        }
    }
}
