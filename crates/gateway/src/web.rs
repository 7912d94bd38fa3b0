//! `/api/v1/web/{ns}/{package}/{action}[.ext][/path]`: the owner's
//! confidential web actions (`default`: outside packages; otherwise in
//! one of its confidential packages, [`crate::packages`]), served as the
//! node serves plain ones ([`clemmys_whisk::web_http`], the same code),
//! with the plaintext only in here.
//!
//! The request becomes the action's arguments inside the gateway; they are
//! sealed to the action key and the action runs blocking, invoked with the
//! gateway's own namespace key (web actions have no caller credentials);
//! the answer is opened and its receipt verified here and rendered as the
//! URL's extension asks. The node, which refuses confidential actions on
//! its own web path, sees only ciphertext.
//!
//! Web actions are public by design: whoever calls the URL (the provider
//! too) gets the answer, as the owner chose by exporting the action. What
//! the provider must not do is export an action the owner did not, or
//! lift its `require-whisk-auth`: the node stores the annotations in the
//! clear. So the gateway only serves an action whose web annotations
//! carry its own MAC ([`WEB_TAG_ANNOTATION`], made when the action was
//! deployed through it) over the action's name (with its package:
//! `package/action`, the name it is sealed under), the broker's policy
//! version and those annotations, so that the tag of `p1/a` serves
//! neither `p2/a` nor `a`; it seals the request only for that
//! version, and releases an answer only when the verified receipt shows
//! that version ran: an old tag carried over to a newer version (one the
//! owner re-deployed unexported) runs and serves nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clemmys_client::confidential::{ConfidentialError, ConfidentialInvoked};
use clemmys_client::{ClientError, InvokeOptions};
use clemmys_proto::ClientId;
use clemmys_proto::wire::Writer;
use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::web::{
    DEFAULT_PACKAGE, RAW_HTTP, REQUIRE_WHISK_AUTH, REQUIRE_WHISK_AUTH_HEADER, WEB_CUSTOM_OPTIONS,
    WEB_EXPORT, WebError,
};
use clemmys_whisk::web_http::{self, WebCall, WebTarget};
use clemmys_whisk::{ActivationResponse, CONFIDENTIAL_ANNOTATION, EntityName, KeyValues};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::Gateway;
use crate::api::{auth, openwhisk_error};
use crate::credentials::CredentialKey;

/// The annotation holding the gateway's tag over an action's web
/// annotations: `{"version": <policy version>, "tag": "<hex MAC>"}`.
pub const WEB_TAG_ANNOTATION: &str = "clemmys-gateway-web";
/// The annotations the tag covers: all that decide who gets what.
const TAGGED: [&str; 5] = [
    WEB_EXPORT,
    REQUIRE_WHISK_AUTH,
    RAW_HTTP,
    WEB_CUSTOM_OPTIONS,
    "final",
];
const WEB_TAG_FRAME: &str = "clemmys/gateway-web-annotations/v1";
/// What a `require-whisk-auth` secret is MACed as.
const WEB_SECRET_FRAME: &str = "clemmys/gateway-web-secret/v1";
/// The field of the object a `require-whisk-auth` secret is kept as on
/// the node: `{"hmac-sha256": "<hex MAC>"}`, never the secret itself.
const SECRET_MAC_FIELD: &str = "hmac-sha256";

/// What a web tag binds.
struct Tagged<'a> {
    gateway: &'a ClientId,
    namespace: &'a str,
    /// The name the action is registered and sealed under: `action`, or
    /// `package/action` in a package (entity names hold no `/`, so
    /// neither is the other).
    action: &'a str,
    version: u64,
}

