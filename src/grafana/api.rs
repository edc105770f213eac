//! Typed calls of the Grafana routes keyshift uses.

use reqwest::Method;

use super::client::{Client, Created, Request};
use super::error::{ErrorKind, GrafanaError};
use super::version::{Capabilities, Version};
use super::wire::*;
use crate::role::Role;
use crate::secret::Secret;

/// Page size for listings; Grafana enforces no maximum.
const PAGE_SIZE: usize = 500;

/// `GET /api/auth/keys` returns at most this many keys, without paging.
pub const KEY_LIST_CAP: usize = 100;

/// `GET /api/serviceaccounts/:id/tokens` returns at most this many (9.3 on).
pub const TOKEN_LIST_CAP: usize = 300;

/// A token just created: its secret is shown only now.
pub struct NewToken {
    /// Token id.
    pub id: i64,
    /// Token name.
    pub name: String,
    /// The secret.
    pub secret: Secret,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

/// The outcome of creating a token.
#[derive(Debug)]
pub enum TokenCreated {
    /// Created, with its secret.
    New(NewToken),
    /// The outcome was unknown and the token exists, but its secret is lost.
    SecretLost(Token),
}

/// A list that Grafana may have cut short.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// The items returned.
    pub items: Vec<T>,
    /// True when the list hit Grafana's cap and may be incomplete.
    pub maybe_truncated: bool,
}

impl Client {
    /// Reads `/api/health`; it needs no permission.
    ///
    /// # Errors
    /// When Grafana does not answer or answers with an error.
    pub async fn health(&self) -> Result<Health, GrafanaError> {
        self.call(&get("/api/health", "/api/health".into(), 0))
            .await
    }

    /// Finds what the server can do, from its version or by probing.
    ///
    /// # Errors
    /// For an unsupported version, or when Grafana cannot be reached.
    pub async fn capabilities(&self, org: i64) -> Result<Capabilities, GrafanaError> {
        let health = self.health().await?;
        let Some(text) = health.version.filter(|v| !v.is_empty()) else {
            return self.probe_capabilities(org).await;
        };
        let version: Version = text.parse().map_err(|_| GrafanaError::Unexpected {
            org: 0,
            what: format!("grafana reports version {text:?}, which keyshift cannot read"),
        })?;
        let caps = Capabilities::of(version);
        if !caps.is_supported() {
            return Err(GrafanaError::Unsupported { version: text });
        }
        Ok(caps)
    }

    // A hidden version: a 404 on the key list means 12.1 or newer.
    async fn probe_capabilities(&self, org: i64) -> Result<Capabilities, GrafanaError> {
        match self.api_keys(org).await {
            Ok(_) => Ok(Capabilities::probed(true)),
            Err(e) if e.kind() == Some(&ErrorKind::NotFound) => Ok(Capabilities::probed(false)),
            Err(e) => Err(e),
        }
    }

