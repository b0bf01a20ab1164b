//! `component demo`: the component and the runtime against a loopback OAuth2 provider and API,
//! with no outside service.
//!
//! The demo starts the [`crate::sandbox`] in-process (access tokens living three seconds,
//! refresh tokens rotated on every use, reuse revoking the grant) and drives `pollItems` and
//! `request` through [`Step::process`], the same path the worker takes, over five rounds
//! with pauses long enough for the access token to die three times. It prints each HTTP
//! exchange and each event on one timeline (tokens redacted to fingerprints), then checks
//! its own expectations ([`checks`]) and fails when any is broken.
//!
//! The runtime's clock is held still during the demo. With a running clock the runtime
//! refreshes ahead of expiry and no 401 is ever seen; holding it still shows the path a
//! token revoked early, or a clock out of step with the provider's, takes: the API's 401,
//! one refresh, `updateKeys`, one replay.

pub mod checks;
pub mod journal;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::clock::{Clock as _, ManualClock, SystemClock};
use crate::config::StepConfig;
use crate::emitter::{CollectingSink, Emitter};
use crate::event::{Event, EventKind};
use crate::message::Message;
use crate::registry::Registry;
use crate::sandbox::{GrantState, Sandbox, SandboxOptions};
use crate::step::{Outcome, Step};
use checks::Checks;
use journal::{describe, timeline};

/// The provider extra the demo expects to survive every refresh.
const INSTANCE_URL: &str = "https://eu42.sandbox.example";

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long the sandbox's access tokens live.
    pub access_token_ttl: Duration,
    /// Items per page of the poll.
    pub page_size: u64,
    /// Whether the provider rotates refresh tokens. The demo expects rotation, so `false`
    /// makes it fail, which is how its own test shows that the checks bite.
    pub rotate_refresh_tokens: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            // Long enough that a loaded machine does not expire a token inside a round,
            // short enough that three expiries fit in about ten seconds.
            access_token_ttl: Duration::from_secs(3),
            page_size: 5,
            rotate_refresh_tokens: true,
        }
    }
}

/// The numbers of a demo run that went as it should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSummary {
    /// Items emitted by `pollItems`, all distinct.
    pub items: usize,
    /// Requests that reached the API, rejected ones included.
    pub api_calls: usize,
    /// API requests rejected for an expired token.
    pub rejections: usize,
    /// Requests to the token endpoint.
    pub token_requests: usize,
    /// `updateKeys` events emitted.
    pub update_keys: usize,
}

