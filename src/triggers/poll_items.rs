//! `pollItems`: emits the items of a list endpoint that are newer than the snapshot.
//!
//! One poll walks the pages ([`super::pagination`]) of `GET cfg.path`, sending the snapshot's
//! high-water mark as `cfg.since_param`, emits each item it has not emitted before
//! ([`super::high_water`] states the rule), and emits the new snapshot after the data. When
//! the poll fails half-way no snapshot is emitted, so the next poll starts from the old mark
//! again: items may then be emitted again, never lost.
//!
//! The number of pages per poll is bounded by `max_pages`, counting only pages that emitted
//! something (or repeated this poll's own items): pages of items the snapshot already covers
//! are passed on the way. A poll that hits the bound still emits its snapshot, which never
//! claims an item the poll did not reach: oldest first, the mark moves up to what was seen;
//! newest first (`order`, or told from the values seen), the stretch seen is recorded as a
//! band above the unchanged mark, and the next poll walks past it into the rest. A large
//! backlog thus drains over a few polls instead of one endless one, in either order, and
//! more items at one timestamp than the bound lets through still progress poll by poll.
//! Each page's body is read up to `max_response_bytes`; a larger page fails the poll (no
//! snapshot), so lower `page_size` or raise the cap.

use std::collections::HashSet;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::LINK;
use serde_json::Value;

use super::high_water::{HighWater, ListOrder, Walk, id_text};
use super::pagination::{NextPage, PageSeen, Pagination, check_pointer, number_field};
use sailor::config::StepConfig;
use sailor::excerpt::excerpt;
use sailor::http::{BodyCap, read_capped};
use sailor::message::Message;
use sailor::module::{Context, ProcessError, Trigger};

/// The item field holding the last-modified value unless `modified_field` says otherwise.
pub const DEFAULT_MODIFIED_FIELD: &str = "updated_at";
/// The item field identifying an item unless `id_field` says otherwise.
pub const DEFAULT_ID_FIELD: &str = "id";
/// The page-size parameter unless `page_size_param` says otherwise.
pub const DEFAULT_PAGE_SIZE_PARAM: &str = "per_page";
/// Pages fetched per poll at most, unless `max_pages` says otherwise.
pub const DEFAULT_MAX_PAGES: u64 = 50;

/// Every config field the trigger reads; a unit test checks that `component.json` declares
/// each of them, so the UI can set them.
pub const FIELDS: &[&str] = &[
    "path",
    "items_pointer",
    "modified_field",
    "id_field",
    "since_param",
    "pagination",
    "page_param",
    "first_page",
    "page_size_param",
    "page_size",
    "has_more_pointer",
    "cursor_pointer",
    "cursor_param",
    "max_pages",
    "order",
    "max_response_bytes",
];

/// The `pollItems` trigger.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollItems;

/// The trigger's fields, read and checked once per poll.
#[derive(Debug, Clone)]
struct PollSettings {
    path: String,
    items_pointer: String,
    modified_field: String,
    id_field: String,
    since_param: Option<String>,
    page_size: Option<(String, u64)>,
    pagination: Pagination,
    max_pages: u64,
    order: ListOrder,
}

