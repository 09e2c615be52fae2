//! API, access: every operator route needs a bearer token (`Authorization: Bearer xz_…`), made
//! with `xiezhi tokens create --role R` and stored hashed. The middleware answers 401 for a
//! missing, unknown or revoked token and hands the handlers a [`Caller`]; each handler asks for
//! the role it needs ([`Caller::require`], 403 below it). Tokens never reach the logs.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::ops::tokens;
use crate::store::ops::Role;

/// Who is calling, from their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_name: String,
    pub role: Role,
}

impl Caller {
    /// How the caller appears in history and audit.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_name)
    }

    /// `Ok` when the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {needed} role; the token `{}` has {}",
                self.token_name, self.role
            )))
        }
    }

    /// Viewers see personal data masked.
    pub fn sees_personal_data(&self) -> bool {
        self.role.allows(Role::Operator)
    }

    /// The caller as a reader of failures, through `via` (`api` or `console`).
    pub fn reader(&self, via: &'static str) -> crate::ops::view::Reader {
        crate::ops::view::Reader {
            actor: self.actor(),
            sees_personal_data: self.sees_personal_data(),
            via,
        }
    }
}

/// The middleware: authenticates the bearer token and stores the [`Caller`] in the request.
pub async fn require_token(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let Some(presented) = presented else {
        return ApiError::Unauthorized(
            "this route needs a token: `Authorization: Bearer <token>` (xiezhi tokens create --role viewer)"
                .into(),
        )
        .into_response();
    };
    match tokens::authenticate(s.store.as_ref(), &presented).await {
        Ok(Some(row)) => {
            req.extensions_mut().insert(Caller {
                token_name: row.name,
                role: row.role,
            });
            next.run(req).await
        }
        Ok(None) => {
            tracing::warn!(path = %req.uri().path(), "Refused a request with an unknown or revoked token.");
            ApiError::Unauthorized("the token is unknown or revoked".into()).into_response()
        }
        Err(e) => ApiError::Store(e).into_response(),
    }
}
