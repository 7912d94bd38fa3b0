//! [`Client`]: one typed method per OpenWhisk route that Clemmys serves.

use bytes::Bytes;
use clemmys_whisk::action::ActionPut;
use clemmys_whisk::{Activation, ActivationId, ActivationResponse, AuthKey};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ClientError;
use crate::names::{Query, entity_path, namespace_path, resolve_name};
use crate::transport::{LocalApi, Observer, RawResponse, Transport};
use crate::types::{ActionDoc, ActivationFilter, ActivationSummary, InvokeOptions, Invoked};
use crate::wskprops::WskProps;
use clemmys_tls::ClientTlsOptions;

/// The header carrying the activation id of every invoke answer.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// A typed OpenWhisk API client for one API host and one API key.
///
/// Cheap to clone; clones share one pool of kept-alive HTTP/1 connections,
/// so a load generator should clone one client rather than build many.
/// Entity names may be given as `name`, `pkg/name`, `/ns/name` or
/// `/_/name`; relative names are in the caller's namespace `_`.
#[derive(Debug, Clone)]
pub struct Client {
    transport: Transport,
}

impl Client {
    /// A client for `api_host` (`http://host:port`, `https://host:port`
    /// or, meaning https, `host:port`) authenticating as `auth`; an
    /// `https://` host's certificate is checked against the system's
    /// authorities.
    pub fn new(api_host: &str, auth: AuthKey) -> Result<Self, ClientError> {
        Self::with_tls(api_host, auth, &ClientTlsOptions::default())
    }

