//! The sandbox's token endpoint: `POST /oauth/token` with `grant_type=refresh_token`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::state::{ProviderState, TokenRequestRecord};
use sailor::config::TokenAuthMethod;

type Shared = Arc<Mutex<ProviderState>>;

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/oauth/token", post(token))
}

async fn token(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let delay = state.lock().expect("sandbox lock").options.token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut state = state.lock().expect("sandbox lock");
    let (auth_method, client_authenticated) = authenticate(&state, &headers, &form);
    let mut record = TokenRequestRecord {
        grant_type: form.get("grant_type").cloned().unwrap_or_default(),
        auth_method,
        client_authenticated,
        scope: form.get("scope").cloned(),
        status: 200,
    };
    let form_encoded = state.options.form_encoded_responses;
    let outcome: Result<Map<String, Value>, (StatusCode, &str, &str)> =
        if let Some(status) = state.token_failure() {
            Err((
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "temporarily_unavailable",
                "scripted failure",
            ))
        } else if !client_authenticated {
            Err((
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ))
        } else if record.grant_type != "refresh_token" {
            Err((
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only refresh_token is supported",
            ))
        } else {
            match form.get("refresh_token") {
                None => Err((
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                )),
                Some(refresh_token) => state
                    .refresh(refresh_token)
                    .map_err(|(code, description)| (StatusCode::BAD_REQUEST, code, description)),
            }
        };
    let response = match outcome {
        Ok(fields) => respond(StatusCode::OK, fields, form_encoded),
        Err((status, code, description)) => {
            record.status = status.as_u16();
            let mut fields = Map::new();
            fields.insert("error".into(), json!(code));
            fields.insert("error_description".into(), json!(description));
            let mut response = respond(status, fields, false);
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, "0".parse().expect("valid header"));
            }
            response
        }
    };
    state.token_log.push(record);
    response
}

fn respond(status: StatusCode, fields: Map<String, Value>, form_encoded: bool) -> Response {
    if form_encoded {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            }))
            .finish();
        (
            status,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            body,
        )
            .into_response()
    } else {
        (status, axum::Json(Value::Object(fields))).into_response()
    }
}

/// Which client authentication the request used, and whether it was right.
fn authenticate(
    state: &ProviderState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<TokenAuthMethod>, bool) {
    let expected = (&state.options.client_id, &state.options.client_secret);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (method, id, secret) = match (basic, form.get("client_id")) {
        (Some((id, secret)), None) => (TokenAuthMethod::ClientSecretBasic, id, secret),
        (None, Some(id)) => (
            TokenAuthMethod::ClientSecretPost,
            id.clone(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
        _ => return (None, false),
    };
    let allowed = state
        .options
        .required_auth_method
        .is_none_or(|required| required == method);
    (Some(method), allowed && (&id, &secret) == expected)
}
