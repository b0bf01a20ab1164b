//! The `pollItems` snapshot: a high-water mark that never emits an item twice, and never
//! moves past an item it has not emitted.
//!
//! # The rule
//!
//! The snapshot is `{"since": <mark>, "ids_at_since": [<ids at the mark>]}`, plus, while a
//! backlog is being drained newest first, `"covered": [{"from", "ids_at_from", "to",
//! "ids_at_to"}, ...]`.
//!
//! - Every item modified **before** `since` has been emitted, and so has every item **at**
//!   `since` whose id is in `ids_at_since`.
//! - Every item modified strictly **between** a band's `from` and `to` has been emitted, and so
//!   has every item at `from` (or `to`) whose id is in `ids_at_from` (or `ids_at_to`).
//!
//! A poll sends `since` unchanged as the `since_param` query parameter and admits an item only
//! when none of these statements covers it. This is right whatever the API does with the
//! parameter: an *inclusive* API (`>= since`, as GitHub's and most "modified since" filters)
//! sends the boundary items again and they are recognised by id (an item that appeared later
//! with the very same timestamp is still emitted); an *exclusive* API (`> since`) never sends
//! them again; an API that ignores the parameter sends everything and the local filter does
//! the work. An item whose modified value changes is newer, and is emitted again: an update.
//!
//! # What a poll learns
//!
//! A poll walks the list from its first page. What it has seen is a contiguous stretch of the
//! list's order, so what it may add to the snapshot depends on the order and on whether the
//! walk reached the end ([`HighWater::after`]):
//!
//! - **The walk ended** (no next page; or, newest first, it reached items older than `since`):
//!   everything up to the greatest value seen is covered; `since` becomes that value, the
//!   bands are absorbed.
//! - **Stopped at `max_pages`, oldest first**: everything up to the greatest value seen is
//!   covered (the rest is newer); `since` becomes that value, as before.
//! - **Stopped at `max_pages`, newest first**: only the band from the smallest to the greatest
//!   value seen is covered; the items not fetched yet are older than the band but newer than
//!   `since`, so `since` stays and the band is recorded in `covered`. The next poll walks
//!   from the top again: pages of items the snapshot already covers do not count towards
//!   `max_pages`, so it passes the band and goes on into the rest. When a walk ends, the bands
//!   collapse into `since`.
//! - **Every item seen had the same value** (more items at one timestamp than `max_pages` x
//!   `page_size`): the order cannot be told, so the band rule holds (a band from that value to
//!   itself, with the ids seen). The next poll passes the known items for free and emits the
//!   next ones: each poll makes progress, and the ids of one timestamp are kept in full, since
//!   nothing else tells them apart.
//!
//! Values compare as numbers when both are numbers, else as text, which orders ISO 8601
//! timestamps correctly as long as the API writes them in one format and zone. The list must
//! be sorted by the modified field, one way or the other: for an unsorted list no mark can
//! say what a stopped walk left out (a poll that sees both orders logs a warning).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// The snapshot field holding the mark.
pub const SINCE: &str = "since";
/// The snapshot field holding the ids of the items at the mark.
pub const IDS_AT_SINCE: &str = "ids_at_since";
/// The snapshot field holding the bands covered above the mark.
pub const COVERED: &str = "covered";

/// How the API orders the list by the modified field (`order` in the config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Told per poll from the values seen.
    #[default]
    Auto,
    /// Oldest first.
    Ascending,
    /// Newest first.
    Descending,
}

impl ListOrder {
    /// Reads `order`: `auto` (or unset), `ascending`, `descending`.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.map(str::trim).unwrap_or("") {
            "" | "auto" => Some(Self::Auto),
            "ascending" => Some(Self::Ascending),
            "descending" => Some(Self::Descending),
            _ => None,
        }
    }
}

/// A stretch of modified values whose items have all been emitted; see the module doc.
#[derive(Clone, Debug, PartialEq)]
struct Region {
    /// `None`: from the beginning of time (the `since` region).
    from: Option<Value>,
    ids_at_from: BTreeSet<String>,
    to: Value,
    ids_at_to: BTreeSet<String>,
}

