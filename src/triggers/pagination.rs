//! How `pollItems` finds the next page: by page number, by `Link: rel="next"`, or by a
//! cursor in the body.
//!
//! Each mode reads only what it needs from the page just fetched ([`PageSeen`]) and answers
//! with the next request to make, or with "done". Loops are cut short: a cursor or link that
//! repeats ends the poll, and the caller bounds the number of pages anyway.

use serde_json::Value;
use url::Url;

use super::high_water::id_text;
use super::link_header;
use sailor::config::StepConfig;
use sailor::module::ProcessError;

/// The page-number parameter unless `page_param` says otherwise.
pub const DEFAULT_PAGE_PARAM: &str = "page";
/// The cursor parameter unless `cursor_param` says otherwise.
pub const DEFAULT_CURSOR_PARAM: &str = "cursor";
/// Where the next cursor is unless `cursor_pointer` says otherwise.
pub const DEFAULT_CURSOR_POINTER: &str = "/next_cursor";

/// The pagination mode and its parameters, from the step config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pagination {
    /// One request, no paging.
    None,
    /// `page_param=N` from `first_page` on, until an empty page or `has_more_pointer` says no.
    Page {
        /// Query parameter of the page number.
        param: String,
        /// The number of the first page (0 or 1, usually).
        first: u64,
        /// JSON pointer to a boolean saying whether more pages follow.
        has_more_pointer: Option<String>,
    },
    /// Follow the `Link` header's `rel="next"` target until there is none.
    Link,
    /// Send the cursor found at `pointer` as `param` until there is none.
    Cursor {
        /// JSON pointer to the next cursor in the body.
        pointer: String,
        /// Query parameter of the cursor.
        param: String,
        /// JSON pointer to a boolean saying whether more pages follow.
        has_more_pointer: Option<String>,
    },
}

/// What the poll learnt from the page it just fetched.
#[derive(Debug)]
pub struct PageSeen<'a> {
    /// The URL the page was fetched from (after redirects).
    pub url: &'a Url,
    /// Every `Link` header value.
    pub links: Vec<&'a str>,
    /// The parsed body.
    pub body: &'a Value,
    /// How many items the page held.
    pub item_count: usize,
}

/// The request that fetches the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextPage {
    /// No more pages.
    Done,
    /// The configured path and query alone: the first page of modes that add nothing to it.
    Path,
    /// The configured path and query, plus this parameter.
    Param(String, String),
    /// This URL exactly as the API gave it.
    Url(Url),
}

impl Pagination {
    /// Reads `pagination` and its parameters; a wrong value is an error naming the field.
    pub fn from_config(config: &StepConfig) -> Result<Self, ProcessError> {
        let text = |name: &str, default: &str| {
            config
                .str_field(name)
                .filter(|s| !s.trim().is_empty())
                .unwrap_or(default)
                .trim()
                .to_owned()
        };
        let has_more_pointer = config
            .str_field("has_more_pointer")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(pointer) = &has_more_pointer {
            check_pointer("has_more_pointer", pointer)?;
        }
        match config.fields.get("pagination") {
            None | Some(Value::Null) => Ok(Self::None),
            Some(Value::String(mode)) => match mode.as_str() {
                "" | "none" => Ok(Self::None),
                "page" => Ok(Self::Page {
                    param: text("page_param", DEFAULT_PAGE_PARAM),
                    first: number_field(config, "first_page")?.unwrap_or(1),
                    has_more_pointer,
                }),
                "link" => Ok(Self::Link),
                "cursor" => {
                    let pointer = text("cursor_pointer", DEFAULT_CURSOR_POINTER);
                    check_pointer("cursor_pointer", &pointer)?;
                    Ok(Self::Cursor {
                        pointer,
                        param: text("cursor_param", DEFAULT_CURSOR_PARAM),
                        has_more_pointer,
                    })
                }
                other => Err(ProcessError::Config(format!(
                    "`pagination` must be one of none, page, link, cursor; got `{other}`"
                ))),
            },
            Some(other) => Err(ProcessError::Config(format!(
                "`pagination` must be one of none, page, link, cursor; got {other}"
            ))),
        }
    }

