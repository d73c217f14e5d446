//! Reading a form-encoded request, as both Chinese dialects send them.

use std::collections::HashMap;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Uri};

use super::Api;

/// The request's form fields: the URL query, then the urlencoded body (body fields win).
/// Refuses bodies over the API's limit and JSON or multipart bodies, which neither
/// kuaidi100 nor Kdniao accepts; the reason says which. `example` shows the expected
/// body in the refusal.
pub async fn fields(
    api: &Api,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    example: &str,
) -> Result<HashMap<String, String>, String> {
    let limit = api.config().max_body_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| format!("request body is larger than {limit} bytes or could not be read"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !bytes.is_empty()
        && (content_type.starts_with("application/json") || content_type.starts_with("multipart/"))
    {
        return Err(format!(
            "the body must be application/x-www-form-urlencoded ({example}), not {content_type}"
        ));
    }
    let mut fields: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    fields.extend(url::form_urlencoded::parse(&bytes).into_owned());
    Ok(fields)
}
