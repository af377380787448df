//! The API's error body `{code, message, details}` and the mapping from library errors to
//! HTTP statuses. Every failure a caller can cause is a 4xx naming the problem; a 5xx means
//! the service failed (and never carries an answer).

use crate::engine::EngineError;
use crate::model::typesystem::CompileError;
use crate::service::ServiceError;
use crate::service::bulk::RequestError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable (`snake_case`).
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let details = if self.details.is_null() {
            json!({})
        } else {
            self.details
        };
        let mut response = (
            self.status,
            axum::Json(json!({"code": self.code, "message": self.message, "details": details})),
        )
            .into_response();
        // An oversized body is answered before it is read; hyper then closes the connection
        // unless the rest happens to have arrived already. Saying so stops the client from
        // reusing the connection for its next request (which would fail at random).
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

pub(super) fn model_details(e: &CompileError) -> Value {
    match e {
        CompileError::Model(errors) => json!({"errors": errors.errors.iter().map(|e| json!({
            "line": e.line + 1,
            "column": e.column + 1,
            "message": e.message,
        })).collect::<Vec<_>>()}),
        CompileError::Condition(c) => json!({"errors": [{"message": c.to_string()}]}),
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            ServiceError::NoModel => (S::CONFLICT, "no_model"),
            ServiceError::Model(m) => {
                return Self::bad_request("invalid_model", message).with_details(model_details(m));
            }
            ServiceError::TupleRule(_) => (S::BAD_REQUEST, "invalid_tuple"),
            ServiceError::AlreadyExists(_) => (S::CONFLICT, "tuple_exists"),
            ServiceError::NotFound(_) => (S::CONFLICT, "tuple_not_found"),
            ServiceError::Duplicate(_) => (S::BAD_REQUEST, "duplicate_tuple"),
            ServiceError::TooMany(..) => (S::BAD_REQUEST, "too_many_tuples"),
            ServiceError::PreconditionFailed(_) => (S::CONFLICT, "precondition_failed"),
            ServiceError::EmptyWrite => (S::BAD_REQUEST, "empty_write"),
            ServiceError::Engine(e) => match e {
                EngineError::UnknownType(_) => (S::BAD_REQUEST, "unknown_type"),
                EngineError::UnknownRelation { .. } => (S::BAD_REQUEST, "unknown_relation"),
                EngineError::InvalidUser(_) => (S::BAD_REQUEST, "invalid_user"),
                EngineError::DepthExceeded(_) => (S::UNPROCESSABLE_ENTITY, "depth_exceeded"),
                EngineError::Condition(_) => (S::UNPROCESSABLE_ENTITY, "condition_failed"),
                EngineError::ContextualTuple(_) => (S::BAD_REQUEST, "invalid_contextual_tuple"),
                EngineError::NotConverged(_) => (S::INTERNAL_SERVER_ERROR, "not_converged"),
            },
            ServiceError::Request(r) => match r {
                RequestError::TooManyCandidates { .. } => (S::BAD_REQUEST, "too_many_candidates"),
                RequestError::TooManyChecks { .. } => (S::BAD_REQUEST, "too_many_checks"),
                RequestError::BadCandidate { .. } => (S::BAD_REQUEST, "invalid_candidate"),
                RequestError::BadPageSize { .. } => (S::BAD_REQUEST, "invalid_page_size"),
                RequestError::MalformedCursor(_) => (S::BAD_REQUEST, "invalid_cursor"),
                RequestError::CursorMismatch => (S::BAD_REQUEST, "cursor_mismatch"),
                RequestError::CursorExpired { .. } => (S::GONE, "cursor_expired"),
                RequestError::CursorRevision { .. } => (S::BAD_REQUEST, "cursor_revision"),
                RequestError::FutureRevision { .. } => (S::BAD_REQUEST, "future_revision"),
            },
            ServiceError::Sparql(e) => {
                use crate::sparql::SparqlError as Q;
                let status = match e {
                    Q::Syntax(_) | Q::InvalidTuple(_) | Q::Evaluation(_) => S::BAD_REQUEST,
                    Q::Refused(_) | Q::ReadOnlyGraph(_) => S::FORBIDDEN,
                    Q::Timeout(_) => S::SERVICE_UNAVAILABLE,
                    Q::TooManyResults(_) | Q::UpdateTooLarge(_) | Q::MemoryLimit(_) => {
                        S::UNPROCESSABLE_ENTITY
                    }
                    Q::NotAcceptable { .. } => S::NOT_ACCEPTABLE,
                    Q::Internal(_) => S::INTERNAL_SERVER_ERROR,
                };
                (status, e.kind())
            }
            ServiceError::Import(i) => return import_error(i, message),
            ServiceError::Store(_) => (S::INTERNAL_SERVER_ERROR, "storage_error"),
            ServiceError::Poisoned => (S::INTERNAL_SERVER_ERROR, "internal"),
            ServiceError::WriteDeadline => (S::SERVICE_UNAVAILABLE, "write_timeout"),
            #[allow(unreachable_patterns)]
            _ => {
                if e.is_user_error() {
                    (S::BAD_REQUEST, "invalid_request")
                } else {
                    (S::INTERNAL_SERVER_ERROR, "internal")
                }
            }
        };
        Self::new(status, code, message)
    }
}

/// An import or export error; a syntax error's details carry its line and column.
fn import_error(e: &crate::store::ImportError, message: String) -> ApiError {
    use crate::store::ImportError as I;
    let (status, code) = match e {
        I::Syntax { location, .. } => {
            let details = match location {
                Some(l) => json!({"line": l.line, "column": l.column}),
                None => Value::Null,
            };
            return ApiError::bad_request("import_syntax", message).with_details(details);
        }
        I::Iri { .. } => (StatusCode::BAD_REQUEST, "invalid_iri"),
        I::ReadOnlyGraph(_) => (StatusCode::FORBIDDEN, "read_only_graph"),
        I::InvalidTuple(_) => (StatusCode::BAD_REQUEST, "invalid_tuple"),
        I::Export(_) => (StatusCode::BAD_REQUEST, "invalid_export"),
        I::Store(_) | I::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
    };
    ApiError::new(status, code, message)
}

impl From<crate::sparql::SparqlError> for ApiError {
    fn from(e: crate::sparql::SparqlError) -> Self {
        ServiceError::Sparql(e).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ServiceError::Engine(e).into()
    }
}

impl From<crate::tuple::TupleError> for ApiError {
    fn from(e: crate::tuple::TupleError) -> Self {
        Self::bad_request("invalid_id", e.to_string())
    }
}

/// A JSON body whose every rejection is an [`ApiError`]: malformed JSON, a wrong type, an
/// unknown field (the request types deny them) and an oversized body each say what is wrong.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// A query string whose every rejection is an [`ApiError`] (`invalid_query`), as [`Json`] is
/// for bodies: a malformed value or an unknown parameter gets the JSON error body too.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(ApiError::new(r.status(), "invalid_query", r.body_text())),
        }
    }
}

/// Path parameters whose every rejection is an [`ApiError`] (`invalid_path`), e.g. a
/// percent-encoded segment that is not UTF-8.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(ApiError::new(r.status(), "invalid_path", r.body_text())),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let code = match &r {
        JsonRejection::JsonDataError(_) => "invalid_request",
        JsonRejection::JsonSyntaxError(_) => "malformed_json",
        JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "invalid_body",
    };
    // axum's text names the serde error with its line and column.
    ApiError::new(status, code, r.body_text())
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ServiceError::Store(e).into()
    }
}