impl Region {
    fn covers(&self, modified: &Value, id: &str) -> bool {
        if let Some(from) = &self.from {
            match compare(modified, from) {
                Ordering::Less => return false,
                Ordering::Equal if self.ids_at_from.contains(id) => return true,
                // An item at the lower bound that the walk did not see may be one it never
                // reached.
                Ordering::Equal => {
                    return compare(modified, &self.to) == Ordering::Equal
                        && self.ids_at_to.contains(id);
                }
                Ordering::Greater => {}
            }
        }
        match compare(modified, &self.to) {
            Ordering::Less => true,
            Ordering::Equal => self.ids_at_to.contains(id),
            Ordering::Greater => false,
        }
    }

    /// True when `next` (starting at or after `self`) overlaps it, so that one region says
    /// the same as both. Regions that only touch at a value stay apart: an item at that value
    /// is covered only when one of them lists its id.
    fn absorbs(&self, next: &Region) -> bool {
        match &next.from {
            None => true,
            Some(from) => {
                let is_point = compare(from, &next.to) == Ordering::Equal;
                match compare(from, &self.to) {
                    Ordering::Less => true,
                    // A band of one value at `self`'s top adds ids at that value, nothing more.
                    Ordering::Equal if is_point => true,
                    _ => self
                        .from
                        .as_ref()
                        .is_some_and(|f| compare(f, from) == Ordering::Equal),
                }
            }
        }
    }

    fn merge(mut self, next: Region) -> Region {
        if let (Some(a), Some(b)) = (&self.from, &next.from)
            && compare(a, b) == Ordering::Equal
        {
            self.ids_at_from.extend(next.ids_at_from);
        }
        match compare(&next.to, &self.to) {
            Ordering::Greater => {
                self.to = next.to;
                self.ids_at_to = next.ids_at_to;
            }
            Ordering::Equal => self.ids_at_to.extend(next.ids_at_to),
            Ordering::Less => {}
        }
        self
    }

    fn from_snapshot(band: &Value) -> Option<Self> {
        let value = |name: &str| band.get(name).filter(|v| v.is_string() || v.is_number());
        Some(Self {
            from: Some(value("from")?.clone()),
            ids_at_from: ids(band.get("ids_at_from")),
            to: value("to")?.clone(),
            ids_at_to: ids(band.get("ids_at_to")),
        })
    }

    fn to_snapshot(&self) -> Value {
        json!({
            "from": self.from,
            "ids_at_from": self.ids_at_from,
            "to": self.to,
            "ids_at_to": self.ids_at_to,
        })
    }
}

fn ids(list: Option<&Value>) -> BTreeSet<String> {
    list.and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(id_text).collect())
        .unwrap_or_default()
}

/// A high-water mark: what has been emitted, as `since` and the bands above it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HighWater {
    /// Sorted and apart; only the first may start at the beginning of time (`since`).
    regions: Vec<Region>,
}