    /// The request for the first page.
    pub fn first(&self) -> NextPage {
        match self {
            Self::Page { param, first, .. } => NextPage::Param(param.clone(), first.to_string()),
            _ => NextPage::Path,
        }
    }

    /// The next page after `seen`, which was fetched with `current` (the parameter of this
    /// mode it carried, if any).
    pub fn next(&self, seen: &PageSeen<'_>, current: Option<&str>) -> NextPage {
        match self {
            Self::None => NextPage::Done,
            Self::Page {
                param,
                first,
                has_more_pointer,
            } => {
                if seen.item_count == 0 || says_no_more(seen.body, has_more_pointer.as_deref()) {
                    return NextPage::Done;
                }
                let page = current
                    .and_then(|p| p.parse::<u64>().ok())
                    .unwrap_or(*first);
                match page.checked_add(1) {
                    Some(next) => NextPage::Param(param.clone(), next.to_string()),
                    None => {
                        tracing::warn!(message = "The page number cannot grow further; stopping.");
                        NextPage::Done
                    }
                }
            }
            Self::Link => {
                let Some(target) = link_header::next_target(seen.links.iter().copied()) else {
                    return NextPage::Done;
                };
                match seen.url.join(&target) {
                    Ok(next) if next != *seen.url => NextPage::Url(next),
                    Ok(_) => {
                        tracing::warn!(
                            message = "The next link points at the page itself; stopping."
                        );
                        NextPage::Done
                    }
                    Err(_) => {
                        tracing::warn!(message = "The next link is not a URL; stopping.");
                        NextPage::Done
                    }
                }
            }
            Self::Cursor {
                pointer,
                param,
                has_more_pointer,
            } => {
                if says_no_more(seen.body, has_more_pointer.as_deref()) {
                    return NextPage::Done;
                }
                match seen.body.pointer(pointer).and_then(id_text) {
                    Some(cursor) if cursor.is_empty() => NextPage::Done,
                    Some(cursor) if Some(cursor.as_str()) == current => {
                        tracing::warn!(
                            message = "The API returned the same cursor again; stopping."
                        );
                        NextPage::Done
                    }
                    Some(cursor) => NextPage::Param(param.clone(), cursor),
                    None => NextPage::Done,
                }
            }
        }
    }
}

/// True when the body holds `false` (or `"false"`) at the has-more pointer.
fn says_no_more(body: &Value, pointer: Option<&str>) -> bool {
    let Some(pointer) = pointer else {
        return false;
    };
    match body.pointer(pointer) {
        Some(Value::Bool(more)) => !more,
        Some(Value::String(more)) => more.eq_ignore_ascii_case("false"),
        Some(Value::Null) => true,
        _ => false,
    }
}

/// A JSON pointer is empty or starts with `/` (RFC 6901).
pub fn check_pointer(field: &str, pointer: &str) -> Result<(), ProcessError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ProcessError::Config(format!(
            "`{field}` must be a JSON pointer such as `/items`; got `{pointer}`"
        )))
    }
}