    /// A client for `api_host` authenticating as `auth`, checking an
    /// `https://` host as `tls` says.
    pub fn with_tls(
        api_host: &str,
        auth: AuthKey,
        tls: &ClientTlsOptions,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            transport: Transport::with_tls(api_host, &auth, tls)?,
        })
    }

    /// A client of `api_host` served by this process through `api` (see
    /// [`LocalApi`]), authenticating as `auth`.
    pub fn in_process(
        api_host: &str,
        auth: AuthKey,
        api: std::sync::Arc<dyn LocalApi>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            transport: Transport::in_process(api_host, &auth, api)?,
        })
    }

    /// A client for the `APIHOST` and `AUTH` of a properties file.
    pub fn from_props(props: &WskProps) -> Result<Self, ClientError> {
        let api_host = props.api_host().ok_or_else(|| ClientError::Config {
            message: "no APIHOST in the properties".into(),
        })?;
        let auth = props.auth_key()?.ok_or_else(|| ClientError::Config {
            message: "no AUTH in the properties".into(),
        })?;
        Self::with_tls(api_host, auth, &props.tls_options()?)
    }

    /// This client, reporting every HTTP exchange to `observer`.
    pub fn with_observer(self, observer: Observer) -> Self {
        Self {
            transport: self.transport.with_observer(observer),
        }
    }

    /// The API host as configured.
    pub fn api_host(&self) -> &str {
        self.transport.api_host()
    }

    /// The HTTP layer underneath.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Sends a raw request to `APIHOST/api/v1{path_and_query}` and returns
    /// the answer whatever its status (see [`Transport::request`]).
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<RawResponse, ClientError> {
        self.transport.request(method, path_and_query, body).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path_and_query: &str,
        what: &'static str,
    ) -> Result<T, ClientError> {
        self.request(Method::GET, path_and_query, None)
            .await?
            .json(what)
    }

    // --- namespaces -------------------------------------------------------

    /// `GET /namespaces`: the namespaces the key may use.
    pub async fn list_namespaces(&self) -> Result<Vec<String>, ClientError> {
        /// OpenWhisk answers names; some deployments answer `{name}` objects.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Name(String),
            Object { name: String },
        }
        let entries: Vec<Entry> = self.get_json("/namespaces", "namespace list").await?;
        Ok(entries
            .into_iter()
            .map(|entry| match entry {
                Entry::Name(name) | Entry::Object { name } => name,
            })
            .collect())
    }

    /// `GET /namespaces/{ns}/limits`: throttles and limit ranges, as sent
    /// (OpenWhisk omits the ones left at their defaults).
    pub async fn namespace_limits(
        &self,
        namespace: &str,
    ) -> Result<Map<String, Value>, ClientError> {
        let path = format!("{}/limits", namespace_path(namespace));
        self.get_json(&path, "namespace limits").await
    }

    // --- packages ---------------------------------------------------------

    /// `GET /namespaces/{ns}/packages?skip&limit`: a page of package
    /// summaries (another namespace's: its shared ones only).
    pub async fn list_packages(
        &self,
        namespace: &str,
        skip: u32,
        limit: Option<u32>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut query = Query::new();
        query.push("skip", skip).push_opt("limit", limit);
        let path = format!("{}/packages{}", namespace_path(namespace), query.as_str());
        self.get_json(&path, "package list").await
    }

    /// `GET …/packages/{name}`: one package or binding.
    pub async fn get_package(&self, name: &str) -> Result<Value, ClientError> {
        let path = entity_path("packages", &resolve_name(name)?);
        self.get_json(&path, "package").await
    }

    /// `PUT …/packages/{name}?overwrite=` with `package` (OpenWhisk's
    /// `PUT` body: `publish`, `parameters`, `annotations`, `binding`).
    pub async fn put_package(
        &self,
        name: &str,
        package: &Value,
        overwrite: bool,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "{}?overwrite={overwrite}",
            entity_path("packages", &resolve_name(name)?)
        );
        let body =
            serde_json::to_vec(package).map_err(|e| ClientError::decode("package to send", e))?;
        self.request(Method::PUT, &path, Some(Bytes::from(body)))
            .await?
            .json("package")
    }

    /// `DELETE …/packages/{name}`.
    pub async fn delete_package(&self, name: &str) -> Result<(), ClientError> {
        let path = entity_path("packages", &resolve_name(name)?);
        self.request(Method::DELETE, &path, None)
            .await?
            .error_for_status()
    }

    // --- triggers and rules -----------------------------------------------

    /// `GET /namespaces/{ns}/{collection}?skip&limit`.
    async fn list_collection(
        &self,
        collection: &str,
        namespace: &str,
        skip: u32,
        limit: Option<u32>,
        what: &'static str,
    ) -> Result<Vec<Value>, ClientError> {
        let mut query = Query::new();
        query.push("skip", skip).push_opt("limit", limit);
        let path = format!(
            "{}/{collection}{}",
            namespace_path(namespace),
            query.as_str()
        );
        self.get_json(&path, what).await
    }

    /// `PUT …/{collection}/{name}?overwrite=` with `body`.
    async fn put_entity(
        &self,
        collection: &str,
        name: &str,
        body: &Value,
        overwrite: bool,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "{}?overwrite={overwrite}",
            entity_path(collection, &resolve_name(name)?)
        );
        let body = serde_json::to_vec(body).map_err(|e| ClientError::decode(what, e))?;
        self.request(Method::PUT, &path, Some(Bytes::from(body)))
            .await?
            .json(what)
    }

    /// `DELETE …/{collection}/{name}`: answers what was deleted.
    async fn delete_entity(
        &self,
        collection: &str,
        name: &str,
        what: &'static str,
    ) -> Result<Value, ClientError> {
        let path = entity_path(collection, &resolve_name(name)?);
        self.request(Method::DELETE, &path, None).await?.json(what)
    }

    /// `GET /namespaces/{ns}/triggers?skip&limit`: trigger summaries.
    pub async fn list_triggers(
        &self,
        namespace: &str,
        skip: u32,
        limit: Option<u32>,
    ) -> Result<Vec<Value>, ClientError> {
        self.list_collection("triggers", namespace, skip, limit, "trigger list")
            .await
    }

    /// `GET …/triggers/{name}`: the trigger with its rules' links.
    pub async fn get_trigger(&self, name: &str) -> Result<Value, ClientError> {
        let path = entity_path("triggers", &resolve_name(name)?);
        self.get_json(&path, "trigger").await
    }

    /// `PUT …/triggers/{name}?overwrite=` with `trigger` (`publish`,
    /// `parameters`, `annotations`).
    pub async fn put_trigger(
        &self,
        name: &str,
        trigger: &Value,
        overwrite: bool,
    ) -> Result<Value, ClientError> {
        self.put_entity("triggers", name, trigger, overwrite, "trigger")
            .await
    }

    /// `DELETE …/triggers/{name}`.
    pub async fn delete_trigger(&self, name: &str) -> Result<Value, ClientError> {
        self.delete_entity("triggers", name, "trigger").await
    }

    /// `POST …/triggers/{name}` with the event `params`: the trigger
    /// activation's id, or `None` when no rule was active (204).
    pub async fn fire_trigger(
        &self,
        name: &str,
        params: &Map<String, Value>,
    ) -> Result<Option<ActivationId>, ClientError> {
        let path = entity_path("triggers", &resolve_name(name)?);
        let body =
            serde_json::to_vec(params).map_err(|e| ClientError::decode("event to send", e))?;
        let answer = self
            .request(Method::POST, &path, Some(Bytes::from(body)))
            .await?;
        if answer.status == StatusCode::NO_CONTENT {
            answer.error_for_status()?;
            return Ok(None);
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fired {
            activation_id: ActivationId,
        }
        let fired: Fired = answer.json("trigger fire")?;
        Ok(Some(fired.activation_id))
    }

    /// `GET /namespaces/{ns}/rules?skip&limit`: rules with their status.
    pub async fn list_rules(
        &self,
        namespace: &str,
        skip: u32,
        limit: Option<u32>,
    ) -> Result<Vec<Value>, ClientError> {
        self.list_collection("rules", namespace, skip, limit, "rule list")
            .await
    }

    /// `GET …/rules/{name}`: the rule with its status.
    pub async fn get_rule(&self, name: &str) -> Result<Value, ClientError> {
        let path = entity_path("rules", &resolve_name(name)?);
        self.get_json(&path, "rule").await
    }

    /// `PUT …/rules/{name}?overwrite=` with `rule` (`trigger`, `action`,
    /// `annotations`).
    pub async fn put_rule(
        &self,
        name: &str,
        rule: &Value,
        overwrite: bool,
    ) -> Result<Value, ClientError> {
        self.put_entity("rules", name, rule, overwrite, "rule")
            .await
    }

    /// `DELETE …/rules/{name}`.
    pub async fn delete_rule(&self, name: &str) -> Result<Value, ClientError> {
        self.delete_entity("rules", name, "rule").await
    }

    /// `POST …/rules/{name}` with `{"status": "active" | "inactive"}`.
    pub async fn set_rule_status(&self, name: &str, active: bool) -> Result<(), ClientError> {
        let path = entity_path("rules", &resolve_name(name)?);
        let status = if active { "active" } else { "inactive" };
        let body = serde_json::json!({ "status": status }).to_string();
        self.request(Method::POST, &path, Some(Bytes::from(body)))
            .await?
            .error_for_status()
    }

    // --- actions ----------------------------------------------------------

    /// `GET /namespaces/_/actions?skip&limit`: a page of actions (summaries
    /// without code or parameters), newest first.
    pub async fn list_actions(
        &self,
        skip: u32,
        limit: Option<u32>,
    ) -> Result<Vec<ActionDoc>, ClientError> {
        let mut query = Query::new();
        query.push("skip", skip).push_opt("limit", limit);
        let path = format!("{}/actions{}", namespace_path("_"), query.as_str());
        self.get_json(&path, "action list").await
    }

    /// `GET /namespaces/_/actions?count=true`: how many actions there are.
    pub async fn count_actions(&self) -> Result<u64, ClientError> {
        let path = format!("{}/actions?count=true", namespace_path("_"));
        let counted: Map<String, Value> = self.get_json(&path, "action count").await?;
        count_field(&counted, "actions")
    }

    /// `GET …/actions/{name}?code=`: one action, with its code if `code`.
    pub async fn get_action(&self, name: &str, code: bool) -> Result<ActionDoc, ClientError> {
        let path = format!(
            "{}?code={code}",
            entity_path("actions", &resolve_name(name)?)
        );
        self.get_json(&path, "action").await
    }

    /// `PUT …/actions/{name}?overwrite=`: creates the action, or with
    /// `overwrite` updates it (409 if it exists and `overwrite` is false).
    pub async fn put_action(
        &self,
        name: &str,
        action: &ActionPut,
        overwrite: bool,
    ) -> Result<ActionDoc, ClientError> {
        let path = format!(
            "{}?overwrite={overwrite}",
            entity_path("actions", &resolve_name(name)?)
        );
        let body =
            serde_json::to_vec(action).map_err(|e| ClientError::decode("action to send", e))?;
        self.request(Method::PUT, &path, Some(Bytes::from(body)))
            .await?
            .json("action")
    }

    /// `DELETE …/actions/{name}`.
    pub async fn delete_action(&self, name: &str) -> Result<(), ClientError> {
        let path = entity_path("actions", &resolve_name(name)?);
        self.request(Method::DELETE, &path, None)
            .await?
            .error_for_status()
    }

    /// `POST …/actions/{name}?blocking&result&timeout` with `params` (an
    /// object; `null` sends `{}`) as the body.
    ///
    /// 200 and 502 (the action failed) are [`Invoked::Completed`]; 202 is
    /// [`Invoked::Accepted`]; any other status is [`ClientError::Api`].
    pub async fn invoke(
        &self,
        name: &str,
        params: Value,
        options: InvokeOptions,
    ) -> Result<Invoked, ClientError> {
        let body = if params.is_null() {
            Bytes::from_static(b"{}")
        } else {
            Bytes::from(
                serde_json::to_vec(&params)
                    .map_err(|e| ClientError::decode("parameters to send", e))?,
            )
        };
        self.invoke_body(name, body, options).await
    }

    /// Like [`invoke`](Self::invoke), with the JSON body already encoded
    /// (a confidential client's sealed parameters).
    ///
    /// The answer's body is read as `B`.
    pub async fn invoke_body<B: DeserializeOwned>(
        &self,
        name: &str,
        body: Bytes,
        options: InvokeOptions,
    ) -> Result<Invoked<B>, ClientError> {
        let mut query = Query::new();
        if options.blocking {
            query.push("blocking", true);
            if options.result {
                query.push("result", true);
            }
            query.push_opt("timeout", options.timeout_ms);
        }
        let path = format!(
            "{}{}",
            entity_path("actions", &resolve_name(name)?),
            query.as_str()
        );
        let response = self.request(Method::POST, &path, Some(body)).await?;
        invoked_from_response(&response)
    }

    // --- activations ------------------------------------------------------

    /// `GET /namespaces/_/activations?…`: activations, newest first.
    pub async fn list_activations(
        &self,
        filter: &ActivationFilter,
    ) -> Result<Vec<ActivationSummary>, ClientError> {
        let path = activations_path(filter, false)?;
        self.get_json(&path, "activation list").await
    }

    /// `GET /namespaces/_/activations?count=true&…`: how many match
    /// (`limit` and `docs` are ignored).
    pub async fn count_activations(&self, filter: &ActivationFilter) -> Result<u64, ClientError> {
        let path = activations_path(filter, true)?;
        let counted: Map<String, Value> = self.get_json(&path, "activation count").await?;
        count_field(&counted, "activations")
    }

    /// `GET /namespaces/_/activations/{id}`: the whole record.
    pub async fn get_activation(&self, id: ActivationId) -> Result<Activation, ClientError> {
        let path = format!("{}/activations/{id}", namespace_path("_"));
        self.get_json(&path, "activation").await
    }

    /// `GET /namespaces/_/activations/{id}/result`: `{result, success, status}`.
    pub async fn activation_result(
        &self,
        id: ActivationId,
    ) -> Result<ActivationResponse, ClientError> {
        let path = format!("{}/activations/{id}/result", namespace_path("_"));
        self.get_json(&path, "activation result").await
    }

    /// `GET /namespaces/_/activations/{id}/logs`: the log lines.
    pub async fn activation_logs(&self, id: ActivationId) -> Result<Vec<String>, ClientError> {
        #[derive(Deserialize)]
        struct Logs {
            logs: Vec<String>,
        }
        let path = format!("{}/activations/{id}/logs", namespace_path("_"));
        let logs: Logs = self.get_json(&path, "activation logs").await?;
        Ok(logs.logs)
    }
}