impl HighWater {
    /// Reads the mark from a snapshot; anything unrecognisable counts as "no mark yet".
    pub fn from_snapshot(snapshot: &Value) -> Self {
        let since = snapshot
            .get(SINCE)
            .filter(|v| v.is_string() || v.is_number())
            .cloned()
            .map(|to| Region {
                from: None,
                ids_at_from: BTreeSet::new(),
                to,
                ids_at_to: ids(snapshot.get(IDS_AT_SINCE)),
            });
        let covered = snapshot
            .get(COVERED)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Region::from_snapshot);
        Self::from_regions(since.into_iter().chain(covered).collect())
    }

    /// Sorts and merges regions into a mark.
    fn from_regions(mut regions: Vec<Region>) -> Self {
        regions.sort_by(|a, b| match (&a.from, &b.from) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare(x, y),
        });
        let mut merged: Vec<Region> = Vec::with_capacity(regions.len());
        for region in regions {
            match merged.pop() {
                Some(last) if last.absorbs(&region) => merged.push(last.merge(region)),
                Some(last) => merged.extend([last, region]),
                None => merged.push(region),
            }
        }
        Self { regions: merged }
    }

    fn since(&self) -> Option<&Region> {
        self.regions.first().filter(|region| region.from.is_none())
    }

    fn bands(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().filter(|region| region.from.is_some())
    }

    /// The snapshot to emit after the data.
    pub fn to_snapshot(&self) -> Value {
        let mut out = Map::new();
        if let Some(since) = self.since() {
            out.insert(SINCE.into(), since.to.clone());
            out.insert(IDS_AT_SINCE.into(), json!(since.ids_at_to));
        }
        let bands: Vec<Value> = self.bands().map(Region::to_snapshot).collect();
        if !bands.is_empty() {
            out.insert(COVERED.into(), Value::Array(bands));
        }
        Value::Object(out)
    }

    /// The value to send as `since_param`, when there is a mark.
    pub fn query_value(&self) -> Option<String> {
        self.since().and_then(|since| id_text(&since.to))
    }

    /// True when an item with this modified value and id has not been emitted before.
    pub fn admits(&self, modified: &Value, id: &str) -> bool {
        !self
            .regions
            .iter()
            .any(|region| region.covers(modified, id))
    }

    /// True when the value is older than `since`: a newest-first walk that reaches it has
    /// seen everything newer.
    pub fn is_below_since(&self, modified: &Value) -> bool {
        self.since()
            .is_some_and(|since| compare(modified, &since.to) == Ordering::Less)
    }

    /// The mark after a poll that walked `walk` from the first page of the list; `finished`
    /// when the walk reached the end (see the module doc for what a stopped walk may claim).
    pub fn after(&self, walk: &Walk, finished: bool, order: ListOrder) -> Self {
        let (Some((low, ids_at_low)), Some((high, ids_at_high))) = (&walk.low, &walk.high) else {
            return self.clone();
        };
        let from_the_start = finished
            || match order {
                ListOrder::Ascending => true,
                ListOrder::Descending => false,
                ListOrder::Auto => walk.seen_order() == Some(ListOrder::Ascending),
            };
        let seen = if from_the_start {
            Region {
                from: None,
                ids_at_from: BTreeSet::new(),
                to: high.clone(),
                ids_at_to: ids_at_high.clone(),
            }
        } else {
            Region {
                from: Some(low.clone()),
                ids_at_from: ids_at_low.clone(),
                to: high.clone(),
                ids_at_to: ids_at_high.clone(),
            }
        };
        let mut regions = self.regions.clone();
        regions.push(seen);
        Self::from_regions(regions)
    }
}

/// What one poll has seen of the list, in the order the API listed it: the smallest and
/// greatest modified values with the ids carrying them, and which way the values went.
#[derive(Clone, Debug, Default)]
pub struct Walk {
    low: Option<(Value, BTreeSet<String>)>,
    high: Option<(Value, BTreeSet<String>)>,
    last: Option<Value>,
    rises: bool,
    falls: bool,
}

impl Walk {
    /// Records an item the poll fetched, emitted or not.
    pub fn see(&mut self, modified: &Value, id: &str) {
        if let Some(last) = &self.last {
            match compare(modified, last) {
                Ordering::Greater => self.rises = true,
                Ordering::Less => self.falls = true,
                Ordering::Equal => {}
            }
        }
        self.last = Some(modified.clone());
        for (extreme, wanted) in [
            (&mut self.low, Ordering::Less),
            (&mut self.high, Ordering::Greater),
        ] {
            match extreme {
                Some((value, ids)) => match compare(modified, value) {
                    Ordering::Equal => {
                        ids.insert(id.to_owned());
                    }
                    order if order == wanted => {
                        *value = modified.clone();
                        *ids = BTreeSet::from([id.to_owned()]);
                    }
                    _ => {}
                },
                None => *extreme = Some((modified.clone(), BTreeSet::from([id.to_owned()]))),
            }
        }
    }