    /// Lists every org (server admin only), following zero-based pages.
    ///
    /// # Errors
    /// When a page cannot be read.
    pub async fn orgs(&self) -> Result<Vec<Org>, GrafanaError> {
        let mut all = Vec::new();
        for page in 0.. {
            let request = get("/api/orgs", "/api/orgs".into(), 0)
                .query("perpage", PAGE_SIZE)
                .query("page", page);
            let batch: Vec<Org> = self.call(&request).await?;
            let done = batch.len() < PAGE_SIZE;
            all.extend(batch);
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// Reads the org in context (`GET /api/org`).
    ///
    /// # Errors
    /// When the call fails.
    pub async fn current_org(&self, org: i64) -> Result<Org, GrafanaError> {
        self.call(&get("/api/org", "/api/org".into(), org)).await
    }

    /// Lists legacy keys, expired ones included; capped at 100 by Grafana.
    ///
    /// # Errors
    /// When the call fails; a 404 means the key API is gone (12.1+).
    pub async fn api_keys(&self, org: i64) -> Result<Listing<ApiKey>, GrafanaError> {
        let request =
            get("/api/auth/keys", "/api/auth/keys".into(), org).query("includeExpired", true);
        let items: Vec<ApiKey> = self.call(&request).await?;
        let maybe_truncated = items.len() >= KEY_LIST_CAP;
        Ok(Listing {
            items,
            maybe_truncated,
        })
    }

    /// Deletes a legacy key; an already deleted key counts as deleted.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn delete_api_key(&self, org: i64, id: i64) -> Result<(), GrafanaError> {
        let request = Request::new(
            Method::DELETE,
            "/api/auth/keys/:id",
            format!("/api/auth/keys/{id}"),
            org,
        );
        ignore_not_found(self.call_raw(&request).await)
    }

    /// Lists every service account of the org whose name, login or email
    /// contains `query`, following one-based pages.
    ///
    /// # Errors
    /// When a page cannot be read.
    pub async fn search_service_accounts(
        &self,
        org: i64,
        query: &str,
    ) -> Result<Vec<ServiceAccount>, GrafanaError> {
        let mut all = Vec::new();
        for page in 1.. {
            let mut request = get(
                "/api/serviceaccounts/search",
                "/api/serviceaccounts/search".into(),
                org,
            )
            .query("perpage", PAGE_SIZE)
            .query("page", page);
            if !query.is_empty() {
                request = request.query("query", query);
            }
            let batch: ServiceAccountPage = self.call(&request).await?;
            let done = batch.service_accounts.len() < PAGE_SIZE;
            all.extend(batch.service_accounts);
            if done {
                if all.len() as i64 != batch.total_count {
                    tracing::warn!(
                        org,
                        listed = all.len(),
                        total = batch.total_count,
                        "service account search count differs from its total"
                    );
                }
                break;
            }
        }
        Ok(all)
    }

    /// Finds the service accounts named exactly `name`.
    ///
    /// # Errors
    /// When the search fails.
    pub async fn service_accounts_named(
        &self,
        org: i64,
        name: &str,
    ) -> Result<Vec<ServiceAccount>, GrafanaError> {
        let found = self.search_service_accounts(org, name).await?;
        Ok(found.into_iter().filter(|sa| sa.name == name).collect())
    }

    /// Reads one service account; `None` when it does not exist.
    ///
    /// # Errors
    /// When the call fails otherwise.
    pub async fn service_account(
        &self,
        org: i64,
        id: i64,
    ) -> Result<Option<ServiceAccountProfile>, GrafanaError> {
        let request = get(
            "/api/serviceaccounts/:id",
            format!("/api/serviceaccounts/{id}"),
            org,
        );
        match self.call(&request).await {
            Ok(profile) => Ok(Some(profile)),
            Err(e) if e.kind() == Some(&ErrorKind::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a service account, or finds the one an unanswered attempt made.
    ///
    /// # Errors
    /// When it was not created.
    pub async fn create_service_account(
        &self,
        org: i64,
        name: &str,
        role: Role,
    ) -> Result<ServiceAccount, GrafanaError> {
        let body = CreateServiceAccount {
            name,
            role,
            is_disabled: false,
        };
        let request = Request::new(
            Method::POST,
            "/api/serviceaccounts",
            "/api/serviceaccounts".into(),
            org,
        )
        .json(&body);
        let lookup = || async move {
            Ok(self
                .service_accounts_named(org, name)
                .await?
                .into_iter()
                .next())
        };
        match self.create(&request, lookup).await? {
            Created::Created(sa) | Created::Found(sa) => Ok(sa),
        }
    }

    /// Changes a service account's name, role or disabled flag.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn update_service_account(
        &self,
        org: i64,
        id: i64,
        update: &UpdateServiceAccount<'_>,
    ) -> Result<(), GrafanaError> {
        let request = Request::new(
            Method::PATCH,
            "/api/serviceaccounts/:id",
            format!("/api/serviceaccounts/{id}"),
            org,
        )
        .json(update);
        self.call_raw(&request).await.map(drop)
    }

    /// Deletes a service account and its tokens; a missing one counts as
    /// deleted (9.x answers 500 for it, so that case is checked with a GET).
    ///
    /// # Errors
    /// When the call fails and the account still exists.
    pub async fn delete_service_account(&self, org: i64, id: i64) -> Result<(), GrafanaError> {
        let request = Request::new(
            Method::DELETE,
            "/api/serviceaccounts/:id",
            format!("/api/serviceaccounts/{id}"),
            org,
        );
        match self.call_raw(&request).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == Some(&ErrorKind::NotFound) => Ok(()),
            Err(e) if e.may_have_applied() => match self.service_account(org, id).await? {
                None => Ok(()),
                Some(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Lists a service account's tokens; Grafana caps the list at 300.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn tokens(&self, org: i64, sa: i64) -> Result<Listing<Token>, GrafanaError> {
        let request = get(
            "/api/serviceaccounts/:id/tokens",
            format!("/api/serviceaccounts/{sa}/tokens"),
            org,
        );
        let items: Vec<Token> = self.call(&request).await?;
        let maybe_truncated = items.len() >= TOKEN_LIST_CAP;
        Ok(Listing {
            items,
            maybe_truncated,
        })
    }

    /// Creates a token; `seconds_to_live` 0 means it never expires.
    ///
    /// # Errors
    /// When it was not created.
    pub async fn create_token(
        &self,
        org: i64,
        sa: i64,
        name: &str,
        seconds_to_live: i64,
    ) -> Result<TokenCreated, GrafanaError> {
        let request = Request::new(
            Method::POST,
            "/api/serviceaccounts/:id/tokens",
            format!("/api/serviceaccounts/{sa}/tokens"),
            org,
        )
        .json(&CreateToken {
            name,
            seconds_to_live,
        });
        let lookup = || async move {
            let listing = self.tokens(org, sa).await?;
            Ok(listing.items.into_iter().find(|t| t.name == name))
        };
        Ok(
            match self
                .create::<NewTokenBody, _, _, _>(&request, lookup)
                .await?
            {
                Created::Created(body) => TokenCreated::New(NewToken {
                    id: body.id,
                    name: body.name,
                    secret: Secret::new(body.key),
                }),
                Created::Found(token) => TokenCreated::SecretLost(token),
            },
        )
    }

    /// Deletes a token; a missing one counts as deleted.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn delete_token(&self, org: i64, sa: i64, token: i64) -> Result<(), GrafanaError> {
        let request = Request::new(
            Method::DELETE,
            "/api/serviceaccounts/:id/tokens/:tokenId",
            format!("/api/serviceaccounts/{sa}/tokens/{token}"),
            org,
        );
        ignore_not_found(self.call_raw(&request).await)
    }

    /// Asks Grafana to move one key into a new `sa-autogen-*` account.
    ///
    /// The answer is unreliable (200 for a no-op), so callers check the
    /// result by reading state afterwards.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn migrate_key(&self, org: i64, key: i64) -> Result<(), GrafanaError> {
        let request = Request::new(
            Method::POST,
            "/api/serviceaccounts/migrate/:keyId",
            format!("/api/serviceaccounts/migrate/{key}"),
            org,
        )
        // Sent again, it finds the key attached and does nothing.
        .idempotent();
        self.call_raw(&request).await.map(drop)
    }
}

fn get(route: &'static str, path: String, org: i64) -> Request {
    Request::new(Method::GET, route, path, org)
}

fn ignore_not_found(result: Result<Vec<u8>, GrafanaError>) -> Result<(), GrafanaError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == Some(&ErrorKind::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}
