//! JSON bodies as etcd 3.5's grpc-gateway (v1, jsonpb with proto field
//! names) reads and writes them, and its error bodies and status codes.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

/// The headers etcd puts on every HTTP answer (its CORS defaults).
pub const CORS: [(&str, &str); 3] = [
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-methods",
        "POST, GET, OPTIONS, PUT, DELETE",
    ),
    (
        "access-control-allow-headers",
        "accept, content-type, authorization",
    ),
];

/// Decodes a request body: its first JSON value, as jsonpb does (what
/// follows is ignored); an empty body or `null` is the empty request.
/// The error is the text etcd's gateway answers with.
pub fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, String> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    match values.next() {
        None => Ok(T::default()),
        Some(Ok(v)) => decode_value(v),
        Some(Err(e)) => Err(go_syntax_error(&e, body)),
    }
}

/// One JSON value as a request message.
pub fn decode_value<T: DeserializeOwned + Default>(value: serde_json::Value) -> Result<T, String> {
    let kind = match &value {
        serde_json::Value::Null => return Ok(T::default()),
        serde_json::Value::Object(_) => {
            return serde_json::from_value(value).map_err(|e| go_value_error(&e))
        }
        serde_json::Value::Array(_) => "array",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "bool",
    };
    Err(format!(
        "json: cannot unmarshal {kind} into Go value of type map[string]json.RawMessage"
    ))
}

/// Go's encoding/json texts for the syntax errors clients make most.
pub fn go_syntax_error(e: &serde_json::Error, body: &[u8]) -> String {
    if e.is_eof() {
        return "unexpected EOF".into();
    }
    // serde_json reports 1-based line and column of the offending byte.
    let offset = byte_offset(body, e.line(), e.column());
    match offset.and_then(|o| body.get(o)) {
        Some(&c) if c.is_ascii_graphic() => {
            format!("invalid character '{}' {}", c as char, syntax_context(e))
        }
        _ => e.to_string(),
    }
}

fn syntax_context(e: &serde_json::Error) -> &'static str {
    let text = e.to_string();
    if text.starts_with("expected value") {
        "looking for beginning of value"
    } else if text.starts_with("key must be a string") {
        "looking for beginning of object key string"
    } else if text.starts_with("expected `:`") {
        "after object key"
    } else {
        "after object key:value pair"
    }
}

fn byte_offset(body: &[u8], line: usize, column: usize) -> Option<usize> {
    let mut start = 0;
    for _ in 1..line {
        start += body.get(start..)?.iter().position(|&b| b == b'\n')? + 1;
    }
    (start + column).checked_sub(1)
}

/// etcd's enums by the names they accept, for jsonpb's error text.
const ENUMS: [(&str, &str); 10] = [
    (
        "`NONE`, `ASCEND`, `DESCEND`",
        "etcdserverpb.RangeRequest.SortOrder",
    ),
    (
        "`KEY`, `VERSION`, `CREATE`, `MOD`, `VALUE`",
        "etcdserverpb.RangeRequest.SortTarget",
    ),
    (
        "`EQUAL`, `GREATER`, `LESS`, `NOT_EQUAL`",
        "etcdserverpb.Compare.CompareResult",
    ),
    (
        "`VERSION`, `CREATE`, `MOD`, `VALUE`, `LEASE`",
        "etcdserverpb.Compare.CompareTarget",
    ),
    (
        "`GET`, `ACTIVATE`, `DEACTIVATE`",
        "etcdserverpb.AlarmRequest.AlarmAction",
    ),
    ("`NONE`, `NOSPACE`, `CORRUPT`", "etcdserverpb.AlarmType"),
    (
        "`NOPUT`, `NODELETE`",
        "etcdserverpb.WatchCreateRequest.FilterType",
    ),
    (
        "`VALIDATE`, `ENABLE`, `CANCEL`",
        "etcdserverpb.DowngradeRequest.DowngradeAction",
    ),
    ("`READ`, `WRITE`, `READWRITE`", "authpb.Permission.Type"),
    ("`PUT`, `DELETE`", "mvccpb.Event.EventType"),
];

/// A field that does not fit its type: base64 and enum errors in Go's words.
fn go_value_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("unknown variant `") {
        if let Some((name, expected)) = rest.split_once("`, expected one of ") {
            if let Some((_, full)) = ENUMS.iter().find(|(names, _)| expected.starts_with(names)) {
                return format!("unknown value \"\\\"{name}\\\"\" for enum {full}");
            }
        }
    }
    // The base64 crate says "Invalid symbol 33, offset 0." / "Invalid byte ...".
    if let Some(rest) = text.split(", offset ").nth(1) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return format!("illegal base64 data at input byte {digits}");
        }
    }
    text
}

