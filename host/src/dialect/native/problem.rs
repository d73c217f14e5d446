//! The native API's errors: RFC 9457 problem details, `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::usecase::UseError;

/// The media type of a problem.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// What went wrong, as RFC 9457 says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:waybill:problem:duplicate`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind in a few words; the same for every occurrence.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence in plain words: what was wrong and what to do.
    pub detail: String,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of kind `slug` (the last part of its type URI).
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:waybill:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 422: the request is well-formed JSON but says something we cannot do.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "The request is invalid",
            detail,
        )
    }

    /// 400: the body is not the JSON the operation reads.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "The request cannot be read",
            detail,
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 401, with the `WWW-Authenticate` challenge added on rendering.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication is required",
            detail,
        )
    }

    /// The status as axum's type.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<UseError> for Problem {
    fn from(e: UseError) -> Self {
        let detail = e.to_string();
        match e {
            UseError::UnknownKey => Self::unauthorized(
                "no tenant has this key; send `Authorization: Bearer <key>` with the key \
                 `waybill tenant add` printed",
            ),
            UseError::Inactive(_) => Self::new(
                StatusCode::FORBIDDEN,
                "key-inactive",
                "The key is not active",
                detail,
            ),
            UseError::Busy(_) => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    detail,
                )
            },
            UseError::BadInput(_)
            | UseError::NoCompany
            | UseError::UnsupportedCompany { .. }
            | UseError::Unrecognised(_) => Self::invalid(detail),
            UseError::Duplicate { .. } => Self::new(
                StatusCode::CONFLICT,
                "duplicate",
                "The waybill is already tracked",
                detail,
            ),
            UseError::MonthlyLimit { .. } => Self::new(
                StatusCode::CONFLICT,
                "monthly-limit",
                "The waybill's monthly subscription limit is reached",
                detail,
            ),
            UseError::Timeout(_) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "carrier-timeout",
                "The carrier did not answer in time",
                detail,
            ),
            UseError::Track(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "carrier-error",
                "The carrier answered with an error",
                detail,
            ),
            UseError::Store(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store",
                "The daemon's store failed",
                detail,
            ),
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        UseError::from(e).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status_code(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if self.status == 401 {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"waybill\""),
            );
        }
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(after));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_errors_map_to_their_status_and_type() {
        let p = Problem::from(UseError::Duplicate {
            company: "shunfeng".into(),
            number: "SF1".into(),
        });
        assert_eq!(
            (p.status, p.kind.as_str()),
            (409, "urn:waybill:problem:duplicate")
        );
        assert!(p.detail.contains("SF1"), "{}", p.detail);
        let busy = Problem::from(UseError::Busy("slow down".into())).into_response();
        assert_eq!(busy.status(), 429);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        assert_eq!(busy.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let who = Problem::from(UseError::UnknownKey).into_response();
        assert_eq!(who.status(), 401);
        assert!(who.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(Problem::from(UseError::NoCompany).status, 422);
    }
}