impl PollSettings {
    fn from_config(config: &StepConfig) -> Result<Self, ProcessError> {
        let text = |name: &str| {
            config
                .str_field(name)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let path = text("path")
            .ok_or_else(|| ProcessError::Config("`path` is missing".into()))?
            .to_owned();
        let items_pointer = config.str_field("items_pointer").unwrap_or("").to_owned();
        check_pointer("items_pointer", &items_pointer)?;
        let page_size = match number_field(config, "page_size")? {
            Some(0) => {
                return Err(ProcessError::Config(
                    "`page_size` must be at least 1".into(),
                ));
            }
            Some(size) => Some((
                text("page_size_param")
                    .unwrap_or(DEFAULT_PAGE_SIZE_PARAM)
                    .to_owned(),
                size,
            )),
            None => None,
        };
        let max_pages = match number_field(config, "max_pages")? {
            Some(0) => {
                return Err(ProcessError::Config(
                    "`max_pages` must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => DEFAULT_MAX_PAGES,
        };
        Ok(Self {
            path,
            items_pointer,
            modified_field: text("modified_field")
                .unwrap_or(DEFAULT_MODIFIED_FIELD)
                .to_owned(),
            id_field: text("id_field").unwrap_or(DEFAULT_ID_FIELD).to_owned(),
            since_param: text("since_param").map(str::to_owned),
            page_size,
            pagination: Pagination::from_config(config)?,
            max_pages,
            order: match config.fields.get("order") {
                None | Some(Value::Null) => Some(ListOrder::Auto),
                Some(Value::String(order)) => ListOrder::parse(Some(order)),
                Some(_) => None,
            }
            .ok_or_else(|| {
                ProcessError::Config("`order` must be one of auto, ascending, descending".into())
            })?,
        })
    }

    /// The query every page built from `path` carries: the mark and the page size.
    fn base_query(&self, mark: &HighWater) -> Vec<(String, String)> {
        let mut query = Vec::new();
        if let (Some(param), Some(since)) = (&self.since_param, mark.query_value()) {
            query.push((param.clone(), since));
        }
        if let Some((param, size)) = &self.page_size {
            query.push((param.clone(), size.to_string()));
        }
        query
    }
}

/// Reads and checks every field of the trigger's config, as a poll does before its first
/// call: lets `component.json` be checked against the parser that runs in a flow.
pub fn check_config(config: &StepConfig) -> Result<(), ProcessError> {
    PollSettings::from_config(config).map(drop)
}

/// A field by name, or by JSON pointer when it starts with `/`.
fn lookup<'a>(item: &'a Value, field: &str) -> Option<&'a Value> {
    if field.starts_with('/') {
        item.pointer(field)
    } else {
        item.get(field)
    }
}

#[async_trait]
impl Trigger for PollItems {
    async fn process(
        &self,
        _message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let settings = PollSettings::from_config(config)?;
        let cap = BodyCap::from_config(config).map_err(ProcessError::Config)?;
        let previous = HighWater::from_snapshot(snapshot);
        let http = ctx.http()?;
        let base_query = settings.base_query(&previous);
        let first_url = http.url(&settings.path)?;

        let mut next = settings.pagination.first();
        let mut seen_now: HashSet<String> = HashSet::new();
        let mut walk = Walk::default();
        let (mut pages, mut counted, mut emitted, mut skipped) = (0u64, 0u64, 0usize, 0usize);
        let mut reached_the_mark = false;
        loop {
            let (builder, current) = match &next {
                NextPage::Done => break,
                NextPage::Path => (
                    http.request(Method::GET, &settings.path)?
                        .query(&base_query),
                    None,
                ),
                NextPage::Param(param, value) => (
                    http.request(Method::GET, &settings.path)?
                        .query(&base_query)
                        .query(&[(param, value)]),
                    Some(value.clone()),
                ),
                NextPage::Url(url) => {
                    if url.origin() != first_url.origin() {
                        return Err(ProcessError::Api {
                            status: 200,
                            excerpt: format!(
                                "the next-page link leads to another origin ({}); the access token is not sent there",
                                url.origin().ascii_serialization()
                            ),
                        });
                    }
                    (http.request(Method::GET, url.as_str())?, None)
                }
            };
            pages += 1;

            let response = http.send(builder).await?;
            let status = response.status().as_u16();
            let url = response.url().clone();
            let links: Vec<String> = response
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            let bytes = read_capped(response, cap)
                .await
                .map_err(|error| ProcessError::reading_body(status, error))?;
            if !(200..300).contains(&status) {
                return Err(ProcessError::Api {
                    status,
                    excerpt: excerpt(&bytes, ctx.redactor()),
                });
            }
            let body: Value = serde_json::from_slice(&bytes).map_err(|e| ProcessError::Api {
                status,
                excerpt: format!(
                    "the body is not JSON ({e}): {}",
                    excerpt(&bytes, ctx.redactor())
                ),
            })?;
            let items = body
                .pointer(&settings.items_pointer)
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ProcessError::Config(format!(
                        "`items_pointer` `{}` does not point at a list in the response of {}",
                        settings.items_pointer,
                        url.path()
                    ))
                })?;

            // Check the whole page before emitting any of it.
            let mut page = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let modified = lookup(item, &settings.modified_field)
                    .filter(|v| v.is_string() || v.is_number())
                    .ok_or_else(|| {
                        ProcessError::Config(format!(
                            "item {index} of page {pages} has no `{}` (`modified_field`) string or number",
                            settings.modified_field
                        ))
                    })?;
                let id = lookup(item, &settings.id_field)
                    .and_then(id_text)
                    .unwrap_or_else(|| item.to_string());
                page.push((item, modified, id));
            }
            let (mut emitted_here, mut repeated_here) = (0usize, 0usize);
            for (item, modified, id) in page {
                walk.see(modified, &id);
                reached_the_mark |= previous.is_below_since(modified);
                if !seen_now.insert(id.clone()) {
                    repeated_here += 1;
                    skipped += 1;
                    continue;
                }
                if !previous.admits(modified, &id) {
                    skipped += 1;
                    continue;
                }
                ctx.emitter().data(Message::with_body(item.clone())).await?;
                emitted_here += 1;
            }
            emitted += emitted_here;
            // A page of items the snapshot already covers is free: the walk passes them on
            // its way to what it has not emitted yet. A page repeating this poll's own items
            // is not (an API that ignores the page parameter).
            if emitted_here > 0 || repeated_here == items.len() {
                counted += 1;
            }

            next = settings.pagination.next(
                &PageSeen {
                    url: &url,
                    links: links.iter().map(String::as_str).collect(),
                    body: &body,
                    item_count: items.len(),
                },
                current.as_deref(),
            );
            let newest_first = match settings.order {
                ListOrder::Descending => true,
                ListOrder::Ascending => false,
                ListOrder::Auto => walk.seen_order() == Some(ListOrder::Descending),
            };
            if next != NextPage::Done && newest_first && reached_the_mark {
                // Everything further down is older than the mark.
                next = NextPage::Done;
            }
            if next != NextPage::Done && counted >= settings.max_pages {
                tracing::warn!(
                    message =
                        "Stopped at the page bound; the next poll continues from the new snapshot.",
                    max_pages = settings.max_pages
                );
                break;
            }
        }
        let finished = next == NextPage::Done;
        if settings.order == ListOrder::Auto && walk.seen_order() == Some(ListOrder::Auto) {
            tracing::warn!(
                message = "The list is not sorted by the modified field; a poll stopped at the page bound may miss items.",
                modified_field = %settings.modified_field
            );
        }
        tracing::info!(
            message = "Poll finished.",
            pages,
            counted,
            finished,
            emitted,
            skipped
        );
        let mark = previous.after(&walk, finished, settings.order);
        ctx.emitter().snapshot(mark.to_snapshot()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(fields: Value) -> Result<PollSettings, ProcessError> {
        PollSettings::from_config(&StepConfig::from_value(fields).unwrap())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings(json!({"path": "/items"})).unwrap();
        assert_eq!(s.modified_field, DEFAULT_MODIFIED_FIELD);
        assert_eq!(s.id_field, DEFAULT_ID_FIELD);
        assert_eq!(s.max_pages, DEFAULT_MAX_PAGES);
        assert_eq!(s.pagination, Pagination::None);
        assert_eq!(s.since_param, None);
        assert_eq!(s.page_size, None);
    }

    #[test]
    fn the_base_query_carries_the_mark_and_the_page_size() {
        let s =
            settings(json!({"path": "/items", "since_param": "since", "page_size": "5"})).unwrap();
        let mark = HighWater::from_snapshot(&json!({"since": "t1", "ids_at_since": ["a"]}));
        assert_eq!(
            s.base_query(&mark),
            vec![
                ("since".to_owned(), "t1".to_owned()),
                ("per_page".to_owned(), "5".to_owned())
            ]
        );
        assert_eq!(s.base_query(&HighWater::default()).len(), 1);
    }

    #[test]
    fn bad_fields_are_named() {
        for (fields, field) in [
            (json!({}), "`path`"),
            (
                json!({"path": "/i", "items_pointer": "items"}),
                "`items_pointer`",
            ),
            (json!({"path": "/i", "page_size": 0}), "`page_size`"),
            (json!({"path": "/i", "page_size": "ten"}), "`page_size`"),
            (json!({"path": "/i", "max_pages": -1}), "`max_pages`"),
            (json!({"path": "/i", "pagination": "pages"}), "`pagination`"),
            (json!({"path": "/i", "order": "newest"}), "`order`"),
            (json!({"path": "/i", "order": 1}), "`order`"),
        ] {
            let error = settings(fields).unwrap_err();
            assert!(matches!(error, ProcessError::Config(_)), "{error}");
            assert!(error.to_string().contains(field), "{error}");
        }
    }

    #[test]
    fn component_json_declares_every_field_the_trigger_reads() {
        let descriptor: Value = serde_json::from_str(include_str!("../../component.json")).unwrap();
        let declared = &descriptor["triggers"]["pollItems"]["fields"];
        for field in FIELDS {
            assert!(
                declared.get(field).is_some(),
                "component.json lacks `{field}`"
            );
        }
        let declared: Vec<&String> = declared.as_object().unwrap().keys().collect();
        for field in declared {
            assert!(
                FIELDS.contains(&field.as_str()),
                "`{field}` is declared but not read"
            );
        }
    }

    #[test]
    fn fields_may_be_named_or_pointed_at() {
        let item = json!({"id": 1, "meta": {"modified": "t"}});
        assert_eq!(lookup(&item, "id"), Some(&json!(1)));
        assert_eq!(lookup(&item, "/meta/modified"), Some(&json!("t")));
    }
}
