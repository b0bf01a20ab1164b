//! A step's `api_base_url` and the paths its function calls under it.

use std::sync::Mutex;

use url::Url;

use super::client::strip_url_secrets;

/// A step's `api_base_url`, parsed once, with the last path resolved under it.
///
/// A function usually calls the same path message after message, and parsing a URL (its host
/// above all) cost more than the rest of building the request: the last resolution is kept
/// and handed out again for the same path. Every message's client of a step shares one.
/// `Debug` shows the base without its credentials, query and fragment, and not the last
/// path, whose query may carry a key.
pub struct BaseUrl {
    url: Url,
    last: Mutex<Option<(String, Url)>>,
}

impl BaseUrl {
    /// `url` as the base of the paths to come.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            last: Mutex::new(None),
        }
    }

    /// The base URL itself.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `path` under the base URL (`{base}/{path}` with one slash between), or `None` when that
    /// is not a URL.
    pub fn resolve(&self, path: &str) -> Option<Url> {
        if let Some((known, url)) = self.lock_last().as_ref()
            && known == path
        {
            return Some(url.clone());
        }
        let joined = format!(
            "{}/{}",
            self.url.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        let url = Url::parse(&joined).ok()?;
        *self.lock_last() = Some((path.to_owned(), url.clone()));
        Some(url)
    }

    fn lock_last(&self) -> std::sync::MutexGuard<'_, Option<(String, Url)>> {
        self.last
            .lock()
            .expect("no code panics while holding this lock")
    }
}

impl std::fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.url.clone();
        strip_url_secrets(&mut shown);
        f.debug_struct("BaseUrl")
            .field("url", &shown.as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BaseUrl {
        BaseUrl::new(Url::parse("https://api.example.test/v1/").unwrap())
    }

    #[test]
    fn paths_resolve_under_the_base_with_one_slash_between() {
        let base = base();
        for path in ["/items?q=1", "items?q=1"] {
            assert_eq!(
                base.resolve(path).unwrap().as_str(),
                "https://api.example.test/v1/items?q=1"
            );
        }
    }

    #[test]
    fn the_last_path_is_resolved_again_only_for_the_same_path() {
        let base = base();
        assert_eq!(
            base.resolve("a").unwrap().as_str(),
            "https://api.example.test/v1/a"
        );
        assert_eq!(
            base.resolve("a").unwrap().as_str(),
            "https://api.example.test/v1/a"
        );
        assert_eq!(
            base.resolve("b").unwrap().as_str(),
            "https://api.example.test/v1/b"
        );
        let kept = base.lock_last().as_ref().map(|(path, _)| path.clone());
        assert_eq!(kept.as_deref(), Some("b"));
        assert_eq!(
            base.resolve("a").unwrap().as_str(),
            "https://api.example.test/v1/a"
        );
    }

    #[test]
    fn debug_shows_neither_the_base_credentials_nor_the_last_path() {
        let base =
            BaseUrl::new(Url::parse("https://user:base-secret@api.example.test/v1").unwrap());
        base.resolve("items?api_key=path-secret").unwrap();
        let shown = format!("{base:?}");
        assert!(shown.contains("api.example.test/v1"), "{shown}");
        for secret in ["user", "base-secret", "path-secret", "items"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
