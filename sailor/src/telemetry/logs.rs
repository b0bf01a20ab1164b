//! The worker's log lines: one JSON object per line on stderr, in the shape the operator's log
//! pipeline already parses.
//!
//! Every line carries the fields of the spans it was logged in, flattened, so each line of a
//! delivery says which message it is about (`messageId`, `parentMessageId`, `threadId`) and
//! which step logged it, without every call site repeating them.
//!
//! Two shapes, chosen by `COMPONENT_LOG_FORMAT`:
//! - `json` (default): `{"timestamp", "level", "fields": {"message", ...}, "target", <span
//!   fields>}`, the shape of `tracing-subscriber`'s JSON lines.
//! - `bunyan`: the lines sailor-nodejs writes through bunyan (its `lib/logging.js`): `name`,
//!   `hostname`, `pid`, numeric `level` (10 trace ... 50 error), the `ELASTICIO_*` variables
//!   sailor picks from its environment plus `tag` (the flow id), the span and event fields,
//!   `msg`, `time` (ISO 8601, milliseconds) and `v: 0`.
//!
//! Fields are what call sites log; none holds a secret (secrets have no `Display` and a
//! redacted `Debug`), and the `ELASTICIO_*` variables copied here are identities, never the
//! AMQP URI, the crypto password or the API key.

use std::fmt;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use super::batch::{BatchedWriter, FlushGuard};

/// The `name` of every bunyan line: the process is the `component` binary.
pub const BUNYAN_NAME: &str = "component";

/// The environment variables sailor-nodejs 2.7.8 adds to every log line (`lib/logging.js`),
/// in its order. None of them is a secret.
pub const SAILOR_LOG_VARIABLES: [&str; 16] = [
    "ELASTICIO_API_USERNAME",
    "ELASTICIO_COMP_ID",
    "ELASTICIO_COMP_NAME",
    "ELASTICIO_CONTAINER_ID",
    "ELASTICIO_CONTRACT_ID",
    "ELASTICIO_EXEC_ID",
    "ELASTICIO_EXEC_TYPE",
    "ELASTICIO_EXECUTION_RESULT_ID",
    "ELASTICIO_FLOW_ID",
    "ELASTICIO_FLOW_VERSION",
    "ELASTICIO_FUNCTION",
    "ELASTICIO_STEP_ID",
    "ELASTICIO_TASK_USER_EMAIL",
    "ELASTICIO_TENANT_ID",
    "ELASTICIO_USER_ID",
    "ELASTICIO_WORKSPACE_ID",
];

/// Keys of a bunyan line that event and span fields must not overwrite.
const BUNYAN_CORE: [&str; 7] = ["name", "hostname", "pid", "level", "msg", "time", "v"];

/// The shape of the log lines (`COMPONENT_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `tracing-subscriber`'s JSON lines, with span fields flattened in.
    #[default]
    Json,
    /// sailor-nodejs' bunyan lines, for pipelines built for elastic.io's own runtime.
    Bunyan,
}

impl LogFormat {
    /// Reads a `COMPONENT_LOG_FORMAT` value; unset or empty is the default.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("json") => Ok(Self::Json),
            Some("bunyan") => Ok(Self::Bunyan),
            Some(other) => Err(format!("must be json or bunyan, not {other:?}")),
        }
    }

    /// The format the environment asks for; a bad value logs in the default shape, and the
    /// worker's settings then report it among the start-up problems.
    pub fn from_env() -> Self {
        Self::parse(std::env::var("COMPONENT_LOG_FORMAT").ok().as_deref()).unwrap_or_default()
    }
}

/// Formats each event as one JSON line of the chosen [`LogFormat`].
#[derive(Clone, Debug)]
pub struct LineFormat {
    format: LogFormat,
    /// What every bunyan line starts with: name, hostname, pid.
    process: Map<String, Value>,
    /// The `ELASTICIO_*` variables and `tag`, for bunyan lines.
    sailor: Map<String, Value>,
}

