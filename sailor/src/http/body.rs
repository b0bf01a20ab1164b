//! Reading a response body under a byte cap, so that an answer too large to handle costs at
//! most the cap in memory instead of the whole answer.
//!
//! Every body the runtime reads from an outside server (the token endpoint, the credential
//! check, object storage) goes through [`read_capped`], and so should the API answers a
//! module reads, under the step's cap ([`BodyCap::from_config`]). A
//! `Content-Length` above the cap is refused before a byte is read; a body without one
//! (chunked) is read chunk by chunk and refused as soon as it passes the cap. Dropping the
//! response then closes the connection, so the server stops sending.

use reqwest::Response;
use serde_json::Value;

use super::without_url_secrets;
use crate::config::StepConfig;

/// The step config field that sets the cap on an API response body a module reads (each
/// answer, e.g. each page of a paginated list).
pub const MAX_RESPONSE_BYTES_FIELD: &str = "max_response_bytes";

/// The API body cap unless `max_response_bytes` says otherwise: the platform's default limit
/// on an outgoing message (`ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT`, 10 MiB), since an answer
/// larger than that could not be emitted anyway.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

/// The most a body's buffer is given up front; a larger body grows it as it arrives.
const PREALLOCATE_AT_MOST: u64 = 1024 * 1024;

/// The most bytes of a body that may be read, and what set that figure, so that the error a
/// user sees tells them where to change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyCap {
    bytes: u64,
    set_by: &'static str,
}

impl BodyCap {
    /// A cap of `bytes`; `set_by` completes "the cap ..." in the error, e.g. "for token
    /// endpoint responses (fixed)".
    pub const fn new(bytes: u64, set_by: &'static str) -> Self {
        Self { bytes, set_by }
    }

    /// The API body cap of a step: `max_response_bytes` (a whole number of bytes, at least 1,
    /// as a number or as text, since the UI's text fields send text), else
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]. The error names the field.
    pub fn from_config(config: &StepConfig) -> Result<Self, String> {
        const SET_BY: &str = "set by the step config field `max_response_bytes`";
        let wrong = |got: &Value| {
            format!(
                "`{MAX_RESPONSE_BYTES_FIELD}` must be a whole number of bytes, at least 1; got {got}"
            )
        };
        let bytes = match config.fields.get(MAX_RESPONSE_BYTES_FIELD) {
            None | Some(Value::Null) => DEFAULT_MAX_RESPONSE_BYTES,
            Some(Value::String(text)) if text.trim().is_empty() => DEFAULT_MAX_RESPONSE_BYTES,
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map_err(|_| wrong(&Value::from(text.as_str())))?,
            Some(value) => value.as_u64().ok_or_else(|| wrong(value))?,
        };
        if bytes == 0 {
            return Err(wrong(&Value::from(0)));
        }
        Ok(Self::new(bytes, SET_BY))
    }

    /// The most bytes a body may have.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl std::fmt::Display for BodyCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (unit, size) = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
            .into_iter()
            .find(|(_, size)| self.bytes >= *size && self.bytes.is_multiple_of(*size))
            .unwrap_or(("bytes", 1));
        if size == 1 {
            write!(f, "{} bytes", self.bytes)
        } else {
            write!(f, "{} bytes ({} {unit})", self.bytes, self.bytes / size)
        }
    }
}

/// A body larger than its cap: refused, and read no further than the cap.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the body is larger than {cap}, the cap {}{}", cap.set_by,
    declared.map(|n| format!(" (its Content-Length is {n})")).unwrap_or_default())]
