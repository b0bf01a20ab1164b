//! The demo's story: five rounds across three token expiries, each printed as one timeline
//! of HTTP exchanges and events, then the summary and the checks. A [`Driver`] carries the
//! messages; everything here is the same for both modes.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::checks::Checks;
use super::driver::{Driver, Round};
use super::journal::{self, describe, timeline};
use super::setup::{INSTANCE_URL, Setup};
use super::{DemoError, DemoOptions, DemoSummary, say};
use sailor::auth::TokenCache;
use sailor::event::{Event, EventKind};
use sandbox::Sandbox;

/// The state of one demo run.
pub struct Demo<D> {
    options: DemoOptions,
    sandbox: Sandbox,
    driver: D,
    tokens: TokenCache,
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

fn item(n: usize, stamp_second: usize) -> Value {
    json!({
        "id": format!("item-{n:02}"),
        "name": format!("Order {}", 1000 + n),
        "updated_at": format!("2026-01-01T09:00:{stamp_second:02}Z"),
    })
}

impl<D: Driver> Demo<D> {
    /// A demo of `setup` driven by `driver`.
    pub fn new(options: &DemoOptions, setup: Setup, driver: D) -> Self {
        Self {
            options: options.clone(),
            sandbox: setup.sandbox,
            driver,
            tokens: setup.tokens,
            items: Vec::new(),
            items_added: Vec::new(),
            emitted: BTreeMap::new(),
            update_keys: Vec::new(),
            original_refresh_token: setup.original_refresh_token,
            traffic_printed: 0,
            expiries: 0,
            errors: 0,
            checks: Checks::default(),
        }
    }

    /// Plays the rounds, lets the driver finish (always, so that it leaves nothing behind),
    /// then concludes.
    pub async fn run(mut self, out: &mut (dyn Write + Send)) -> Result<DemoSummary, DemoError> {
        let played = self.play(out).await;
        let finished = self.driver.finish(out, &mut self.checks).await;
        played?;
        finished?;
        self.conclude(out)
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
        say(out, self.driver.title())?;
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
        for line in self.driver.preamble() {
            say(out, line)?;
        }

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
        let round = self.driver.poll().await?;
        let completed = round.completed;
        let events = self.print_timeline(out, round)?;
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
        self.end_round(out, completed, before, expected_token_requests, &events)
    }

    async fn request_round(
        &mut self,
        out: &mut (dyn Write + Send),
        ids: &[&str],
        expected_token_requests: usize,
    ) -> Result<(), DemoError> {
        let before = self.counters();
        let bodies = ids
            .iter()
            .map(|id| json!({"id": id, "note": "shipped"}))
            .collect();
        let round = self.driver.request(bodies).await?;
        let completed = round.completed;
        let events = self.print_timeline(out, round)?;
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
        self.end_round(out, completed, before, expected_token_requests, &events)
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
        completed: bool,
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
        self.checks
            .expect_eq(completed, true, "every message is processed without error");
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

    /// Prints the round's entries among the HTTP exchanges since the last call, in order;
    /// returns the round's events.
    fn print_timeline(
        &mut self,
        out: &mut (dyn Write + Send),
        round: Round,
    ) -> Result<Vec<Event>, DemoError> {
        let traffic: Vec<_> = self
            .sandbox
            .traffic()
            .into_iter()
            .skip(self.traffic_printed)
            .collect();
        self.traffic_printed += traffic.len();
        let mut events = Vec::new();
        for entry in timeline(traffic, round.entries) {
            if let Some(event) = entry.event() {
                if let Event::UpdateKeys(keys) = event
                    && let Some(oauth) = keys.expose_json().get("oauth").and_then(Value::as_object)
                {
                    self.update_keys.push(oauth.clone());
                }
                events.push(event.clone());
            }
            say(out, describe(&entry))?;
        }
        Ok(events)
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
        let refreshes = self.tokens.refresh_count();
        let mut refresh_tokens: Vec<String> = vec![self.original_refresh_token.clone()];
        refresh_tokens.extend(
            self.update_keys
                .iter()
                .map(|k| k["refresh_token"].as_str().unwrap_or_default().to_owned()),
        );
        let distinct: std::collections::BTreeSet<&String> = refresh_tokens.iter().collect();
        let current = self
            .tokens
            .current()
            .tokens
            .refresh_token()
            .map(|r| r.expose_secret().to_owned())
            .unwrap_or_default();

        let mut added = self.items_added.clone();
        added.sort();
        let noun = self.driver.update_keys_noun();
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
            format!("one updateKeys {noun} per refresh"),
        );
        checks.expect_eq(
            summary.update_keys,
            summary.token_requests,
            format!("one updateKeys {noun} per token request"),
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
        checks.expect_eq(self.errors, 0, format!("no error {noun}"));

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
        say(
            out,
            format!("  updateKeys {noun}s  {}", summary.update_keys),
        )?;
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