/// Reads an invoke answer, its body as `B`: see [`Client::invoke`].
pub fn invoked_from_response<B: DeserializeOwned>(
    response: &RawResponse,
) -> Result<Invoked<B>, ClientError> {
    /// Where the id is when a proxy dropped the header.
    #[derive(Deserialize)]
    struct IdInBody {
        #[serde(rename = "activationId")]
        activation_id: Option<String>,
    }
    let status = response.status;
    if status != StatusCode::OK
        && status != StatusCode::ACCEPTED
        && status != StatusCode::BAD_GATEWAY
    {
        response.error_for_status()?;
        return Err(ClientError::decode(
            "invoke answer",
            format!("HTTP status {status}"),
        ));
    }
    let from_header = response
        .headers
        .get(ACTIVATION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<ActivationId>().ok());
    let from_body = || {
        serde_json::from_slice::<IdInBody>(&response.body)
            .ok()?
            .activation_id?
            .parse::<ActivationId>()
            .ok()
    };
    let Some(activation_id) = from_header.or_else(from_body) else {
        if status == StatusCode::BAD_GATEWAY {
            // A proxy's 502, not an activation.
            return Err(ClientError::from_response(status.as_u16(), &response.body));
        }
        return Err(ClientError::decode(
            "invoke answer",
            format!("no {ACTIVATION_ID_HEADER} header and no activationId in the body"),
        ));
    };
    if status == StatusCode::ACCEPTED {
        return Ok(Invoked::Accepted { activation_id });
    }
    match serde_json::from_slice(&response.body) {
        Ok(body) => Ok(Invoked::Completed {
            status: status.as_u16(),
            activation_id,
            body,
        }),
        Err(_) if status == StatusCode::BAD_GATEWAY => {
            Err(ClientError::from_response(status.as_u16(), &response.body))
        }
        Err(error) => Err(ClientError::decode("invoke answer", error)),
    }
}