    /// The order the values went in so far: `None` when all were equal (or fewer than two),
    /// [`ListOrder::Auto`] when they went both ways (the list is not sorted).
    pub fn seen_order(&self) -> Option<ListOrder> {
        match (self.rises, self.falls) {
            (false, false) => None,
            (true, false) => Some(ListOrder::Ascending),
            (false, true) => Some(ListOrder::Descending),
            (true, true) => Some(ListOrder::Auto),
        }
    }
}

/// A string or number as text; other JSON values have none.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers numerically, anything else as text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => id_text(a)
            .unwrap_or_default()
            .cmp(&id_text(b).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_mark_everything_is_admitted() {
        let mark = HighWater::from_snapshot(&json!({}));
        assert!(mark.admits(&json!("2020-01-01T00:00:00Z"), "a"));
        assert_eq!(mark.query_value(), None);
        assert_eq!(mark.to_snapshot(), json!({}));
    }

    #[test]
    fn items_at_the_mark_are_admitted_only_when_their_id_is_new() {
        let mark = HighWater::from_snapshot(&json!({"since": "t2", "ids_at_since": ["a", 7]}));
        assert!(!mark.admits(&json!("t2"), "a"));
        assert!(!mark.admits(&json!("t2"), "7"));
        assert!(mark.admits(&json!("t2"), "b"));
        assert!(mark.admits(&json!("t3"), "a"));
        assert!(!mark.admits(&json!("t1"), "z"));
        assert_eq!(mark.query_value().as_deref(), Some("t2"));
    }

    /// The walk of `items` (modified, id), in the order listed.
    fn walk(items: &[(&str, &str)]) -> Walk {
        let mut walk = Walk::default();
        for (modified, id) in items {
            walk.see(&json!(modified), id);
        }
        walk
    }

    #[test]
    fn a_finished_walk_moves_the_mark_to_the_greatest_value_seen() {
        let mark = HighWater::default().after(
            &walk(&[("t1", "a"), ("t2", "b"), ("t2", "c"), ("t1", "d")]),
            true,
            ListOrder::Auto,
        );
        assert_eq!(
            mark.to_snapshot(),
            json!({"since": "t2", "ids_at_since": ["b", "c"]})
        );
        let again = HighWater::from_snapshot(&mark.to_snapshot()).after(
            &walk(&[("t2", "b"), ("t2", "e")]),
            true,
            ListOrder::Auto,
        );
        assert_eq!(
            again.to_snapshot(),
            json!({"since": "t2", "ids_at_since": ["b", "c", "e"]})
        );
        assert_eq!(again.after(&Walk::default(), true, ListOrder::Auto), again);
    }

    #[test]
    fn a_stopped_oldest_first_walk_moves_the_mark_to_the_greatest_value_seen() {
        let mark = HighWater::from_snapshot(&json!({"since": "t1", "ids_at_since": ["a"]}));
        let stopped = walk(&[("t1", "a"), ("t2", "b"), ("t3", "c")]);
        for order in [ListOrder::Auto, ListOrder::Ascending] {
            assert_eq!(
                mark.after(&stopped, false, order).to_snapshot(),
                json!({"since": "t3", "ids_at_since": ["c"]})
            );
        }
    }

    #[test]
    fn a_stopped_newest_first_walk_records_a_band_and_keeps_the_mark() {
        let mark = HighWater::from_snapshot(&json!({"since": "t1", "ids_at_since": ["a"]}));
        let first = mark.after(
            &walk(&[("t9", "i"), ("t8", "h"), ("t7", "g"), ("t7", "g2")]),
            false,
            ListOrder::Auto,
        );
        let band = json!({"since": "t1", "ids_at_since": ["a"], "covered": [
            {"from": "t7", "ids_at_from": ["g", "g2"], "to": "t9", "ids_at_to": ["i"]}]});
        assert_eq!(first.to_snapshot(), band);
        assert_eq!(HighWater::from_snapshot(&band), first);
        assert_eq!(first.query_value().as_deref(), Some("t1"));
        assert!(!first.admits(&json!("t8"), "h"));
        assert!(!first.admits(&json!("t8"), "anything"));
        assert!(!first.admits(&json!("t7"), "g2"));
        assert!(
            first.admits(&json!("t7"), "g3"),
            "a tie at the band's foot not reached"
        );
        assert!(
            first.admits(&json!("t5"), "e"),
            "below the band, above the mark"
        );
        assert!(first.admits(&json!("t9"), "late"));
        assert!(first.admits(&json!("t99"), "new"));
        assert!(!first.admits(&json!("t1"), "a"));

        // The next poll passes the band and stops further down: the bands join.
        let second = first.after(
            &walk(&[
                ("t99", "j"),
                ("t9", "i"),
                ("t7", "g"),
                ("t5", "e"),
                ("t4", "d"),
            ]),
            false,
            ListOrder::Auto,
        );
        assert_eq!(
            second.to_snapshot(),
            json!({"since": "t1", "ids_at_since": ["a"], "covered": [
                {"from": "t4", "ids_at_from": ["d"], "to": "t99", "ids_at_to": ["j"]}]})
        );
        // The walk that reaches the end absorbs the band into the mark.
        let done = second.after(
            &walk(&[("t99", "j"), ("t4", "d"), ("t2", "b"), ("t1", "a")]),
            true,
            ListOrder::Auto,
        );
        assert_eq!(
            done.to_snapshot(),
            json!({"since": "t99", "ids_at_since": ["j"]})
        );
    }

    #[test]
    fn a_stopped_walk_over_one_value_keeps_every_id_and_claims_nothing_beyond() {
        let mark = HighWater::from_snapshot(&json!({"since": "t0", "ids_at_since": ["z"]}));
        let stopped = mark.after(&walk(&[("t1", "a"), ("t1", "b")]), false, ListOrder::Auto);
        assert!(!stopped.admits(&json!("t1"), "a"));
        assert!(stopped.admits(&json!("t1"), "c"));
        assert!(
            stopped.admits(&json!("t0.5"), "y"),
            "older items may still follow"
        );
        let more = stopped.after(
            &walk(&[("t1", "a"), ("t1", "b"), ("t1", "c")]),
            false,
            ListOrder::Auto,
        );
        assert_eq!(
            more.to_snapshot(),
            json!({"since": "t0", "ids_at_since": ["z"], "covered": [
                {"from": "t1", "ids_at_from": ["a", "b", "c"], "to": "t1", "ids_at_to": ["a", "b", "c"]}]})
        );
    }

    #[test]
    fn the_configured_order_overrides_what_a_walk_seems_to_say() {
        let flat = walk(&[("t1", "a"), ("t1", "b")]);
        assert_eq!(
            HighWater::default()
                .after(&flat, false, ListOrder::Ascending)
                .to_snapshot(),
            json!({"since": "t1", "ids_at_since": ["a", "b"]})
        );
        let rising = walk(&[("t1", "a"), ("t2", "b")]);
        assert_eq!(
            HighWater::default()
                .after(&rising, false, ListOrder::Descending)
                .to_snapshot(),
            json!({"covered": [{"from": "t1", "ids_at_from": ["a"], "to": "t2", "ids_at_to": ["b"]}]})
        );
        assert_eq!(
            walk(&[("1", "a"), ("3", "b"), ("2", "c")]).seen_order(),
            Some(ListOrder::Auto)
        );
        assert_eq!(ListOrder::parse(None), Some(ListOrder::Auto));
        assert_eq!(
            ListOrder::parse(Some("descending")),
            Some(ListOrder::Descending)
        );
        assert_eq!(ListOrder::parse(Some("newest")), None);
    }

    #[test]
    fn numbers_compare_numerically_and_text_as_text() {
        assert_eq!(compare(&json!(9), &json!(10)), Ordering::Less);
        assert_eq!(compare(&json!("9"), &json!("10")), Ordering::Greater);
        let mark = HighWater::from_snapshot(&json!({"since": 100}));
        assert!(mark.admits(&json!(101), "x"));
        assert!(!mark.admits(&json!(99.5), "x"));
        assert_eq!(mark.query_value().as_deref(), Some("100"));
    }
}
