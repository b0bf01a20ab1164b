//! The `pollItems` snapshot: a high-water mark that never emits an item twice.
//!
//! # The rule
//!
//! The snapshot is `{"since": <the greatest modified value emitted so far>,
//! "ids_at_since": [<ids of the emitted items carrying exactly that value>]}`.
//!
//! The next poll sends `since` unchanged as the `since_param` query parameter and then, on
//! its own side, admits an item only when its modified value is **greater** than `since`, or
//! **equal** to it with an id not in `ids_at_since`. Items below `since` are dropped.
//!
//! This is correct whatever the API does with the parameter:
//! - an *inclusive* API (`>= since`, as GitHub's and most "modified since" filters) sends the
//!   boundary items again; they are recognised by id and skipped, and an item that appeared
//!   later with the very same timestamp is still emitted;
//! - an *exclusive* API (`> since`) never sends them again (it cannot send a late item with
//!   the same timestamp either; that is the API's limit, not ours);
//! - an API that ignores the parameter sends everything, and the local filter does the work.
//!
//! An item whose modified value changes is newer, and is emitted again: that is an update.
//! Values compare as numbers when both are numbers, else as text, which orders ISO 8601
//! timestamps correctly as long as the API writes them in one format and zone.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{Value, json};

/// The snapshot field holding the mark.
pub const SINCE: &str = "since";
/// The snapshot field holding the ids of the items at the mark.
pub const IDS_AT_SINCE: &str = "ids_at_since";

/// A high-water mark: the greatest modified value seen, and which items carried it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HighWater {
    since: Option<Value>,
    ids_at_since: BTreeSet<String>,
}

impl HighWater {
    /// Reads the mark from a snapshot; anything unrecognisable counts as "no mark yet".
    pub fn from_snapshot(snapshot: &Value) -> Self {
        let since = snapshot
            .get(SINCE)
            .filter(|v| v.is_string() || v.is_number())
            .cloned();
        let ids_at_since = snapshot
            .get(IDS_AT_SINCE)
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(id_text).collect())
            .unwrap_or_default();
        Self {
            since,
            ids_at_since,
        }
    }

    /// The snapshot to emit after the data.
    pub fn to_snapshot(&self) -> Value {
        match &self.since {
            None => json!({}),
            Some(since) => json!({ SINCE: since, IDS_AT_SINCE: self.ids_at_since }),
        }
    }

    /// The value to send as `since_param`, when there is a mark.
    pub fn query_value(&self) -> Option<String> {
        self.since.as_ref().and_then(id_text)
    }

    /// True when an item with this modified value and id has not been emitted before.
    pub fn admits(&self, modified: &Value, id: &str) -> bool {
        match &self.since {
            None => true,
            Some(since) => match compare(modified, since) {
                Ordering::Greater => true,
                Ordering::Equal => !self.ids_at_since.contains(id),
                Ordering::Less => false,
            },
        }
    }

    /// Records an emitted item, moving the mark up when it is newer.
    pub fn advance(&mut self, modified: &Value, id: &str) {
        let order = match &self.since {
            None => Ordering::Greater,
            Some(since) => compare(modified, since),
        };
        match order {
            Ordering::Greater => {
                self.since = Some(modified.clone());
                self.ids_at_since = BTreeSet::from([id.to_owned()]);
            }
            Ordering::Equal => {
                self.ids_at_since.insert(id.to_owned());
            }
            Ordering::Less => {}
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

    #[test]
    fn advancing_keeps_the_ids_of_the_greatest_value_only() {
        let mut mark = HighWater::default();
        mark.advance(&json!("t1"), "a");
        mark.advance(&json!("t2"), "b");
        mark.advance(&json!("t2"), "c");
        mark.advance(&json!("t1"), "d");
        assert_eq!(
            mark.to_snapshot(),
            json!({"since": "t2", "ids_at_since": ["b", "c"]})
        );
        let mut again = HighWater::from_snapshot(&mark.to_snapshot());
        again.advance(&json!("t2"), "e");
        assert_eq!(
            again.to_snapshot(),
            json!({"since": "t2", "ids_at_since": ["b", "c", "e"]})
        );
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