fn activations_path(filter: &ActivationFilter, count: bool) -> Result<String, ClientError> {
    let mut query = Query::new();
    let mut namespace = String::from("_");
    if let Some(name) = &filter.name {
        let fq = resolve_name(name)?;
        namespace = fq.namespace.to_string();
        query.push("name", fq.path_in_namespace());
    }
    query.push("skip", filter.skip);
    if count {
        query.push("count", true);
    } else {
        query.push_opt("limit", filter.limit);
        if filter.docs {
            query.push("docs", true);
        }
    }
    query
        .push_opt("since", filter.since)
        .push_opt("upto", filter.upto);
    Ok(format!(
        "{}/activations{}",
        namespace_path(&namespace),
        query.as_str()
    ))
}

fn count_field(counted: &Map<String, Value>, field: &'static str) -> Result<u64, ClientError> {
    counted
        .get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| ClientError::decode("count", format!("no numeric '{field}' field")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;
    use hyper::header::HeaderValue;
    use serde_json::json;

    fn response(status: u16, id: Option<&str>, body: &str) -> RawResponse {
        let mut headers = HeaderMap::new();
        if let Some(id) = id {
            headers.insert(
                ACTIVATION_ID_HEADER,
                HeaderValue::from_str(id).expect("header"),
            );
        }
        RawResponse {
            status: StatusCode::from_u16(status).expect("status"),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn reads_invoke_answers() {
        let id = "0a".repeat(16);
        let done =
            invoked_from_response::<Value>(&response(200, Some(&id), r#"{"hello":"world"}"#))
                .expect("200");
        assert!(done.is_success());
        assert_eq!(done.activation_id().to_string(), id);
        assert_eq!(
            done,
            Invoked::Completed {
                status: 200,
                activation_id: id.parse().expect("id"),
                body: json!({"hello": "world"})
            }
        );
        let failed = invoked_from_response::<Value>(&response(
            502,
            Some(&id),
            r#"{"activationId":"x","response":{"status":"application error"}}"#,
        ))
        .expect("502 is an activation");
        assert!(!failed.is_success());
        let accepted = invoked_from_response::<Value>(&response(
            202,
            None,
            &format!(r#"{{"activationId":"{id}"}}"#),
        ))
        .expect("202 with id in body");
        assert_eq!(
            accepted,
            Invoked::Accepted {
                activation_id: id.parse().expect("id")
            }
        );
    }

    #[test]
    fn an_invoke_answer_can_be_read_in_part() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Status {
            status: String,
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct ResponseOnly {
            response: Status,
        }
        let id = "0b".repeat(16);
        let record = r#"{"activationId":"x","logs":["a line"],"response":{"status":"success","result":{"big":[1,2,3]}}}"#;
        let read = invoked_from_response::<ResponseOnly>(&response(200, Some(&id), record))
            .expect("a record");
        assert_eq!(
            read,
            Invoked::Completed {
                status: 200,
                activation_id: id.parse().expect("id"),
                body: ResponseOnly {
                    response: Status {
                        status: "success".into()
                    }
                }
            }
        );
        // A body that is not the shape asked for is a decode error.
        let err = invoked_from_response::<ResponseOnly>(&response(200, Some(&id), "{}"))
            .expect_err("no response");
        assert!(matches!(err, ClientError::Decode { .. }));
        // The id still comes from the body when the header is missing.
        let accepted = invoked_from_response::<ResponseOnly>(&response(
            202,
            None,
            &format!(r#"{{"activationId":"{id}"}}"#),
        ))
        .expect("202");
        assert_eq!(accepted.activation_id().to_string(), id);
    }

    #[test]
    fn invoke_errors_are_api_errors() {
        let err = invoked_from_response::<Value>(&response(
            404,
            None,
            r#"{"error":"The requested resource does not exist.","code":"c0de"}"#,
        ))
        .expect_err("404");
        assert!(err.is_status(404));
        let err = invoked_from_response::<Value>(&response(502, None, "<html>Bad Gateway</html>"))
            .expect_err("proxy 502");
        assert!(err.is_status(502));
        let err = invoked_from_response::<Value>(&response(200, None, "{}")).expect_err("no id");
        assert!(matches!(err, ClientError::Decode { .. }));
    }

    #[test]
    fn builds_activation_queries() {
        let filter = ActivationFilter {
            name: Some("/guest/my action".into()),
            skip: 2,
            limit: Some(5),
            since: Some(10),
            upto: None,
            docs: true,
        };
        assert_eq!(
            activations_path(&filter, false).expect("path"),
            "/namespaces/guest/activations?name=my%20action&skip=2&limit=5&docs=true&since=10"
        );
        assert_eq!(
            activations_path(&filter, true).expect("path"),
            "/namespaces/guest/activations?name=my%20action&skip=2&count=true&since=10"
        );
        assert_eq!(
            activations_path(&ActivationFilter::default(), false).expect("path"),
            "/namespaces/_/activations?skip=0"
        );
    }

    /// A minimal keep-alive HTTP/1 server on 127.0.0.1:0 that records each
    /// request (head and body) and answers with `answer(request)`.
    struct MockServer {
        api_host: String,
        requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl MockServer {
        async fn start(answer: fn(&str) -> (u16, String)) -> Self {
            use std::sync::atomic::Ordering;
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let api_host = format!("http://{}", listener.local_addr().expect("addr"));
            let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (seen, count) = (requests.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let mut buffer = Vec::new();
                        loop {
                            let head_end = loop {
                                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n")
                                {
                                    break end + 4;
                                }
                                let mut chunk = [0u8; 4096];
                                match socket.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                                }
                            };
                            let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().expect("length"))
                                })
                                .unwrap_or(0);
                            while buffer.len() < head_end + length {
                                let mut chunk = [0u8; 4096];
                                match socket.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                                }
                            }
                            let body =
                                String::from_utf8_lossy(&buffer[head_end..head_end + length])
                                    .to_string();
                            buffer.drain(..head_end + length);
                            let request = format!("{head}{body}");
                            let (status, answer) = answer(&request);
                            seen.lock().expect("lock").push(request);
                            let id = "0a".repeat(16);
                            let reply = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nx-openwhisk-activation-id: {id}\r\ncontent-length: {}\r\n\r\n{answer}",
                                answer.len()
                            );
                            if socket.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            Self {
                api_host,
                requests,
                connections,
            }
        }

        fn requests(&self) -> Vec<String> {
            self.requests.lock().expect("lock").clone()
        }
    }

    fn auth() -> AuthKey {
        "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret"
            .parse()
            .expect("key")
    }

    #[tokio::test]
    async fn speaks_http_with_basic_auth_and_reuses_connections() {
        let server = MockServer::start(|request| {
            if request.starts_with("GET /api/v1/namespaces ") {
                (200, r#"["guest"]"#.into())
            } else if request.starts_with("POST /api/v1/namespaces/_/actions/my%20action?blocking=true&result=true&timeout=500 ") {
                (200, r#"{"greeting":"hi"}"#.into())
            } else if request.starts_with("GET /api/v1/namespaces/_/actions/missing?code=false ") {
                (404, r#"{"error":"The requested resource does not exist.","code":"abc"}"#.into())
            } else {
                (500, r#"{"error":"unexpected request"}"#.into())
            }
        })
        .await;
        let client = Client::new(&server.api_host, auth()).expect("client");

        assert_eq!(client.list_namespaces().await.expect("list"), vec!["guest"]);
        let options = InvokeOptions {
            timeout_ms: Some(500),
            ..InvokeOptions::result()
        };
        let invoked = client
            .clone()
            .invoke("my action", json!({"name": "x"}), options)
            .await
            .expect("invoke");
        assert!(invoked.is_success());
        assert_eq!(invoked.activation_id().to_string(), "0a".repeat(16));
        let err = client.get_action("missing", false).await.expect_err("404");
        assert_eq!(
            err.to_string(),
            "The requested resource does not exist. (HTTP 404, code abc)"
        );

        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        let basic = format!(
            "authorization: Basic {}\r\n",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret"
            )
        );
        assert!(requests.iter().all(|r| r.contains(&basic)), "{requests:?}");
        assert!(requests[1].ends_with(r#"{"name":"x"}"#), "{}", requests[1]);
        assert!(
            requests[1]
                .to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        assert_eq!(
            server.connections.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one pooled connection for sequential requests"
        );
    }

    #[tokio::test]
    async fn unreachable_hosts_are_transport_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = Client::new(&format!("http://{addr}"), auth()).expect("client");
        let err = client.list_namespaces().await.expect_err("refused");
        assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
