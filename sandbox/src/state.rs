//! The sandbox provider's state: grants, tokens, counters and scripted failures.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::SandboxOptions;
use sailor::clock::{Clock as _, SystemClock};
use sailor::config::TokenAuthMethod;

/// One request that reached the token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// The `grant_type` sent.
    pub grant_type: String,
    /// The client authentication used, if any was recognised.
    pub auth_method: Option<TokenAuthMethod>,
    /// Whether the client credentials were right.
    pub client_authenticated: bool,
    /// The `scope` sent.
    pub scope: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// A freshly issued grant: the token response fields and its access token.
pub(super) struct Grant {
    pub fields: Map<String, Value>,
    pub access_token: String,
}

struct RefreshTokenState {
    grant: u64,
    rotated_away: bool,
}

pub(super) struct ProviderState {
    pub options: SandboxOptions,
    access_tokens: HashMap<String, (u64, Instant)>,
    refresh_tokens: HashMap<String, RefreshTokenState>,
    revoked_grants: HashSet<u64>,
    next_id: u64,
    pub token_log: Vec<TokenRequestRecord>,
    pub token_failures: VecDeque<u16>,
    /// Every token request fails with this status until then.
    pub token_outage: Option<(Instant, u16)>,
    pub api_failures: VecDeque<u16>,
    pub api_calls: usize,
    pub api_rejections: usize,
    pub items: Vec<Value>,
    pub traffic: Vec<super::api::TrafficRecord>,
    pub expire_after_api_calls: Option<usize>,
}

impl ProviderState {
    pub fn new(options: SandboxOptions) -> Self {
        Self {
            options,
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            revoked_grants: HashSet::new(),
            next_id: 0,
            token_log: Vec::new(),
            token_failures: VecDeque::new(),
            token_outage: None,
            api_failures: VecDeque::new(),
            api_calls: 0,
            api_rejections: 0,
            items: Vec::new(),
            traffic: Vec::new(),
            expire_after_api_calls: None,
        }
    }

    fn next(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!(
            "{prefix}-{}-{}",
            self.next_id,
            uuid::Uuid::new_v4().simple()
        )
    }

    /// A new grant with its first access and refresh tokens.
    pub fn issue_grant(&mut self) -> Grant {
        self.next_id += 1;
        let grant = self.next_id;
        let refresh_token = self.next("rt");
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshTokenState {
                grant,
                rotated_away: false,
            },
        );
        self.token_response(grant, Some(refresh_token))
    }

    fn token_response(&mut self, grant: u64, refresh_token: Option<String>) -> Grant {
        let access_token = self.next("at");
        let ttl = self.options.access_token_ttl;
        self.access_tokens
            .insert(access_token.clone(), (grant, Instant::now() + ttl));
        let mut fields = Map::new();
        fields.insert("access_token".into(), json!(access_token));
        fields.insert("token_type".into(), json!("Bearer"));
        fields.insert("expires_in".into(), json!(ttl.as_secs()));
        if let Some(refresh_token) = refresh_token {
            fields.insert("refresh_token".into(), json!(refresh_token));
        }
        fields.insert("scope".into(), json!("items.read items.write"));
        fields.extend(self.options.extras.clone());
        fields.insert(
            "expires_at".into(),
            json!(SystemClock.now_unix() + ttl.as_secs()),
        );
        Grant {
            fields,
            access_token,
        }
    }

    /// Exchanges a refresh token; `Err` carries the RFC 6749 error code and description.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
    ) -> Result<Map<String, Value>, (&'static str, &'static str)> {
        let Some(state) = self.refresh_tokens.get(refresh_token) else {
            return Err(("invalid_grant", "unknown refresh token"));
        };
        let grant = state.grant;
        if self.revoked_grants.contains(&grant) {
            return Err(("invalid_grant", "the grant was revoked"));
        }
        if state.rotated_away {
            if self.options.revoke_grant_on_reuse {
                self.revoked_grants.insert(grant);
            }
            return Err((
                "invalid_grant",
                "refresh token reuse detected; the grant is revoked",
            ));
        }
        let new_refresh_token = if self.options.rotate_refresh_tokens {
            if let Some(state) = self.refresh_tokens.get_mut(refresh_token) {
                state.rotated_away = true;
            }
            let token = self.next("rt");
            self.refresh_tokens.insert(
                token.clone(),
                RefreshTokenState {
                    grant,
                    rotated_away: false,
                },
            );
            Some(token)
        } else {
            None
        };
        let mut response = self.token_response(grant, new_refresh_token).fields;
        response.remove("expires_at");
        Ok(response)
    }

    /// The status a scripted failure gives the next token request, if one applies.
    pub fn token_failure(&mut self) -> Option<u16> {
        self.token_failures.pop_front().or_else(|| {
            self.token_outage
                .filter(|(until, _)| Instant::now() < *until)
                .map(|(_, status)| status)
        })
    }

    /// Whether the API accepts this access token now.
    pub fn accepts(&self, access_token: &str) -> bool {
        self.access_tokens
            .get(access_token)
            .is_some_and(|(grant, until)| {
                Instant::now() < *until && !self.revoked_grants.contains(grant)
            })
    }

    pub fn expire_access_token(&mut self, access_token: &str) {
        if let Some((_, until)) = self.access_tokens.get_mut(access_token) {
            *until = Instant::now();
        }
    }

    pub fn expire_all_access_tokens(&mut self) {
        let now = Instant::now();
        self.access_tokens
            .values_mut()
            .for_each(|(_, until)| *until = now);
    }

    pub fn revoke_all(&mut self) {
        let grants: Vec<u64> = self.refresh_tokens.values().map(|s| s.grant).collect();
        self.revoked_grants.extend(grants);
    }
}