/// One message as JSON (proto field names, 64-bit integers as strings,
/// defaults left out).
pub fn encode<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).unwrap_or_else(|e| {
        // Serializing a generated message cannot fail; say so if it does.
        format!("{{\"error\":{:?}}}", e.to_string())
    })
}

fn with_headers(code: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut headers = HeaderMap::new();
    for (k, v) in CORS {
        headers.insert(k, http::HeaderValue::from_static(v));
    }
    headers.insert("content-type", http::HeaderValue::from_static(content_type));
    (code, headers, body).into_response()
}

/// A successful unary answer.
pub fn ok<T: Serialize>(msg: &T) -> Response {
    let mut resp = with_headers(StatusCode::OK, "application/json", encode(msg));
    resp.headers_mut().insert(
        "grpc-metadata-content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// A failed call: `{"error","code","message"}` under the code's HTTP status.
pub fn error(status: &Status) -> Response {
    let status = gateway_status(status);
    let body = ErrorBody {
        error: status.message(),
        code: status.code() as i32,
        message: status.message(),
    };
    with_headers(
        http_status(status.code()),
        "application/json",
        encode(&body),
    )
}

/// grpc-gateway's error message, fields in its order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: i32,
    message: &'a str,
}

/// Plain-text answers of the gateway's mux (unknown path, wrong method).
pub fn text(code: StatusCode) -> Response {
    let reason = code.canonical_reason().unwrap_or("");
    with_headers(code, "text/plain; charset=utf-8", format!("{reason}\n"))
}

/// An error in a stream: grpc-gateway's stream error chunk.
pub fn stream_error_chunk(status: &Status) -> String {
    let status = gateway_status(status);
    let http = http_status(status.code());
    let chunk = StreamErrorChunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or(""),
        },
    };
    encode(&chunk) + "\n"
}

#[derive(Serialize)]
struct StreamErrorChunk<'a> {
    error: StreamError<'a>,
}

#[derive(Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

/// grpc-go's text for a message over the size limit (tonic words it
/// differently), as etcd's gateway relays it.
fn gateway_status(status: &Status) -> Status {
    let msg = status.message();
    if let Some(rest) = msg.strip_prefix("Error, decoded message length too large: found ") {
        let numbers: Vec<&str> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        if let [found, limit] = numbers[..] {
            return Status::resource_exhausted(format!(
                "grpc: received message larger than max ({found} vs. {limit})"
            ));
        }
    }
    Status::new(status.code(), msg)
}

/// grpc-gateway v1's HTTPStatusFromCode.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocd_proto::etcdserverpb::RangeRequest;

    #[test]
    fn bodies_decode_as_jsonpb_reads_them() {
        let r: RangeRequest = decode(br#"{"key":"Zm9v","limit":"3","unknown":1} {"x":1}"#).unwrap();
        assert_eq!((r.key, r.limit), (b"foo".to_vec(), 3));
        assert_eq!(
            decode::<RangeRequest>(b"").unwrap(),
            RangeRequest::default()
        );
        assert_eq!(
            decode::<RangeRequest>(b"null").unwrap(),
            RangeRequest::default()
        );
    }

    #[test]
    fn decode_errors_read_as_go_writes_them() {
        let err = |b: &[u8]| decode::<RangeRequest>(b).unwrap_err();
        assert_eq!(err(br#"{"key":"Zm9v"#), "unexpected EOF");
        assert_eq!(
            err(br#"{"key":"!!!"}"#),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            err(br#"{"key":"Zm9v","limit":x}"#),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            err(br#"{"key":"AA==","sort_order":"BOGUS"}"#),
            r#"unknown value "\"BOGUS\"" for enum etcdserverpb.RangeRequest.SortOrder"#
        );
        assert_eq!(
            err(b"[]"),
            "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
        );
    }

    #[test]
    fn oversized_messages_are_worded_as_grpc_go_does() {
        let s = Status::out_of_range(
            "Error, decoded message length too large: found 2097162 bytes, the limit is: 2097152 bytes",
        );
        let g = gateway_status(&s);
        assert_eq!(g.code(), Code::ResourceExhausted);
        assert_eq!(
            g.message(),
            "grpc: received message larger than max (2097162 vs. 2097152)"
        );
    }
}
