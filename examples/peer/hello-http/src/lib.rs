//! `hello-http`: the wasi:http proxy component that `wasmtime serve` runs
//! in `clemmys bench`. Every request, whatever its method, path or body, is
//! answered `200` with `{"payload":"Hello, World!"}`: what Clemmys's
//! `hello` example action returns when invoked without parameters.
//!
//! `wasmtime serve` instantiates the component afresh for every request,
//! which makes its latency at one client its per-request cold start.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The answer to every request.
const BODY: &[u8] = br#"{"payload":"Hello, World!"}"#;

wasip2::http::proxy::export!(HelloHttp);

struct HelloHttp;

impl wasip2::exports::http::incoming_handler::Guest for HelloHttp {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::new();
        // A header the host refuses is not worth failing the request for.
        let _ = headers.set("content-type", &[b"application/json".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));
        let Ok(out) = body.write() else {
            return;
        };
        // At most 4096 bytes per call; the body is 27.
        if out.blocking_write_and_flush(BODY).is_err() {
            return;
        }
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}
