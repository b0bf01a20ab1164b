//! The OAuth2 token lifecycle: the token set, its refresh, and the per-account cache that
//! makes one refresh serve every caller.

pub mod cache;
pub mod coordination;
pub mod error;
pub mod refresh;
pub mod token;

pub use cache::{Lease, TokenCache};
pub use coordination::{Coordination, RefreshCoordinator, RefreshLease};
pub use error::RefreshError;
pub use refresh::{RetryPolicy, TokenEndpoint};
pub use token::TokenSet;
