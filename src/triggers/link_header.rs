//! RFC 8288 `Link` headers: finding the `rel="next"` target among several links.
//!
//! Real APIs send several links in one header or across several headers, with parameters in
//! any order, quoted or not, and titles holding commas and semicolons. A naive split on `,`
//! breaks on those, so this is a small tokenizer that respects `<...>` and quoted strings.

/// One link: its target as written (maybe relative) and its relation types, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The URI reference between `<` and `>`.
    pub target: String,
    /// The `rel` parameter split on whitespace, lower-cased (relation types are
    /// case-insensitive).
    pub rels: Vec<String>,
}

/// Every well-formed link of one header value; malformed ones are skipped, not fatal.
pub fn parse(header: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut chars = header.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next() {
            None => return links,
            Some('<') => {}
            Some(_) => {
                skip_to_next_link(&mut chars);
                continue;
            }
        }
        let target: String = chars.by_ref().take_while(|c| *c != '>').collect();
        let mut rels = Vec::new();
        // Parameters: `; name=value` or `; name="quoted, value"` or `; name`.
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            match chars.peek() {
                Some(';') => {
                    chars.next();
                }
                _ => break,
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c == ';' || c == ',' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'=') {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&'"') {
                    chars.next();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.extend(chars.next()),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                } else {
                    while let Some(&c) = chars.peek() {
                        if c == ';' || c == ',' {
                            break;
                        }
                        value.push(c);
                        chars.next();
                    }
                }
            }
            // RFC 8288 3.3: only the first `rel` counts.
            if name.trim().eq_ignore_ascii_case("rel") && rels.is_empty() {
                rels = value
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
        }
        links.push(Link {
            target: target.trim().to_owned(),
            rels,
        });
    }
}

fn skip_to_next_link(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let mut quoted = false;
    while let Some(&c) = chars.peek() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => return,
            _ => {}
        }
        chars.next();
    }
}

/// The target of the first `rel="next"` link across all `Link` header values.
pub fn next_target<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values
        .into_iter()
        .flat_map(parse)
        .find(|link| link.rels.iter().any(|rel| rel == "next"))
        .map(|link| link.target)
        .filter(|target| !target.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_among_several_links_in_any_order() {
        let header = r#"<https://api.example/items?page=1>; rel="first", <https://api.example/items?page=3>; rel="next", <https://api.example/items?page=9>; rel="last""#;
        assert_eq!(
            next_target([header]).as_deref(),
            Some("https://api.example/items?page=3")
        );
    }

    #[test]
    fn tolerates_unquoted_values_case_and_multiple_relations() {
        assert_eq!(
            next_target(["</items?page=2>;REL=Next"]).as_deref(),
            Some("/items?page=2")
        );
        assert_eq!(
            next_target([r#"</p2>; title="x"; rel="prefetch next""#]).as_deref(),
            Some("/p2")
        );
    }

    #[test]
    fn commas_and_semicolons_inside_quotes_do_not_split_links() {
        let header = r#"</a>; title="one, two; three"; rel="prev", </b>; rel="next""#;
        assert_eq!(next_target([header]).as_deref(), Some("/b"));
        let escaped = r#"</a>; title="say \"next\", ok"; rel=prev, </c>; rel=next"#;
        assert_eq!(next_target([escaped]).as_deref(), Some("/c"));
    }

    #[test]
    fn links_may_be_spread_over_several_header_values() {
        assert_eq!(
            next_target([r#"</a>; rel="prev""#, r#"</b>; rel="next""#]).as_deref(),
            Some("/b")
        );
    }

    #[test]
    fn only_the_first_rel_parameter_counts_and_garbage_is_skipped() {
        assert_eq!(next_target([r#"</a>; rel="prev"; rel="next""#]), None);
        assert_eq!(
            next_target([r#"garbage; rel="next", </ok>; rel="next""#]).as_deref(),
            Some("/ok")
        );
        assert_eq!(next_target([""]), None);
        assert_eq!(next_target(["<>; rel=next"]), None);
    }
}
