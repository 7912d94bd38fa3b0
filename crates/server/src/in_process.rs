//! The node's API called from this process, without a socket: what an
//! attested gateway beside the node (`clemmys serve --gateway`) talks to.
//! The router gets the requests a network client would send (the gateway's
//! sealed bodies and its credential), so the provider sees the same bytes;
//! only TLS, HTTP framing and a thread's wake-up per request are saved.

use std::convert::Infallible;
use std::sync::{Arc, Weak};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use clemmys_client::transport::MAX_RESPONSE_BYTES;
use clemmys_client::{LocalAnswer, LocalApi};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response};
use tower_service::Service as _;

/// The node's router as a [`LocalApi`]. It does not keep the node
/// alive: once the node stops (and drops its router, and with it the
/// controller that holds the bus open), calls answer that it stopped.
pub struct InProcessNode {
    app: Weak<Router>,
}

impl InProcessNode {
    /// Serves `app`, which its owner keeps, in this process.
    pub fn new(app: &Arc<Router>) -> Self {
        Self {
            app: Arc::downgrade(app),
        }
    }
}

impl std::fmt::Debug for InProcessNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProcessNode")
    }
}

impl LocalApi for InProcessNode {
    fn call(&self, request: Request<Full<Bytes>>) -> LocalAnswer {
        let app = self.app.upgrade();
        Box::pin(async move {
            let Some(app) = app else {
                return Err("the node has stopped".into());
            };
            let mut app = Router::clone(&app);
            // A router is always ready, and its errors are responses.
            let response: Result<Response<Body>, Infallible> =
                app.call(request.map(Body::new)).await;
            let Ok(response) = response;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}
