//! Our extractors: axum's, with rejections turned into the one JSON error shape.
//!
//! clippy's `disallowed-types` bans the raw axum extractors elsewhere, so a handler cannot
//! accidentally answer a bad body with axum's plain-text rejection.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::json_error;

/// JSON request body or response.
pub(crate) struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    #[expect(
        clippy::disallowed_types,
        reason = "the one place that wraps axum's Json"
    )]
    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A list answer: a plain JSON array (as the reference product answers) with the number
/// of items matching the request in `X-Total-Count`, so a page of a longer list still
/// tells its total without wrapping the array.
pub(crate) struct List<T> {
    pub(crate) items: Vec<T>,
    pub(crate) total: usize,
}

impl<T> List<T> {
    /// The whole list: its total is its length.
    pub(crate) fn all(items: Vec<T>) -> Self {
        let total = items.len();
        Self { items, total }
    }
}

impl<T: Serialize> IntoResponse for List<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.items).into_response();
        response
            .headers_mut()
            .insert("x-total-count", axum::http::HeaderValue::from(self.total));
        response
    }
}

/// A query string, refused with the JSON error shape (`invalid_query`) when it does not fit.
pub(crate) struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    #[expect(
        clippy::disallowed_types,
        reason = "the one place that wraps axum's Query"
    )]
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                plain("the query string", &rejection.body_text()),
            )),
        }
    }
}

/// Path parameters, refused with the JSON error shape (422 `invalid_path`, as FastAPI
/// answers a record id that is not a number) instead of axum's plain text.
pub(crate) struct Path<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    #[expect(
        clippy::disallowed_types,
        reason = "the one place that wraps axum's Path"
    )]
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_path",
                plain("the path", &rejection.body_text()),
            )),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Response {
    let (status, code) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        // Well-formed JSON whose fields do not fit is FastAPI's 422; JSON that does not
        // parse stays a 400.
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_request"),
    };
    json_error(status, code, plain("the JSON body", &rejection.body_text()))
}

/// axum's rejection text in words a person reads on a page: "the query string does not
/// fit this route: missing field `file_path`" rather than "Failed to deserialize query
/// string: missing field `file_path`".
fn plain(what: &str, text: &str) -> String {
    let detail = text
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("Failed to") || head.starts_with("Invalid URL"))
        .map_or(text, |(_, rest)| rest);
    format!("{what} does not fit this route: {detail}")
}

/// A JSON body that may be absent: an empty body gives `T::default()` (so
/// `POST /api/sources/x/sync` with no body is a plain sync), anything else must parse.
pub(crate) struct JsonOrEmpty<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            let (status, code) = if e.is_data() {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
            } else {
                (StatusCode::BAD_REQUEST, "invalid_json")
            };
            json_error(
                status,
                code,
                format!("the body is not valid JSON for this route: {e}"),
            )
        })
    }
}

/// The client's address, from the connection (Kura is not meant to sit behind a proxy
/// that would make `X-Forwarded-For` trustworthy). `None` when served without one.
pub(crate) struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(&parts.extensions)))
    }
}

pub(crate) fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<super::conn::PeerAddr>>()
        .map(|c| c.0.0.ip())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejections_read_as_sentences() {
        assert_eq!(
            super::plain(
                "the query string",
                "Failed to deserialize query string: missing field `file_path`"
            ),
            "the query string does not fit this route: missing field `file_path`"
        );
        assert_eq!(
            super::plain("the JSON body", "expected value at line 1"),
            "the JSON body does not fit this route: expected value at line 1"
        );
    }
}