pub struct BodyTooLarge {
    /// The cap it passed.
    pub cap: BodyCap,
    /// The `Content-Length` the server declared, when that is how it was refused.
    pub declared: Option<u64>,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error(transparent)]
    TooLarge(#[from] BodyTooLarge),
    /// The connection failed while the body was being read.
    #[error("reading the response body failed")]
    Read(#[source] reqwest::Error),
}

/// The whole body of `response`, if it has at most `cap` bytes. A larger one is refused after
/// reading at most `cap` bytes (none when `Content-Length` already says so), and the
/// connection is closed.
pub async fn read_capped(mut response: Response, cap: BodyCap) -> Result<Vec<u8>, BodyError> {
    // `content_length` is the body's exact size as the transport sees it: the header's value,
    // and 0 for HEAD answers and 204/304, whatever their header says.
    let declared = response.content_length();
    if let Some(declared) = declared.filter(|&n| n > cap.bytes) {
        return Err(BodyTooLarge {
            cap,
            declared: Some(declared),
        }
        .into());
    }
    // Room for the declared size, within reason: a cap set very high must not let a server's
    // word alone allocate gigabytes.
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(PREALLOCATE_AT_MOST) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| BodyError::Read(without_url_secrets(error)))?
    {
        if (body.len() + chunk.len()) as u64 > cap.bytes {
            return Err(BodyTooLarge {
                cap,
                declared: None,
            }
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CAP: BodyCap = BodyCap::new(8, "for this test");

    fn chunked(chunks: &[&'static [u8]]) -> Response {
        let chunks: Vec<Result<&'static [u8], std::io::Error>> =
            chunks.iter().map(|c| Ok(*c)).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        Response::from(axum::http::Response::new(body))
    }

    fn with_length(body: &'static [u8], declared: u64) -> Response {
        Response::from(
            axum::http::Response::builder()
                .header("content-length", declared)
                .body(body)
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_body_of_exactly_the_cap_is_read_and_one_byte_more_is_refused() {
        let body = read_capped(chunked(&[b"1234", b"5678"]), CAP)
            .await
            .unwrap();
        assert_eq!(body, b"12345678");
        let error = read_capped(chunked(&[b"1234", b"5678", b"9"]), CAP)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                BodyError::TooLarge(BodyTooLarge { declared: None, .. })
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "the body is larger than 8 bytes, the cap for this test"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let error = read_capped(with_length(b"123456789", 9), CAP)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the body is larger than 8 bytes, the cap for this test (its Content-Length is 9)"
        );
        assert_eq!(
            read_capped(with_length(b"12345678", 8), CAP).await.unwrap(),
            b"12345678"
        );
        assert!(read_capped(chunked(&[]), CAP).await.unwrap().is_empty());
    }

    #[test]
    fn the_cap_comes_from_max_response_bytes_or_defaults_to_10_mib() {
        let cap = |fields| BodyCap::from_config(&StepConfig::from_value(fields).unwrap());
        assert_eq!(cap(json!({})).unwrap().bytes(), DEFAULT_MAX_RESPONSE_BYTES);
        assert_eq!(
            cap(json!({"max_response_bytes": ""})).unwrap().bytes(),
            DEFAULT_MAX_RESPONSE_BYTES
        );
        assert_eq!(
            cap(json!({"max_response_bytes": 1024})).unwrap().bytes(),
            1024
        );
        assert_eq!(
            cap(json!({"max_response_bytes": " 2048 "}))
                .unwrap()
                .bytes(),
            2048
        );
        for wrong in [json!(0), json!("0"), json!(-1), json!("10MB"), json!(1.5)] {
            let error = cap(json!({"max_response_bytes": wrong})).unwrap_err();
            assert!(error.starts_with("`max_response_bytes` must be"), "{error}");
        }
    }

    #[test]
    fn caps_print_in_bytes_and_in_the_largest_whole_unit() {
        let cap = |bytes| BodyCap::new(bytes, "x").to_string();
        assert_eq!(cap(10 * 1024 * 1024), "10485760 bytes (10 MiB)");
        assert_eq!(cap(64 * 1024), "65536 bytes (64 KiB)");
        assert_eq!(cap(1 << 30), "1073741824 bytes (1 GiB)");
        assert_eq!(cap(1500), "1500 bytes");
    }
}