/// A positive whole number given as a number or as text (the UI's text fields send text).
pub fn number_field(config: &StepConfig, field: &str) -> Result<Option<u64>, ProcessError> {
    let wrong =
        |got: &Value| ProcessError::Config(format!("`{field}` must be a whole number; got {got}"));
    match config.fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| wrong(&Value::from(s.as_str()))),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| wrong(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(fields: Value) -> StepConfig {
        StepConfig::from_value(fields).unwrap()
    }

    fn seen<'a>(url: &'a Url, body: &'a Value, links: Vec<&'a str>, n: usize) -> PageSeen<'a> {
        PageSeen {
            url,
            links,
            body,
            item_count: n,
        }
    }

    #[test]
    fn page_mode_counts_up_until_an_empty_page_or_has_more_false() {
        let mode = Pagination::from_config(&config(
            json!({"pagination": "page", "page_param": "p", "first_page": "0", "has_more_pointer": "/more"}),
        ))
        .unwrap();
        assert_eq!(mode.first(), NextPage::Param("p".into(), "0".into()));
        assert_eq!(Pagination::Link.first(), NextPage::Path);
        let url = Url::parse("http://x/items").unwrap();
        let more = json!({"more": true});
        assert_eq!(
            mode.next(&seen(&url, &more, vec![], 3), Some("0")),
            NextPage::Param("p".into(), "1".into())
        );
        assert_eq!(
            mode.next(&seen(&url, &more, vec![], 0), Some("1")),
            NextPage::Done
        );
        let done = json!({"more": false});
        assert_eq!(
            mode.next(&seen(&url, &done, vec![], 3), Some("1")),
            NextPage::Done
        );
    }

    #[test]
    fn page_mode_stops_at_the_largest_page_number_instead_of_overflowing() {
        let mode = Pagination::from_config(&config(
            json!({"pagination": "page", "first_page": u64::MAX.to_string()}),
        ))
        .unwrap();
        let url = Url::parse("http://x/items").unwrap();
        let body = json!({});
        assert_eq!(
            mode.next(&seen(&url, &body, vec![], 3), None),
            NextPage::Done
        );
        assert_eq!(
            mode.next(&seen(&url, &body, vec![], 3), Some(&u64::MAX.to_string())),
            NextPage::Done
        );
    }

    #[test]
    fn link_mode_resolves_relative_targets_against_the_page_url() {
        let url = Url::parse("http://x/api/items?page=1").unwrap();
        let body = json!({});
        let next = Pagination::Link.next(
            &seen(&url, &body, vec![r#"</api/items?page=2>; rel="next""#], 1),
            None,
        );
        assert_eq!(
            next,
            NextPage::Url(Url::parse("http://x/api/items?page=2").unwrap())
        );
        let relative =
            Pagination::Link.next(&seen(&url, &body, vec!["<?page=3>; rel=next"], 1), None);
        assert_eq!(
            relative,
            NextPage::Url(Url::parse("http://x/api/items?page=3").unwrap())
        );
        let itself =
            Pagination::Link.next(&seen(&url, &body, vec!["<?page=1>; rel=next"], 1), None);
        assert_eq!(itself, NextPage::Done);
        assert_eq!(
            Pagination::Link.next(&seen(&url, &body, vec![], 1), None),
            NextPage::Done
        );
    }

    #[test]
    fn cursor_mode_stops_on_null_empty_or_repeated_cursors() {
        let mode = Pagination::from_config(&config(json!({"pagination": "cursor"}))).unwrap();
        let url = Url::parse("http://x/items").unwrap();
        let next = json!({"next_cursor": "abc"});
        assert_eq!(
            mode.next(&seen(&url, &next, vec![], 1), None),
            NextPage::Param("cursor".into(), "abc".into())
        );
        assert_eq!(
            mode.next(&seen(&url, &next, vec![], 1), Some("abc")),
            NextPage::Done
        );
        for body in [
            json!({"next_cursor": null}),
            json!({"next_cursor": ""}),
            json!({}),
        ] {
            assert_eq!(
                mode.next(&seen(&url, &body, vec![], 1), None),
                NextPage::Done
            );
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        for (fields, field) in [
            (json!({"pagination": "pages"}), "`pagination`"),
            (json!({"pagination": 3}), "`pagination`"),
            (
                json!({"pagination": "page", "first_page": "one"}),
                "`first_page`",
            ),
            (
                json!({"pagination": "cursor", "cursor_pointer": "next"}),
                "`cursor_pointer`",
            ),
            (json!({"has_more_pointer": "more"}), "`has_more_pointer`"),
        ] {
            let error = Pagination::from_config(&config(fields)).unwrap_err();
            assert!(matches!(error, ProcessError::Config(_)));
            assert!(error.to_string().contains(field), "{error}");
        }
    }
}