impl Tagged<'_> {
    fn message(&self, annotations: &KeyValues) -> Vec<u8> {
        let values: Vec<Value> = TAGGED
            .iter()
            .map(|key| annotations.get(key).cloned().unwrap_or(Value::Null))
            .collect();
        // serde_json writes object keys sorted and numbers as read back:
        // the same annotations always give the same text.
        let values = Value::Array(values).to_string();
        Writer::new(WEB_TAG_FRAME)
            .bytes(self.gateway.as_bytes())
            .str(self.namespace)
            .str(self.action)
            .u64(self.version)
            .str(&values)
            .finish()
    }

    /// The MAC a `require-whisk-auth` secret of this action is kept as.
    fn secret_mac(&self, key: &CredentialKey, secret: &[u8]) -> Vec<u8> {
        let message = Writer::new(WEB_SECRET_FRAME)
            .bytes(self.gateway.as_bytes())
            .str(self.namespace)
            .str(self.action)
            .bytes(secret)
            .finish();
        key.tag(&message).to_vec()
    }

    /// Replaces any tag in `annotations` by this gateway's, when they
    /// export the action (the client may not choose it), and a
    /// `require-whisk-auth` secret by its MAC: the node stores annotations
    /// in the clear, and a provider that read the secret there would call
    /// the action as the owner's chosen callers do.
    fn annotate(&self, key: &CredentialKey, annotations: &mut KeyValues) {
        annotations.0.retain(|kv| kv.key != WEB_TAG_ANNOTATION);
        let secret = match annotations.get(REQUIRE_WHISK_AUTH) {
            Some(Value::String(secret)) => Some(secret.clone()),
            Some(Value::Number(secret)) => Some(secret.to_string()),
            _ => None,
        };
        if let Some(secret) = secret {
            let mac = self.secret_mac(key, secret.as_bytes());
            annotations.set(
                REQUIRE_WHISK_AUTH,
                json!({ SECRET_MAC_FIELD: hex::encode(mac) }),
            );
        }
        if annotations.is_true(WEB_EXPORT) {
            let tag = key.tag(&self.message(annotations));
            annotations.set(
                WEB_TAG_ANNOTATION,
                json!({"version": self.version, "tag": hex::encode(tag)}),
            );
        }
    }

    /// Whether `annotations` are web-exported under a tag this gateway
    /// made for `self.action`; answers the version they were tagged for.
    fn verify(
        gateway: &ClientId,
        namespace: &str,
        action: &str,
        key: &CredentialKey,
        annotations: &KeyValues,
    ) -> Option<u64> {
        if !annotations.is_true(WEB_EXPORT) || !annotations.is_true(CONFIDENTIAL_ANNOTATION) {
            return None;
        }
        let stored = annotations.get(WEB_TAG_ANNOTATION)?;
        let version = stored.get("version")?.as_u64()?;
        let tag = hex::decode(stored.get("tag")?.as_str()?).ok()?;
        let tagged = Tagged {
            gateway,
            namespace,
            action,
            version,
        };
        key.verify_tag(&tagged.message(annotations), &tag)
            .then_some(version)
    }
}

/// Adds the gateway's web tag for `action` at `version` to `annotations`
/// (or drops a tag the caller sent, when they do not export it).
pub(crate) fn tag_web_annotations(
    gateway: &Gateway,
    action: &str,
    version: u64,
    annotations: &mut KeyValues,
) {
    let Some((key, _)) = gateway.web_keys() else {
        annotations.0.retain(|kv| kv.key != WEB_TAG_ANNOTATION);
        return;
    };
    Tagged {
        gateway: &gateway.identity(),
        namespace: gateway.namespace(),
        action,
        version,
    }
    .annotate(key, annotations);
}

/// Why a web request gets no answer from the action.
#[derive(Debug, thiserror::Error)]
enum WebFailure {
    /// As OpenWhisk refuses it.
    #[error(transparent)]
    Web(#[from] WebError),
    /// No such web-exported action (also: one whose tag does not verify,
    /// or a version other than the tagged one ran).
    #[error("The requested resource does not exist.")]
    NotFound,
    /// The request is larger than OpenWhisk's payload limit.
    #[error("The request content was too large.")]
    TooLarge,
    /// The gateway runs without an owner and so has no key of its own.
    #[error(
        "this gateway runs in owner-less test mode: it serves web actions only with an owner (--owner), whose namespace key it then invokes them with"
    )]
    NoOwner,
    /// Sealing, invoking or opening failed.
    #[error(transparent)]
    Confidential(#[from] ConfidentialError),
}