/// Why the demo did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The loopback provider could not start.
    #[error("the loopback OAuth2 provider and API could not start")]
    Sandbox(#[source] std::io::Error),
    /// The demo's own step configs were refused (a bug in the demo).
    #[error("the demo's step config is invalid: {0}")]
    Setup(String),
    /// The printout could not be written.
    #[error("the demo could not write its account")]
    Output(#[source] std::io::Error),
    /// The runtime did not behave as promised.
    #[error("{} of the demo's expectations failed: {}", .0.len(), .0.join("; "))]
    Expectations(Vec<String>),
}

/// Runs the demo, writing the account of what happened to `out`; `Ok` only when every
/// expectation held.
pub async fn run(
    out: &mut (dyn Write + Send),
    options: &DemoOptions,
) -> Result<DemoSummary, DemoError> {
    let mut demo = Demo::start(options).await?;
    demo.play(out).await?;
    demo.conclude(out)
}

/// The state of one demo run.
struct Demo {
    options: DemoOptions,
    sandbox: Sandbox,
    sink: CollectingSink,
    emitter: Emitter,
    poll: Step,
    request: Step,
    snapshot: Value,
    items: Vec<Value>,
    items_added: Vec<String>,
    emitted: BTreeMap<String, usize>,
    update_keys: Vec<Map<String, Value>>,
    original_refresh_token: String,
    traffic_printed: usize,
    expiries: usize,
    errors: usize,
    checks: Checks,
}

fn say(out: &mut (dyn Write + Send), line: impl AsRef<str>) -> Result<(), DemoError> {
    writeln!(out, "{}", line.as_ref())
        .and_then(|()| out.flush())
        .map_err(DemoError::Output)
}

fn item(n: usize, stamp_second: usize) -> Value {
    json!({
        "id": format!("item-{n:02}"),
        "name": format!("Order {}", 1000 + n),
        "updated_at": format!("2026-01-01T09:00:{stamp_second:02}Z"),
    })
}

impl Demo {
    async fn start(options: &DemoOptions) -> Result<Self, DemoError> {
        let mut extras = Map::new();
        extras.insert("instance_url".into(), json!(INSTANCE_URL));
        let sandbox = Sandbox::start(SandboxOptions {
            access_token_ttl: options.access_token_ttl,
            rotate_refresh_tokens: options.rotate_refresh_tokens,
            revoke_grant_on_reuse: true,
            extras,
            ..SandboxOptions::default()
        })
        .await
        .map_err(DemoError::Sandbox)?;
        let grant = sandbox.issue_grant(GrantState::Valid);
        let original_refresh_token = grant["refresh_token"].as_str().unwrap_or("").to_owned();
        let clock = Arc::new(ManualClock::at(SystemClock.now_unix()));
        let config = |fields: Value| {
            StepConfig::from_value(sandbox.step_config(grant.clone(), fields))
                .map_err(|e| DemoError::Setup(e.to_string()))
        };
        let registry = Registry::builtin();
        let poll = Step::new(
            &registry,
            "pollItems",
            config(json!({
                "path": "/items",
                "items_pointer": "/items",
                "modified_field": "updated_at",
                "id_field": "id",
                "since_param": "since",
                "pagination": "page",
                "page_size": options.page_size,
                "has_more_pointer": "/has_more",
                "expiry_skew_s": 0,
            }))?,
            clock.clone(),
        )
        .map_err(|e| DemoError::Setup(e.to_string()))?;
        let tokens = poll
            .tokens()
            .cloned()
            .ok_or_else(|| DemoError::Setup("the poll step has no token set".into()))?;
        let request = Step::new(
            &registry,
            "request",
            config(json!({
                "method": "POST",
                "path": "/echo/items/{id}/notes",
                "expiry_skew_s": 0,
            }))?,
            clock,
        )
        .map_err(|e| DemoError::Setup(e.to_string()))?
        .with_token_cache(tokens);
        let sink = CollectingSink::new();
        Ok(Self {
            options: options.clone(),
            emitter: Emitter::new(Arc::new(sink.clone())),
            sink,
            sandbox,
            poll,
            request,
            snapshot: json!({}),
            items: Vec::new(),
            items_added: Vec::new(),
            emitted: BTreeMap::new(),
            update_keys: Vec::new(),
            original_refresh_token,
            traffic_printed: 0,
            expiries: 0,
            errors: 0,
            checks: Checks::default(),
        })
    }

    fn add_items(&mut self, items: Vec<Value>) {
        for item in items {
            self.items_added
                .push(item["id"].as_str().unwrap_or_default().to_owned());
            self.items.push(item);
        }
        self.sandbox.set_items(self.items.clone());
    }

    async fn play(&mut self, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
        let ttl = self.options.access_token_ttl;
        say(
            out,
            "component demo: the REST component and its runtime against a loopback OAuth2 provider",
        )?;
        say(out, "")?;
        say(
            out,
            format!(
                "  provider  {}  access tokens live {} s; every refresh rotates the refresh token,",
                self.sandbox.token_uri(),
                ttl.as_secs_f32()
            ),
        )?;
        say(
            out,
            "            and presenting a rotated-away one revokes the whole grant",
        )?;
        say(out, format!("  api       {}", self.sandbox.api_base_url()))?;
        say(
            out,
            format!(
                "  steps     pollItems (page numbers, {} per page, since=<high-water mark>) and",
                self.options.page_size
            ),
        )?;
        say(
            out,
            "            request (POST /echo/items/{id}/notes), one account, one token cache",
        )?;
        say(
            out,
            "  note      the runtime's clock is held still, so it learns of each expiry from the API's",
        )?;
        say(
            out,
            "            401 (as with a token revoked early); tokens print as <redacted #fingerprint>",
        )?;

        self.add_items((1..=12).map(|n| item(n, stamp_of(n))).collect());
        self.heading(out, "Round 1: pollItems, first run, 12 items over 3 pages")?;
        self.poll_round(out, 0, 12).await?;

        self.wait_for_expiry(out).await?;
        self.add_items((13..=16).map(|n| item(n, stamp_of(n))).collect());
        self.heading(
            out,
            "Round 2: pollItems after the token expired; 4 new items, item-13 sharing item-12's timestamp",
        )?;
        self.poll_round(out, 1, 4).await?;

        self.heading(out, "Round 3: request with the refreshed token")?;
        self.request_round(out, &["item-13"], 0).await?;

        self.wait_for_expiry(out).await?;
        self.heading(
            out,
            "Round 4: request after the token expired, two messages",
        )?;
        self.request_round(out, &["item-14", "item-15"], 1).await?;

        self.wait_for_expiry(out).await?;
        self.heading(
            out,
            "Round 5: pollItems after the token expired; nothing new (the inclusive since filter sends item-16 again, the snapshot's ids tell it apart)",
        )?;
        self.poll_round(out, 1, 0).await?;
        Ok(())
    }

    fn heading(&self, out: &mut (dyn Write + Send), title: &str) -> Result<(), DemoError> {
        say(out, "")?;
        say(out, title)
    }

    async fn wait_for_expiry(&mut self, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
        let wait = self.options.access_token_ttl + Duration::from_millis(300);
        say(out, "")?;
        say(
            out,
            format!(
                "... waiting {:.1} s: the access token dies at the provider",
                wait.as_secs_f32()
            ),
        )?;
        tokio::time::sleep(wait).await;
        self.expiries += 1;
        Ok(())
    }

    async fn poll_round(
        &mut self,
        out: &mut (dyn Write + Send),
        expected_token_requests: usize,
        expected_items: usize,
    ) -> Result<(), DemoError> {
        let before = self.counters();
        let outcome = self
            .poll
            .process(&Message::default(), &self.snapshot, &self.emitter)
            .await;
        let events = self.print_timeline(out)?;
        let items: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Data(m) => m.body["id"].as_str().map(str::to_owned),
                _ => None,
            })
            .collect();
        for id in &items {
            *self.emitted.entry(id.clone()).or_default() += 1;
        }
        if let Some(snapshot) = events.iter().rev().find_map(|e| match e {
            Event::Snapshot(s) => Some(s.clone()),
            _ => None,
        }) {
            self.snapshot = snapshot;
        }
        self.checks.expect_eq(
            events.last().map(Event::kind),
            Some(EventKind::Snapshot),
            "the poll emits its snapshot after the data",
        );
        self.checks.expect_eq(
            items.len(),
            expected_items,
            "the poll emits exactly the items not emitted before",
        );
        self.end_round(out, &outcome, before, expected_token_requests, &events)
    }

    async fn request_round(
        &mut self,
        out: &mut (dyn Write + Send),
        ids: &[&str],
        expected_token_requests: usize,
    ) -> Result<(), DemoError> {
        let before = self.counters();
        let mut outcomes = Vec::new();
        for id in ids {
            let message = Message {
                body: json!({"id": id, "note": "shipped"}),
                ..Message::default()
            };
            outcomes.push(
                self.request
                    .process(&message, &json!({}), &self.emitter)
                    .await,
            );
        }
        let events = self.print_timeline(out)?;
        let statuses: Vec<Value> = events
            .iter()
            .filter_map(|e| match e {
                Event::Data(m) => Some(m.body["status"].clone()),
                _ => None,
            })
            .collect();
        self.checks.expect_eq(
            statuses,
            vec![json!(200); ids.len()],
            "every request message yields one 200 response",
        );
        let outcome = outcomes
            .into_iter()
            .find(|o| *o != Outcome::Completed)
            .unwrap_or(Outcome::Completed);
        self.end_round(out, &outcome, before, expected_token_requests, &events)
    }

    /// Token requests, rejections and API calls so far.
    fn counters(&self) -> (usize, usize, usize) {
        (
            self.sandbox.token_requests(),
            self.sandbox.api_rejections(),
            self.sandbox.api_calls(),
        )
    }

    fn end_round(
        &mut self,
        out: &mut (dyn Write + Send),
        outcome: &Outcome,
        before: (usize, usize, usize),
        expected_token_requests: usize,
        events: &[Event],
    ) -> Result<(), DemoError> {
        let (tokens, rejections, calls) = self.counters();
        let (tokens, rejections, calls) =
            (tokens - before.0, rejections - before.1, calls - before.2);
        self.errors += events
            .iter()
            .filter(|e| e.kind() == EventKind::Error)
            .count();
        self.checks.expect_eq(
            outcome,
            &Outcome::Completed,
            "every message is processed without error",
        );
        self.checks.expect_eq(
            tokens,
            expected_token_requests,
            "one token request per expiry, none otherwise",
        );
        self.checks.expect_eq(
            rejections,
            expected_token_requests,
            "one 401 per expiry, none after the refresh",
        );
        say(
            out,
            format!(
                "  ----  {calls} API call(s), {rejections} rejected, {tokens} token request(s)"
            ),
        )
    }

    /// Prints the exchanges and events since the last call, in order; returns the events.
    fn print_timeline(&mut self, out: &mut (dyn Write + Send)) -> Result<Vec<Event>, DemoError> {
        let traffic: Vec<_> = self
            .sandbox
            .traffic()
            .into_iter()
            .skip(self.traffic_printed)
            .collect();
        self.traffic_printed += traffic.len();
        let events = self.sink.take_timed();
        for (_, event) in &events {
            if let Event::UpdateKeys(keys) = event
                && let Some(oauth) = keys.expose_json().get("oauth").and_then(Value::as_object)
            {
                self.update_keys.push(oauth.clone());
            }
        }
        let plain: Vec<Event> = events.iter().map(|(_, e)| e.clone()).collect();
        for entry in timeline(traffic, events) {
            say(out, describe(&entry))?;
        }
        Ok(plain)
    }

    fn conclude(mut self, out: &mut (dyn Write + Send)) -> Result<DemoSummary, DemoError> {
        let token_log = self.sandbox.token_log();
        let summary = DemoSummary {
            items: self.emitted.len(),
            api_calls: self.sandbox.api_calls(),
            rejections: self.sandbox.api_rejections(),
            token_requests: token_log.len(),
            update_keys: self.update_keys.len(),
        };
        let refreshes = self.poll.tokens().map(|t| t.refresh_count()).unwrap_or(0);
        let mut refresh_tokens: Vec<String> = vec![self.original_refresh_token.clone()];
        refresh_tokens.extend(
            self.update_keys
                .iter()
                .map(|k| k["refresh_token"].as_str().unwrap_or_default().to_owned()),
        );
        let distinct: std::collections::BTreeSet<&String> = refresh_tokens.iter().collect();
        let current = self
            .poll
            .tokens()
            .and_then(|t| {
                t.current()
                    .tokens
                    .refresh_token()
                    .map(|r| r.expose_secret().to_owned())
            })
            .unwrap_or_default();

        let mut added = self.items_added.clone();
        added.sort();
        let checks = &mut self.checks;
        checks.expect_eq(
            self.emitted.keys().cloned().collect::<Vec<_>>(),
            added,
            "every item is emitted",
        );
        checks.expect(
            self.emitted.values().all(|n| *n == 1),
            "no item is emitted twice",
            || {
                format!(
                    "{:?}",
                    self.emitted
                        .iter()
                        .filter(|(_, n)| **n > 1)
                        .collect::<Vec<_>>()
                )
            },
        );
        checks.expect_eq(
            summary.token_requests,
            self.expiries,
            "exactly one token request per expiry",
        );
        checks.expect_eq(
            summary.update_keys as u64,
            refreshes,
            "one updateKeys event per refresh",
        );
        checks.expect_eq(
            summary.update_keys,
            summary.token_requests,
            "one updateKeys event per token request",
        );
        checks.expect(
            token_log.iter().all(|r| r.status == 200 && r.client_authenticated),
            "every refresh succeeded, so no rotated-away refresh token was ever sent (the provider revokes the grant on reuse)",
            || format!("token endpoint statuses {:?}", token_log.iter().map(|r| r.status).collect::<Vec<_>>()),
        );
        checks.expect_eq(
            distinct.len(),
            refresh_tokens.len(),
            "each refresh rotated the refresh token",
        );
        checks.expect(
            refresh_tokens.last() == Some(&current),
            "the runtime holds the last rotated refresh token for the next refresh",
            || "the cache holds another refresh token".to_owned(),
        );
        checks.expect(
            self.update_keys
                .iter()
                .all(|k| k.get("instance_url") == Some(&json!(INSTANCE_URL))),
            "updateKeys carries the whole token set, provider extras (instance_url) included",
            || "an updateKeys payload lacks instance_url".to_owned(),
        );
        checks.expect_eq(self.errors, 0, "no error event");

        say(out, "")?;
        say(out, "Summary")?;
        say(
            out,
            format!(
                "  items emitted      {} ({} added to the API; each emitted exactly once)",
                summary.items,
                self.items_added.len()
            ),
        )?;
        say(
            out,
            format!(
                "  API calls          {} ({} rejected with 401, each replayed once after the refresh)",
                summary.api_calls, summary.rejections
            ),
        )?;
        say(
            out,
            format!(
                "  token requests     {} (the access token expired {} times)",
                summary.token_requests, self.expiries
            ),
        )?;
        say(out, format!("  updateKeys events  {}", summary.update_keys))?;
        say(
            out,
            format!(
                "  refresh tokens     {} distinct, rotated by every refresh: {}",
                distinct.len(),
                refresh_tokens
                    .iter()
                    .map(|t| format!("#{}", journal::fingerprint(t)))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        )?;
        say(out, "")?;
        let failed = self.checks.failed().to_vec();
        if failed.is_empty() {
            say(
                out,
                format!("All {} checks passed:", self.checks.passed().len()),
            )?;
            for promise in self.checks.passed() {
                say(out, format!("  ok    {promise}"))?;
            }
            Ok(summary)
        } else {
            say(out, format!("{} check(s) FAILED:", failed.len()))?;
            for problem in &failed {
                say(out, format!("  FAIL  {problem}"))?;
            }
            Err(DemoError::Expectations(failed))
        }
    }
}

/// Items 1-12 one second apart; item 13 shares item 12's second; later ones follow on.
fn stamp_of(n: usize) -> usize {
    if n <= 12 { n } else { n - 1 }
}