impl LineFormat {
    /// A format for this process, with the `ELASTICIO_*` values taken from `vars` (the
    /// environment, in the binary). The host name is the kernel's, as bunyan's
    /// `os.hostname()`, else `HOSTNAME` from `vars`.
    pub fn new(
        format: LogFormat,
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        let vars: std::collections::BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut sailor = Map::new();
        for name in SAILOR_LOG_VARIABLES {
            if let Some(value) = vars.get(name) {
                sailor.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        // sailor-nodejs sets `tag` even when the flow id is unset (bunyan then drops it).
        if let Some(flow) = vars.get("ELASTICIO_FLOW_ID") {
            sailor.insert("tag".to_owned(), Value::String(flow.clone()));
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| vars.get("HOSTNAME").cloned())
            .unwrap_or_default();
        let mut process = Map::new();
        process.insert("name".to_owned(), BUNYAN_NAME.into());
        process.insert("hostname".to_owned(), hostname.into());
        process.insert("pid".to_owned(), std::process::id().into());
        Self {
            format,
            process,
            sailor,
        }
    }

    /// Writes the JSON line of `event`: the span fields flattened (those named like a key of
    /// the line itself are left out), then `timestamp`, `level`, `fields` and `target`.
    fn write_json(
        &self,
        line: &mut Vec<u8>,
        event: &Event<'_>,
        fields: &Fields,
        spans: &[FieldRef<'_>],
    ) {
        line.push(b'{');
        for (name, value) in spans {
            if !JSON_CORE.contains(name) {
                write_entry(line, name, value);
            }
        }
        write_key(line, "timestamp");
        line.push(b'"');
        line.extend_from_slice(&iso_time_bytes(SystemTime::now()));
        line.push(b'"');
        write_entry(line, "level", event.metadata().level().as_str());
        write_key(line, "fields");
        line.push(b'{');
        for (name, value) in fields {
            write_entry(line, name, value);
        }
        line.push(b'}');
        write_entry(line, "target", event.metadata().target());
        line.push(b'}');
    }

    /// Writes the bunyan line of `event`, whose keys follow bunyan's rules: a later key of the
    /// same name replaces an earlier one in place, and fields named like one of bunyan's own
    /// keys get a `_` suffix.
    fn write_bunyan(
        &self,
        line: &mut Vec<u8>,
        event: &Event<'_>,
        fields: Fields,
        spans: &[FieldRef<'_>],
    ) {
        let mut map = self.process.clone();
        map.insert(
            "level".to_owned(),
            bunyan_level(*event.metadata().level()).into(),
        );
        map.extend(self.sailor.clone());
        let mut insert = |name: &str, value: Value| {
            let key = if BUNYAN_CORE.contains(&name) {
                format!("{name}_")
            } else {
                name.to_owned()
            };
            map.insert(key, value);
        };
        for (name, value) in spans {
            insert(name, (*value).clone());
        }
        // The event's `message` is bunyan's `msg`; a span field of that name is a field.
        let mut msg = String::new();
        for (name, value) in fields {
            match (name, value) {
                ("message", Value::String(text)) => msg = text,
                ("message", other) => msg = other.to_string(),
                (name, value) => insert(name, value),
            }
        }
        map.insert("msg".to_owned(), msg.into());
        map.insert("time".to_owned(), iso_time(SystemTime::now()).into());
        map.insert("v".to_owned(), 0.into());
        let _ = serde_json::to_writer(&mut *line, &map);
    }
}

/// One field: its name and value.
type FieldRef<'a> = (&'static str, &'a Value);

/// An event's or a span's fields, in the order they were recorded.
type Fields = Vec<(&'static str, Value)>;

/// The keys of a JSON line that span fields must not repeat.
const JSON_CORE: [&str; 4] = ["timestamp", "level", "fields", "target"];

/// Room for the span fields of a line without growing: a delivery's span has eight.
const SPAN_FIELDS_CAPACITY: usize = 12;

/// A span's fields, kept as values when the span is made, so that each line logged in it
/// copies them out instead of formatting or parsing them again.
struct SpanFields(Fields);

/// Writes each event as one line of its [`LineFormat`] to the writer, carrying the fields of
/// the spans it was logged in.
pub struct LineLayer<W> {
    format: LineFormat,
    writer: W,
}

impl<S, W> Layer<S> for LineLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::with_capacity(attrs.fields().len());
        attrs.record(&mut FieldVisitor(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut FieldVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::with_capacity(event.fields().count());
        event.record(&mut FieldVisitor(&mut fields));
        // Outer spans first, so that an inner span's field of the same name wins.
        let scope: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let extensions: Vec<_> = scope.iter().map(|span| span.extensions()).collect();
        let mut spans: Vec<FieldRef<'_>> = Vec::with_capacity(SPAN_FIELDS_CAPACITY);
        for SpanFields(span_fields) in extensions.iter().filter_map(|e| e.get::<SpanFields>()) {
            for (name, value) in span_fields {
                set(&mut spans, name, value);
            }
        }
        let mut line = Vec::with_capacity(512);
        match self.format.format {
            LogFormat::Json => self.format.write_json(&mut line, event, &fields, &spans),
            LogFormat::Bunyan => self.format.write_bunyan(&mut line, event, fields, &spans),
        }
        line.push(b'\n');
        let _ = self
            .writer
            .make_writer_for(event.metadata())
            .write_all(&line);
    }
}

/// Sets `name` to `value` in `fields`: in place when it is there, at the end otherwise.
fn set<V>(fields: &mut Vec<(&'static str, V)>, name: &'static str, value: V) {
    match fields.iter_mut().find(|(known, _)| *known == name) {
        Some(field) => field.1 = value,
        None => fields.push((name, value)),
    }
}

/// Writes `"key":` after a `,` unless the object has just been opened.
fn write_key(line: &mut Vec<u8>, key: &str) {
    if line.last() != Some(&b'{') {
        line.push(b',');
    }
    let _ = serde_json::to_writer(&mut *line, key);
    line.push(b':');
}

/// Writes `"key":value`, `value` serialised as JSON.
fn write_entry(line: &mut Vec<u8>, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    write_key(line, key);
    let _ = serde_json::to_writer(&mut *line, value);
}

/// What `LOG_LEVEL` lets through. A bare level (`info`, `warn`, ...), the usual value, is
/// checked by level alone; anything else is a `tracing` env-filter directive. An env filter
/// looks every span up in a locked map each time a task carrying it is polled, which a bare
/// level has no use for.
pub enum LogFilter {
    /// Events and spans at this level or above.
    Level(tracing_subscriber::filter::LevelFilter),
    /// An env-filter directive (`info,sailor=debug`, ...).
    Directives(Box<tracing_subscriber::EnvFilter>),
}

impl LogFilter {
    /// The filter `LOG_LEVEL` says, `default_level` when it is unset or not a filter.
    pub fn from_env(default_level: &str) -> Self {
        let directive = std::env::var("LOG_LEVEL").unwrap_or_default();
        Self::parse(&directive)
            .or_else(|| Self::parse(default_level))
            .unwrap_or(Self::Level(tracing_subscriber::filter::LevelFilter::INFO))
    }

    /// The filter of `directive`, if it is one.
    pub fn parse(directive: &str) -> Option<Self> {
        let directive = directive.trim();
        if directive.is_empty() {
            return None;
        }
        if let Ok(level) = directive.parse() {
            return Some(Self::Level(level));
        }
        tracing_subscriber::EnvFilter::try_new(directive)
            .ok()
            .map(|filter| Self::Directives(Box::new(filter)))
    }

    fn into_layer<S>(self) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            Self::Level(level) => Box::new(level),
            Self::Directives(filter) => filter,
        }
    }
}

impl From<tracing_subscriber::EnvFilter> for LogFilter {
    fn from(filter: tracing_subscriber::EnvFilter) -> Self {
        Self::Directives(Box::new(filter))
    }
}

/// Installs the process-wide subscriber: lines of `format` on stderr, written in batches
/// ([`super::batch`]), filtered by `LOG_LEVEL` (default `default_level`, see [`LogFilter`]).
/// Keep the guard until the process is done logging: dropping it writes what still waits.
pub fn init(format: LogFormat, default_level: &str) -> FlushGuard<std::io::Stderr> {
    let stderr = BatchedWriter::new(std::io::stderr());
    stderr.flush_before_panics();
    let guard = stderr.flush_guard();
    tracing::subscriber::set_global_default(subscriber(
        LineFormat::new(format, std::env::vars()),
        LogFilter::from_env(default_level),
        stderr,
    ))
    .expect("the log subscriber is installed once, first thing in main");
    guard
}

/// A subscriber writing `format`'s lines to `writer`: [`init`]'s, and the tests'.
pub fn subscriber<W>(
    format: LineFormat,
    filter: impl Into<LogFilter>,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter.into().into_layer())
        .with(LineLayer { format, writer })
}

/// bunyan's numeric levels.
fn bunyan_level(level: Level) -> u8 {
    match level {
        Level::TRACE => 10,
        Level::DEBUG => 20,
        Level::INFO => 30,
        Level::WARN => 40,
        Level::ERROR => 50,
    }
}

/// `2026-11-30T17:35:08.123Z`, as JavaScript's `Date.toISOString()` (and so bunyan) writes it.
fn iso_time(at: SystemTime) -> String {
    String::from_utf8_lossy(&iso_time_bytes(at)).into_owned()
}

/// [`iso_time`] as its 24 bytes, written digit by digit: every line carries one, and
/// `format!` cost more than the rest of the line's formatting.
fn iso_time_bytes(at: SystemTime) -> [u8; 24] {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    for (range, value) in [
        (0..4, year.clamp(0, 9999) as u64),
        (5..7, u64::from(month)),
        (8..10, u64::from(day)),
        (11..13, rest / 3600),
        (14..16, rest % 3600 / 60),
        (17..19, rest % 60),
        (20..23, u64::from(since.subsec_millis())),
    ] {
        let mut value = value;
        for digit in out[range].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Collects fields as JSON values, a later value of a name replacing the earlier one.
struct FieldVisitor<'a>(&'a mut Fields);

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        set(self.0, field.name(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        set(self.0, field.name(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        set(self.0, field.name(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        set(self.0, field.name(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        set(self.0, field.name(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        set(self.0, field.name(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines written by a subscriber, shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Lines {
        type Writer = Lines;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn a_bare_level_is_a_level_filter_and_anything_else_a_directive() {
        use tracing_subscriber::filter::LevelFilter;
        for (directive, level) in [("warn", LevelFilter::WARN), (" DEBUG ", LevelFilter::DEBUG)] {
            assert!(
                matches!(LogFilter::parse(directive), Some(LogFilter::Level(l)) if l == level),
                "{directive}"
            );
        }
        assert!(matches!(
            LogFilter::parse("info,sailor=debug"),
            Some(LogFilter::Directives(_))
        ));
        assert!(LogFilter::parse("  ").is_none());
    }

    #[test]
    fn each_filter_lets_through_what_it_names_and_nothing_below() {
        for directive in ["warn", "warn,sailor=warn"] {
            let lines = Lines::default();
            let subscriber = subscriber(
                LineFormat::new(LogFormat::Json, [("HOSTNAME", "test")]),
                LogFilter::parse(directive).unwrap(),
                lines.clone(),
            );
            tracing::subscriber::with_default(subscriber, || {
                // The worker's delivery span is at `error`, so that a filter that lets
                // anything through keeps it.
                let span = tracing::error_span!("delivery", messageId = "m-1");
                let _entered = span.enter();
                tracing::info!(message = "Message settled.");
                tracing::warn!(message = "Publish not confirmed; retrying.");
            });
            let written = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<Value> = written
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            assert_eq!(lines.len(), 1, "{directive}: {written}");
            assert_eq!(
                lines[0]["fields"]["message"],
                "Publish not confirmed; retrying."
            );
            assert_eq!(lines[0]["messageId"], "m-1", "{directive}");
        }
    }

    /// Logs what a delivery logs, in `format`, and returns every line parsed.
    fn lines_of(format: LogFormat) -> Vec<Value> {
        let lines = Lines::default();
        let vars = [
            ("ELASTICIO_FLOW_ID", "flow-1"),
            ("ELASTICIO_STEP_ID", "step_2"),
            ("ELASTICIO_FUNCTION", "send"),
            ("ELASTICIO_MESSAGE_CRYPTO_PASSWORD", "cryptoSekrit"),
            ("ELASTICIO_AMQP_URI", "amqp://guest:hunter2@127.0.0.1/"),
        ];
        let subscriber = subscriber(
            LineFormat::new(format, vars),
            tracing_subscriber::EnvFilter::new("trace"),
            lines.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(message = "Worker starting.", prefetch = 2u64);
            let span = tracing::info_span!(
                "delivery",
                messageId = "m-1",
                parentMessageId = "p-1",
                threadId = tracing::field::Empty,
                stepId = "step_2"
            );
            let _entered = span.enter();
            span.record("threadId", "t-1");
            tracing::warn!(
                message = "Publish not confirmed; retrying.",
                retry = 1u64,
                name = "x"
            );
            tracing::trace!(message = "Detail.", ok = true);
        });
        let bytes = lines.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }

    #[test]
    fn json_lines_carry_the_delivery_span_fields_flattened() {
        let lines = lines_of(LogFormat::Json);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["fields"]["message"], "Worker starting.");
        assert_eq!(lines[0]["level"], "INFO");
        assert!(lines[0].get("messageId").is_none());
        for line in &lines[1..] {
            assert_eq!(line["messageId"], "m-1");
            assert_eq!(line["parentMessageId"], "p-1");
            assert_eq!(line["threadId"], "t-1");
            assert_eq!(line["stepId"], "step_2");
        }
        assert_eq!(lines[1]["fields"]["retry"], 1);
        assert_eq!(lines[2]["level"], "TRACE");
        assert!(lines[1]["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn an_inner_spans_field_wins_and_the_lines_own_keys_are_never_replaced() {
        let lines = Lines::default();
        let subscriber = subscriber(
            LineFormat::new(LogFormat::Json, [("HOSTNAME", "h")]),
            tracing_subscriber::EnvFilter::new("info"),
            lines.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", messageId = "outer", stepId = "step_1");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", messageId = "inner", level = "mine");
            let _inner = inner.enter();
            tracing::info!(message = "In both.");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        // Parsed as a map, a repeated key would hide: compare the text too.
        assert_eq!(text.matches("\"messageId\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"level\"").count(), 1, "{text}");
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["messageId"], "inner");
        assert_eq!(line["stepId"], "step_1");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "In both.");
    }

    #[test]
    fn bunyan_lines_have_sailors_fields_and_numeric_levels() {
        let lines = lines_of(LogFormat::Bunyan);
        assert_eq!(lines.len(), 3);
        let levels: Vec<u64> = lines.iter().map(|l| l["level"].as_u64().unwrap()).collect();
        assert_eq!(levels, [30, 40, 10]);
        for line in &lines {
            assert_eq!(line["name"], BUNYAN_NAME);
            assert!(!line["hostname"].as_str().unwrap().is_empty());
            assert_eq!(line["pid"], std::process::id());
            assert_eq!(line["v"], 0);
            assert_eq!(line["ELASTICIO_FLOW_ID"], "flow-1");
            assert_eq!(line["ELASTICIO_STEP_ID"], "step_2");
            assert_eq!(line["ELASTICIO_FUNCTION"], "send");
            assert_eq!(line["tag"], "flow-1");
            let time = line["time"].as_str().unwrap();
            assert_eq!(time.len(), "2026-11-30T17:35:08.123Z".len(), "{time}");
        }
        assert_eq!(lines[0]["msg"], "Worker starting.");
        assert_eq!(lines[0]["prefetch"], 2);
        assert_eq!(lines[1]["msg"], "Publish not confirmed; retrying.");
        assert_eq!(lines[1]["messageId"], "m-1");
        assert_eq!(lines[1]["parentMessageId"], "p-1");
        assert_eq!(lines[1]["threadId"], "t-1");
        assert_eq!(
            lines[1]["name"], BUNYAN_NAME,
            "a field cannot overwrite the name"
        );
        assert_eq!(lines[1]["name_"], "x");
        let text = lines.iter().map(Value::to_string).collect::<String>();
        for secret in [
            "cryptoSekrit",
            "hunter2",
            "ELASTICIO_AMQP_URI",
            "CRYPTO_PASSWORD",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn times_are_written_as_javascript_writes_them() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_796_059_708_123);
        assert_eq!(iso_time(at), "2026-11-30T17:28:28.123Z");
        assert_eq!(iso_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(iso_time(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_format_setting_is_read_strictly() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("Bunyan")), Ok(LogFormat::Bunyan));
        assert_eq!(
            LogFormat::parse(Some("xml")),
            Err("must be json or bunyan, not \"xml\"".to_owned())
        );
    }
}