impl WebFailure {
    fn status(&self) -> StatusCode {
        match self {
            WebFailure::Web(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            WebFailure::NotFound => StatusCode::NOT_FOUND,
            WebFailure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebFailure::NoOwner => StatusCode::NOT_IMPLEMENTED,
            WebFailure::Confidential(ConfidentialError::Api(ClientError::Api {
                status, ..
            })) => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            WebFailure::Confidential(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for WebFailure {
    fn into_response(self) -> Response {
        if let WebFailure::Confidential(error) = &self {
            tracing::warn!(%error, "a confidential web action failed");
        }
        openwhisk_error(self.status(), &self.to_string())
    }
}

/// A web-exported action the URL names, its tag verified.
struct Exported {
    target: WebTarget,
    /// Its sealed name: `action`, or `package/action`.
    action: String,
    annotations: KeyValues,
    version: u64,
}

/// Any method on `/api/v1/web/{ns}/{pkg}/{*rest}`.
pub(crate) async fn serve(
    State(gateway): State<Arc<Gateway>>,
    method: Method,
    Path((namespace, package, rest)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !web_http::is_web_method(&method) {
        return WebFailure::Web(WebError::MethodNotAllowed).into_response();
    }
    // Anyone may call a web action: read no more than OpenWhisk's payload
    // limit of what they send, and nothing when they say it is longer.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_PAYLOAD_BYTES as u64) {
        return WebFailure::TooLarge.into_response();
    }
    let body = match http_body_util::BodyExt::collect(http_body_util::Limited::new(
        body,
        MAX_PAYLOAD_BYTES,
    ))
    .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return WebFailure::TooLarge.into_response();
        }
        Err(error) => {
            return WebFailure::Web(WebError::MalformedBody(format!(
                "the body could not be read: {error}"
            )))
            .into_response();
        }
    };
    let exported = match find(&gateway, &namespace, &package, &rest).await {
        Ok(exported) => exported,
        Err(failure) => return failure.into_response(),
    };
    let annotations = exported.annotations.clone();
    web_http::answer_with_cors(&annotations, &method, &headers, async {
        run(&gateway, exported, &method, &uri, &headers, &body)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

/// The exported action of the URL; anything else is a 404, so that
/// nothing tells an unexported action from a missing one.
async fn find(
    gateway: &Gateway,
    namespace: &str,
    package: &str,
    rest: &str,
) -> Result<Exported, WebFailure> {
    if namespace != gateway.namespace() && namespace != "_" {
        return Err(WebFailure::NotFound);
    }
    let target = WebTarget::parse(rest).ok_or(WebFailure::NotFound)?;
    // As on the node, the URL names the package that holds the action
    // (not a binding: the tag binds the name the action is sealed under).
    let package = if package == DEFAULT_PACKAGE {
        None
    } else {
        Some(EntityName::new(package).map_err(|_| WebFailure::NotFound)?)
    };
    let action = match &package {
        None => target.action.as_str().to_owned(),
        Some(package) => format!("{package}/{}", target.action.as_str()),
    };
    let (key, node_auth) = gateway.web_keys().ok_or(WebFailure::NoOwner)?;
    let connection = gateway.connection(node_auth.clone()).await?;
    // An action of a package is served only while the gateway keeps that
    // package (its own record, not the node's): once the owner deleted
    // the package through it, a record the provider puts back on the node
    // (its tag and version still verify) serves nothing.
    if let Some(package) = &package
        && connection.package_defaults(package.as_str())?.is_none()
    {
        return Err(WebFailure::NotFound);
    }
    let doc = match connection.client().get_action(&action, false).await {
        Ok(doc) => doc,
        Err(ClientError::Api { status: 404, .. }) => return Err(WebFailure::NotFound),
        Err(other) => return Err(ConfidentialError::Api(other).into()),
    };
    let version = Tagged::verify(
        &gateway.identity(),
        gateway.namespace(),
        &action,
        key,
        &doc.annotations,
    )
    .ok_or(WebFailure::NotFound)?;
    // Deleted through the gateway at this version or a later one: a
    // record the provider put back on the node serves nothing (a deploy
    // through the gateway registers a later version, served again).
    if connection
        .deleted_version(&action)?
        .is_some_and(|deleted| version <= deleted)
    {
        return Err(WebFailure::NotFound);
    }
    Ok(Exported {
        target,
        action,
        annotations: doc.annotations,
        version,
    })
}

/// Checks the caller, runs the action sealed and renders its opened
/// answer.
async fn run(
    gateway: &Gateway,
    exported: Exported,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, WebFailure> {
    let Exported {
        target,
        action,
        annotations,
        version,
    } = exported;
    let (key, node_auth) = gateway.web_keys().ok_or(WebFailure::NoOwner)?;
    let tagged = Tagged {
        gateway: &gateway.identity(),
        namespace: gateway.namespace(),
        action: &action,
        version,
    };
    let annotations = with_secret_checked(&tagged, key, annotations, headers);
    // `require-whisk-auth: true` wants the owner's key: here, a
    // credential this gateway issued to the owner.
    let owner_credential = auth(headers)
        .ok()
        .is_some_and(|presented| gateway.authenticate(presented).is_ok());
    let user = if *method == Method::OPTIONS {
        None
    } else {
        web_http::authorize(&annotations, headers, |_| {
            owner_credential.then(|| gateway.namespace().to_owned())
        })?
    };
    // A platform credential (the owner's, or the namespace key) is not
    // the web app's: the action never sees it.
    let mut shown = headers.clone();
    let platform_key = auth(headers).ok().is_some_and(|presented| {
        let same_uuid = presented.uuid.as_bytes().ct_eq(node_auth.uuid.as_bytes());
        let same_key = presented.key.as_bytes().ct_eq(node_auth.key.as_bytes());
        owner_credential || bool::from(same_uuid & same_key)
    });
    if platform_key {
        shown.remove(AUTHORIZATION);
    }
    let call = WebCall {
        method,
        headers: &shown,
        query: uri.query(),
        body,
    };
    // Parameters bound on the node are the provider's to write (the
    // gateway never stores any): they are not merged in.
    let mut arguments = web_http::arguments(call, &target, &annotations, Map::new(), user)?;
    let connection = gateway.connection(node_auth.clone()).await?;
    // A caller's value for a `final` parameter is dropped, not refused as
    // OpenWhisk refuses it: anyone may call the URL, and the refusal would
    // tell them (the provider first) which names the sealed defaults have.
    // The sealed value is the one the action gets either way.
    if let Some(names) = connection.final_default_names(&action, version)? {
        for name in names.iter() {
            arguments.remove(name);
        }
    }
    let options = InvokeOptions {
        blocking: true,
        result: false,
        timeout_ms: None,
    };
    // Only the tagged version may run: an old tag put back on a version
    // the owner did not export (or exported under stricter annotations)
    // must not make that version run on the caller's request at all.
    let invoked = connection
        .invoke_version(&action, version, &Value::Object(arguments), options)
        .await;
    let opened = match invoked {
        Ok(ConfidentialInvoked::Completed(opened)) => opened,
        Ok(ConfidentialInvoked::Accepted { .. }) => return Err(WebError::NotReady.into()),
        Err(ConfidentialError::VersionNotCurrent { current, .. }) => {
            tracing::warn!(
                %action,
                tagged = version,
                current,
                "a web action's tag names another version than the current one: nothing runs"
            );
            return Err(WebFailure::NotFound);
        }
        Err(other) => return Err(other.into()),
    };
    let receipt = &opened.receipt.receipt;
    if receipt.version != version || receipt.action != action {
        tracing::warn!(
            %action,
            tagged = version,
            ran = receipt.version,
            "a web action's tag names another version than ran: its answer is withheld"
        );
        return Err(WebFailure::NotFound);
    }
    let response = ActivationResponse::new(opened.status, opened.result);
    let mut answer = match web_http::render(&target, &response) {
        Ok(answer) => answer.map(Body::from).into_response(),
        Err(error) => WebFailure::Web(error).into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&opened.activation_id.to_string()) {
        answer.headers_mut().insert("x-openwhisk-activation-id", id);
    }
    Ok(answer)
}

/// `annotations` as [`web_http::authorize`] reads them: a
/// `require-whisk-auth` kept as a MAC ([`Tagged::annotate`]) becomes the
/// secret the request's `X-Require-Whisk-Auth` header gives when its MAC
/// matches (compared in constant time); otherwise it stays an object,
/// which lets nobody in.
fn with_secret_checked(
    tagged: &Tagged<'_>,
    key: &CredentialKey,
    mut annotations: KeyValues,
    headers: &HeaderMap,
) -> KeyValues {
    let Some(expected) = annotations
        .get(REQUIRE_WHISK_AUTH)
        .and_then(|required| required.get(SECRET_MAC_FIELD))
        .and_then(Value::as_str)
        .and_then(|text| hex::decode(text).ok())
    else {
        return annotations;
    };
    let Some(given) = headers
        .get(REQUIRE_WHISK_AUTH_HEADER)
        .and_then(|value| value.to_str().ok())
    else {
        return annotations;
    };
    let mac = tagged.secret_mac(key, given.as_bytes());
    if bool::from(mac.as_slice().ct_eq(expected.as_slice())) {
        annotations.set(REQUIRE_WHISK_AUTH, Value::String(given.to_owned()));
    }
    annotations
}

#[cfg(test)]
mod tests {
    use clemmys_proto::identity::ClientIdentity;
    use clemmys_tee::os_rng;

    use super::*;

    fn exported(extra: &[(&str, Value)]) -> KeyValues {
        let mut annotations = KeyValues::default();
        annotations.set(CONFIDENTIAL_ANNOTATION, json!(true));
        annotations.set(WEB_EXPORT, json!(true));
        for (key, value) in extra {
            annotations.set(key, value.clone());
        }
        annotations
    }

    #[test]
    fn only_annotations_the_gateway_tagged_are_served() {
        let key = CredentialKey::generate(&mut os_rng());
        let gateway = ClientIdentity::generate(&mut os_rng()).id();
        let tagged = Tagged {
            gateway: &gateway,
            namespace: "guest",
            action: "hello",
            version: 3,
        };
        let verify = |action: &str, annotations: &KeyValues| {
            Tagged::verify(&gateway, "guest", action, &key, annotations)
        };
        let mut annotations = exported(&[(REQUIRE_WHISK_AUTH, json!("s3cret"))]);
        tagged.annotate(&key, &mut annotations);
        assert_eq!(verify("hello", &annotations), Some(3));
        // Not for another action, nor under another key.
        assert_eq!(verify("other", &annotations), None);
        let other_key = CredentialKey::generate(&mut os_rng());
        assert_eq!(
            Tagged::verify(&gateway, "guest", "hello", &other_key, &annotations),
            None
        );
        // The provider lifts require-whisk-auth, or claims another version.
        let mut lifted = annotations.clone();
        lifted.0.retain(|kv| kv.key != REQUIRE_WHISK_AUTH);
        assert_eq!(verify("hello", &lifted), None);
        let mut moved = annotations.clone();
        let stored = moved.get(WEB_TAG_ANNOTATION).cloned().expect("tag");
        let mut stored = stored.as_object().cloned().expect("object");
        stored.insert("version".into(), json!(4));
        moved.set(WEB_TAG_ANNOTATION, Value::Object(stored));
        assert_eq!(verify("hello", &moved), None);
        // The provider exports an action the owner did not.
        let mut unexported = exported(&[]);
        unexported.set(WEB_EXPORT, json!(false));
        tagged.annotate(&key, &mut unexported);
        assert!(unexported.get(WEB_TAG_ANNOTATION).is_none());
        unexported.set(WEB_EXPORT, json!(true));
        assert_eq!(verify("hello", &unexported), None);
    }

    #[test]
    fn a_tag_binds_the_package_of_the_action() {
        let key = CredentialKey::generate(&mut os_rng());
        let gateway = ClientIdentity::generate(&mut os_rng()).id();
        let tagged = Tagged {
            gateway: &gateway,
            namespace: "guest",
            action: "p1/a",
            version: 1,
        };
        let mut annotations = exported(&[]);
        tagged.annotate(&key, &mut annotations);
        let verify = |action: &str| Tagged::verify(&gateway, "guest", action, &key, &annotations);
        assert_eq!(verify("p1/a"), Some(1));
        for elsewhere in ["p2/a", "a", "p1/b"] {
            assert_eq!(verify(elsewhere), None, "{elsewhere}");
        }
    }

    #[test]
    fn a_tag_sent_by_the_client_is_replaced() {
        let key = CredentialKey::generate(&mut os_rng());
        let gateway = ClientIdentity::generate(&mut os_rng()).id();
        let tagged = Tagged {
            gateway: &gateway,
            namespace: "guest",
            action: "hello",
            version: 1,
        };
        let mut annotations = exported(&[(WEB_TAG_ANNOTATION, json!({"version": 9, "tag": "00"}))]);
        tagged.annotate(&key, &mut annotations);
        assert_eq!(
            annotations
                .get(WEB_TAG_ANNOTATION)
                .and_then(|tag| tag.get("version")),
            Some(&json!(1))
        );
    }
}
