//! The oracles: one per parser of untrusted bytes. Each panics exactly when
//! its property (its doc line) is broken; returning means the input was
//! handled, accepted or refused, as it should be.
//!
//! The property of every sealed or signed object is the same: the parser
//! never panics, and it accepts the bytes only if they are exactly the ones
//! that were sealed (or, for JSON, parse to exactly the object that was
//! signed). Framed objects must also encode canonically: what parses
//! re-encodes to the same bytes, so a digest of them names one object.

use clemmys_proto::broker::{
    AdmitReply, AdmitRequest, BrokerIdentity, BrokerReply, KeyRequest, open_broker_reply,
    open_broker_request, open_grant,
};
use clemmys_proto::chain::{SignedTicket, open_hop};
use clemmys_proto::chain_plan::SignedChainPlan;
use clemmys_proto::chain_session::SessionHop;
use clemmys_proto::code::{OpenedCode, SealedCode};
use clemmys_proto::invoke::{SealedInvocation, open_result};
use clemmys_proto::replay::ReplayWindow;
use clemmys_proto::session::{SessionInvocation, open_session_result};
use clemmys_proto::wire::{Reader, Writer};
use clemmys_proto::{Evidence, TeeKind};
use clemmys_whisk::action::{ActionPut, merge_parameters};
use clemmys_whisk::package::{PackagePut, package_parameters};
use clemmys_whisk::web;
use clemmys_whisk::{
    Action, ActionLimits, Activation, ActivationResponse, ActivationStatus, EntityName,
    FullyQualifiedName, NamespaceRecord, Package, Rule, RulePut, Trigger, TriggerPut,
};
use serde_json::Value;

use crate::fixtures::{
    self, ACTION, ACTIVATION_ID, DEFAULTS, MEASUREMENT, NAMESPACE, PLAN_SEQUENCE, fixtures,
};
use crate::input::Input;

/// Panics unless `accepted` holds exactly when `candidate` is `valid`.
fn accepted_only_if_unchanged(what: &str, valid: &[u8], candidate: &[u8], accepted: bool) {
    if accepted {
        assert_eq!(
            candidate, valid,
            "{what}: accepted bytes that differ from the sealed ones"
        );
    } else {
        assert_ne!(candidate, valid, "{what}: refused the valid bytes");
    }
}

/// Panics unless `parsed` re-encodes to `candidate`.
fn canonical(what: &str, candidate: &[u8], encoded: Vec<u8>) {
    assert_eq!(
        encoded, candidate,
        "{what}: parsed bytes re-encode differently (two encodings of one object)"
    );
}

/// One field of a [`wire`] program.
#[derive(Debug)]
enum Field {
    Bytes(Vec<u8>),
    Str(String),
    U64(u64),
    Array([u8; 16]),
}

/// `wire::Reader` never panics, and whatever it reads with `finish()`
/// succeeding re-encodes with `Writer` to the same bytes (the framing is
/// canonical). The input's first byte is the field count, the next bytes
/// the field types, the rest the frame after its domain.
pub fn wire(data: &[u8]) {
    const DOMAIN: &str = "clemmys/fuzz/v1";
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16).min(rest.len());
    let (program, body) = rest.split_at(count);
    let mut frame = Writer::new(DOMAIN).finish();
    frame.extend_from_slice(body);

    let Ok(mut reader) = Reader::new(&frame, DOMAIN) else {
        panic!("wire: the domain written by Writer did not read back");
    };
    let mut fields = Vec::with_capacity(program.len());
    for op in program {
        let field = match op % 4 {
            0 => reader.bytes().map(|b| Field::Bytes(b.to_vec())),
            1 => reader.str().map(|s| Field::Str(s.to_owned())),
            2 => reader.u64().map(Field::U64),
            _ => reader.array::<16>().map(Field::Array),
        };
        match field {
            Ok(field) => fields.push(field),
            Err(_) => return,
        }
    }
    if reader.finish().is_err() {
        return;
    }
    let encoded = fields
        .iter()
        .fold(Writer::new(DOMAIN), |writer, field| match field {
            Field::Bytes(bytes) => writer.bytes(bytes),
            Field::Str(text) => writer.str(text),
            Field::U64(value) => writer.u64(*value),
            Field::Array(array) => writer.bytes(array),
        })
        .finish();
    canonical("wire", &frame, encoded);
}

/// A sealed invocation (host → enclave) is accepted, signature and AEAD
/// both, only if it is exactly the one the client sealed; what parses
/// re-encodes to the same bytes.
pub fn invocation(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.invocation);
    let parsed = SealedInvocation::from_bytes(&candidate);
    if let Ok(sealed) = &parsed {
        canonical("invocation", &candidate, sealed.to_bytes());
    }
    let accepted = parsed.is_ok_and(|sealed| {
        sealed.verify_signature().is_ok() && sealed.open(&fx.action_keys, &fx.code_digest).is_ok()
    });
    accepted_only_if_unchanged("invocation", &fx.invocation, &candidate, accepted);
}

/// A session invocation (host → enclave) opens only if it is exactly the
/// one the client sealed; what parses re-encodes to the same bytes.
pub fn session(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.session_invocation);
    let parsed = SessionInvocation::from_bytes(&candidate);
    if let Ok(sealed) = &parsed {
        canonical("session", &candidate, sealed.to_bytes());
    }
    let accepted =
        parsed.is_ok_and(|sealed| sealed.open(&fx.session_keys, &fx.session_binding()).is_ok());
    accepted_only_if_unchanged("session", &fx.session_invocation, &candidate, accepted);
}

/// A session answer (enclave → provider → client) opens, and its receipt
/// verifies, only if it is exactly what the enclave sealed; then it carries
/// that result.
pub fn session_answer(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.session_answer);
    let expected =
        fixtures::session_expectation(&fx.session_keys, fx.code_digest, &fx.session_invocation);
    let opened = open_session_result(&candidate, &fx.session_keys, expected).ok();
    if let Some(body) = &opened {
        assert_eq!(
            serde_json::to_vec(&body.result).ok().as_deref(),
            Some(fixtures::RESULT),
            "session answer: result changed"
        );
    }
    accepted_only_if_unchanged(
        "session answer",
        &fx.session_answer,
        &candidate,
        opened.is_some(),
    );
}

/// Sealed code (store → enclave) opens only if it is exactly what the
/// owner sealed, and then it is the owner's module; what parses re-encodes
/// to the same bytes.
pub fn sealed_code(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.sealed_code);
    let parsed = SealedCode::from_bytes(&candidate);
    if let Ok(sealed) = &parsed {
        canonical("sealed code", &candidate, sealed.to_bytes());
    }
    let opened = parsed
        .ok()
        .and_then(|sealed| sealed.open(&fx.action_keys, &fx.code_binding()).ok());
    if let Some(code) = &opened {
        assert_eq!(
            code.as_slice(),
            fixtures::CODE,
            "sealed code: other code opened"
        );
    }
    accepted_only_if_unchanged("sealed code", &fx.sealed_code, &candidate, opened.is_some());
}

/// Opened code (what an enclave reads once sealed code opened and its
/// digest matched) never panics the parser: a default-parameters frame
/// splits into a code that is no such frame and a JSON object of
/// parameters; anything else is code as it stands; the unchanged fixture
/// gives back exactly its module and parameters.
pub fn opened_code(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.code_with_defaults);
    let Ok(opened) = OpenedCode::parse(&candidate) else {
        return;
    };
    match &opened.defaults {
        None => assert_eq!(
            opened.code,
            &candidate[..],
            "opened code: bytes without defaults were not taken as code"
        ),
        Some(_) => assert!(
            matches!(
                OpenedCode::parse(opened.code),
                Ok(OpenedCode { defaults: None, .. })
            ),
            "opened code: default parameters nested in default parameters"
        ),
    }
    if candidate[..] == fx.code_with_defaults[..] {
        let expected: serde_json::Map<String, Value> =
            serde_json::from_slice(DEFAULTS).expect("fixture defaults");
        assert_eq!(opened.code, fixtures::CODE, "opened code: other code");
        assert_eq!(
            opened.defaults.as_ref().map(|d| d.parameters()),
            Some(&expected),
            "opened code: other default parameters"
        );
    }
}

/// A chain hop (orchestrator → enclave) opens at its step only if it is
/// exactly the hop the previous step sealed, and then it carries that
/// step's index, ticket and value.
pub fn chain_hop(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.hop);
    let opened = open_hop(&candidate, NAMESPACE, "step1", &fx.step_keys[1]).ok();
    if let Some((hop, _)) = &opened {
        assert_eq!(hop.index, 1, "chain hop: index changed");
        assert_eq!(hop.ticket, fx.ticket, "chain hop: ticket changed");
        assert_eq!(
            hop.value.as_slice(),
            fixtures::PARAMS,
            "chain hop: value changed"
        );
    }
    accepted_only_if_unchanged("chain hop", &fx.hop, &candidate, opened.is_some());
}

/// A chain session hop opens under its step's hop key only if it is exactly
/// the hop that was sealed, and then it carries that value.
pub fn chain_session_hop(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.session_hop);
    let opened = SessionHop::from_bytes(&candidate)
        .and_then(|hop| hop.open(&fx.session_hop_key).map(|body| (hop.header, body)))
        .ok();
    if let Some((header, body)) = &opened {
        assert_eq!(
            (header.counter, header.index),
            (2, 1),
            "chain session hop: header changed"
        );
        assert_eq!(
            body.value.as_slice(),
            fixtures::PARAMS,
            "chain session hop: value changed"
        );
    }
    accepted_only_if_unchanged(
        "chain session hop",
        &fx.session_hop,
        &candidate,
        opened.is_some(),
    );
}

/// A chain ticket (JSON inside a hop) verifies only if it parses to exactly
/// the plan the client signed: same id, steps, order, client and time.
pub fn chain_ticket(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.ticket_json);
    let Ok(ticket) = serde_json::from_slice::<SignedTicket>(&candidate) else {
        return;
    };
    if ticket.verify().is_ok() {
        assert_eq!(
            ticket.ticket, fx.ticket.ticket,
            "chain ticket: a changed plan verified"
        );
    }
}

/// A chain plan (controller → client) verifies for its sequence only if it
/// is exactly the plan the owner signed, and what parses re-encodes to the
/// same bytes.
pub fn chain_plan(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.plan_bytes);
    let Ok(plan) = SignedChainPlan::from_bytes(&candidate) else {
        return;
    };
    assert!(
        plan.to_bytes() == *candidate,
        "chain plan: framing not injective"
    );
    if let Ok(verified) = plan.verify(&[fx.client.id()], NAMESPACE, PLAN_SEQUENCE, None) {
        assert_eq!(
            verified.plan(),
            fx.plan.unverified(),
            "chain plan: a changed plan verified"
        );
    }
}

/// A sealed result (host → client) opens only if it is exactly what the
/// enclave sealed, and its receipt then names this activation and action.
pub fn answer(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.sealed_result);
    let opened = open_result(&candidate, &fx.answer_keys, ACTIVATION_ID, &fx.nonce).ok();
    if let Some(body) = &opened {
        let receipt = &body.receipt;
        assert!(
            receipt.verify_signature().is_ok(),
            "answer: receipt signature broken"
        );
        assert_eq!(receipt.receipt.activation_id, ACTIVATION_ID);
        assert_eq!(receipt.receipt.action, ACTION);
    }
    accepted_only_if_unchanged("answer", &fx.sealed_result, &candidate, opened.is_some());
}

/// Evidence (host → client, broker) verifies only if it is exactly what the
/// platform signed, and then reports its measurement; SGX quotes made of
/// fuzz never verify.
pub fn evidence(data: &[u8]) {
    let fx = fixtures();
    let verifier = &fx.verifier;
    let input = Input::of(data);
    let candidate = input.bytes(&fx.evidence.data);
    let sim = Evidence {
        tee: TeeKind::Sim,
        data: candidate.to_vec(),
    };
    let verified = verifier.verify(&sim).ok();
    if let Some(verified) = &verified {
        assert_eq!(
            verified.measurement(),
            MEASUREMENT,
            "evidence: measurement changed"
        );
        assert!(
            !verified.is_hardware(),
            "evidence: sim evidence claims hardware"
        );
    }
    accepted_only_if_unchanged(
        "evidence",
        &fx.evidence.data,
        &candidate,
        verified.is_some(),
    );
    if let Input::Raw(bytes) = input {
        let quote = Evidence {
            tee: TeeKind::SgxDcap,
            data: bytes.to_vec(),
        };
        assert!(
            verifier.verify(&quote).is_err(),
            "evidence: fuzz verified as an SGX quote"
        );
    }
}

/// An RA-TLS certificate (network → client) never panics the parser, and
/// verifies only if it carries exactly the fixture gateway's key, identity
/// and evidence (its other parts are not trusted, so they may change).
pub fn ratls_certificate(data: &[u8]) {
    use clemmys_gateway::ratls::RaTlsCertificate;
    let fx = fixtures();
    let input = Input::of(data);
    let candidate = input.bytes(&fx.ratls_certificate);
    let Ok(parsed) = RaTlsCertificate::parse(&candidate) else {
        return;
    };
    let valid = RaTlsCertificate::parse(&fx.ratls_certificate).expect("the fixture parses");
    if parsed.verify(&fx.verifier, MEASUREMENT).is_ok() {
        assert_eq!(
            parsed.spki_der(),
            valid.spki_der(),
            "ratls: verified with another key"
        );
        assert_eq!(
            parsed.gateway(),
            valid.gateway(),
            "ratls: verified for another gateway"
        );
        assert_eq!(
            parsed.evidence(),
            valid.evidence(),
            "ratls: verified other evidence"
        );
    }
}

/// A signed credential request (network → gateway) never panics the
/// parser, and verifies for the fixture gateway and owner only if it is
/// the owner's request unchanged (action, UUID, gateway, challenge).
pub fn credential_request(data: &[u8]) {
    use clemmys_gateway::credentials::SignedCredentialRequest;
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.credential_request_json);
    let Ok(parsed) = serde_json::from_slice::<SignedCredentialRequest>(&candidate) else {
        return;
    };
    let valid: SignedCredentialRequest =
        serde_json::from_slice(&fx.credential_request_json).expect("the fixture parses");
    if let Ok((request, _)) = parsed.verify(&fx.credential_gateway, &fx.client.id()) {
        assert_eq!(
            request, valid.request,
            "credential request: verified a changed request"
        );
    }
}

/// A broker request (network → broker) opens only if it is exactly what
/// the client sealed and signed, and then it is the client's request.
pub fn broker_request(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.broker_request);
    let opened = open_broker_request(&fx.broker_keys, &candidate).ok();
    if let Some((request, _)) = &opened {
        assert_eq!(
            request, &fx.broker_request_body,
            "broker request: changed request opened"
        );
    }
    accepted_only_if_unchanged(
        "broker request",
        &fx.broker_request,
        &candidate,
        opened.is_some(),
    );
}

/// A broker reply (network → client) opens only if it is exactly what the
/// broker sealed, and then it is the broker's reply and state version.
pub fn broker_reply(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.broker_reply);
    let opened = open_broker_reply(&candidate, &fx.broker_reply_key).ok();
    if let Some(opened) = &opened {
        assert_eq!(opened.state_version, 7, "broker reply: changed version");
        assert_eq!(
            opened.reply,
            BrokerReply::Action(fx.grant_descriptor.clone()),
            "broker reply: changed reply opened"
        );
    }
    accepted_only_if_unchanged(
        "broker reply",
        &fx.broker_reply,
        &candidate,
        opened.is_some(),
    );
}

/// A key grant (network → enclave) opens only if it is exactly what the
/// broker sealed and signed for this enclave's request, and then it grants
/// the action asked for with the broker's descriptor.
pub fn grant(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.grant);
    let opened = open_grant(
        &candidate,
        &fx.key_request,
        &fx.enclave,
        &fx.broker_enclave.public().signing,
    )
    .ok();
    if let Some(grant) = &opened {
        assert_eq!(
            grant.action, fx.grant_descriptor,
            "grant: changed descriptor opened"
        );
    }
    accepted_only_if_unchanged("grant", &fx.grant, &candidate, opened.is_some());
}

/// A key request as JSON (network → broker's `/grant` route) never panics
/// parsing or verifying, and verifies only when its evidence is the
/// platform's and binds the keys it carries.
pub fn key_request(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.key_request_json);
    let Ok(request) = serde_json::from_slice::<KeyRequest>(&candidate) else {
        return;
    };
    let Ok(verified) = fx.verifier.verify(&request.evidence) else {
        return;
    };
    if verified.check_binds(&request.enclave).is_ok() {
        assert_eq!(
            (&request.evidence, &request.enclave),
            (&fx.key_request.evidence, &fx.key_request.enclave),
            "key request: changed evidence or keys verified"
        );
    }
}

/// The broker's identity as JSON (network → the remote broker link and
/// clients) never panics, and verifies only as the broker's own.
pub fn broker_identity(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.broker_identity_json);
    let Ok(identity) = serde_json::from_slice::<BrokerIdentity>(&candidate) else {
        return;
    };
    let Ok(verified) = fx.verifier.verify(&identity.evidence) else {
        return;
    };
    if verified.check_binds(&identity.keys).is_ok() {
        assert_eq!(
            identity, fx.broker_identity,
            "broker identity: changed identity verified"
        );
    }
}

/// An admission request as JSON (enclave → broker's `/admit` route, over
/// the provider's network) never panics, its MAC verifies only for the
/// request the enclave made, and whatever numbers it carries, the replay
/// window checks them without overflow.
pub fn admit_request(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.admit_request_json);
    let Ok(request) = serde_json::from_slice::<AdmitRequest>(&candidate) else {
        return;
    };
    if request.verify(&fx.admission_key).is_ok() {
        assert_eq!(
            request, fx.admit_request,
            "admission request: changed request verified"
        );
    }
    let mut window = ReplayWindow::new(fx.admit_request.timestamp_ms, 300_000, 30_000);
    let _ = window.check(
        &request.namespace,
        [0; 16],
        request.timestamp_ms,
        request.timestamp_ms,
    );
}

/// The broker's admission answer as JSON (broker → enclave, over the
/// provider's network) never panics and verifies only as the broker's
/// answer to this request: a refusal cannot become an admission, nor its
/// replay floor move.
pub fn admit_reply(data: &[u8]) {
    let fx = fixtures();
    let candidate = Input::of(data).bytes(&fx.admit_reply_json);
    let Ok(reply) = serde_json::from_slice::<AdmitReply>(&candidate) else {
        return;
    };
    if reply.verify(&fx.admission_key, &fx.admit_request).is_ok() {
        assert_eq!(
            reply, fx.admit_reply,
            "admission answer: changed answer verified"
        );
    }
}

/// A valid `PUT` body of an action, for [`action_put`]'s edits.
pub const ACTION_PUT: &[u8] = br#"{"exec":{"kind":"sequence","components":["/guest/a","b","/guest/pkg/c"]},"limits":{"timeout":1000,"memory":256},"parameters":[{"key":"x","value":1}],"annotations":[{"key":"final","value":true}]}"#;

/// An action `PUT` body (API user → controller) never panics the parsing,
/// limit checks, name parsing or parameter merging; limits that are
/// accepted are in OpenWhisk's ranges, and a name that parses prints as
/// text that parses back to it.
pub fn action_put(data: &[u8]) {
    let candidate = Input::of(data).bytes(ACTION_PUT);
    let Ok(put) = serde_json::from_slice::<ActionPut>(&candidate) else {
        return;
    };
    if let Some(limits) = &put.limits
        && let Ok(updated) = ActionLimits::default().updated_with(limits)
    {
        assert!(
            updated.validate().is_ok(),
            "action put: accepted limits out of range"
        );
    }
    let components = put
        .exec
        .iter()
        .flat_map(|exec| exec.components.iter().flatten());
    for component in components {
        if let Ok(name) = FullyQualifiedName::parse(component, Some(NAMESPACE)) {
            assert_eq!(
                FullyQualifiedName::parse(&name.to_string(), None).ok(),
                Some(name),
                "action put: a component name does not print as itself"
            );
        }
    }
    if let Some(parameters) = &put.parameters {
        let annotations = put.annotations.clone().unwrap_or_default();
        let invoke = parameters.to_object();
        let _ = merge_parameters(parameters, &annotations, invoke);
    }
}

/// A valid `PUT` body of an alarm trigger that is also a rule's, for
/// [`trigger_put`]'s edits.
pub const TRIGGER_PUT: &[u8] = br#"{"parameters":[{"key":"cron","value":"*/5 * * * * *"},{"key":"a","value":1}],"annotations":[{"key":"feed","value":"/whisk.system/alarms/alarm"},{"key":"a","value":2}],"trigger":"/guest/t","action":"pkg/echo"}"#;

/// A trigger or rule `PUT` body (API user → controller) never panics the
/// parsing, a rule's trigger and action names, the event merge or an
/// alarm's cron pattern; the event's values win the merge, and a name
/// that parses prints as itself.
pub fn trigger_put(data: &[u8]) {
    let candidate = Input::of(data).bytes(TRIGGER_PUT);
    if let Ok(rule) = serde_json::from_slice::<RulePut>(&candidate) {
        for name in [rule.trigger, rule.action].into_iter().flatten() {
            if let Ok(parsed) = FullyQualifiedName::parse(&name, Some(NAMESPACE)) {
                assert_eq!(
                    FullyQualifiedName::parse(&parsed.to_string(), None).ok(),
                    Some(parsed),
                    "rule put: a name does not print as itself"
                );
            }
        }
    }
    let Ok(put) = serde_json::from_slice::<TriggerPut>(&candidate) else {
        return;
    };
    let parameters = put.parameters.unwrap_or_default();
    if let Some(serde_json::Value::String(pattern)) = parameters.get("cron") {
        let _ = croner::parser::CronParser::new().parse(pattern);
    }
    let Ok(name) = EntityName::new("t") else {
        return;
    };
    let trigger = Trigger {
        namespace: name.clone(),
        name,
        version: semver::Version::new(0, 0, 1),
        publish: false,
        parameters,
        annotations: Default::default(),
        rules: Default::default(),
        updated: 0,
    };
    // The annotations stand in for an event.
    let event = put.annotations.unwrap_or_default().to_object();
    let merged = trigger.event_arguments(&event);
    for (key, value) in &event {
        assert_eq!(
            merged.get(key),
            Some(value),
            "trigger fire: the event lost to the trigger's parameters"
        );
    }
}

/// A valid web request for [`web_request`]'s edits: a selector byte (the
/// content type and the raw flag), the query string, a newline, the body.
pub const WEB_REQUEST: &[u8] = b"\x00name=Jane&n=1\n{\"greeting\":\"hi\",\"list\":[1,2]}";

/// The content types [`web_request`] chooses from.
const WEB_CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
    Some("image/png"),
    Some("application/vnd.api+json; charset=utf-8"),
    None,
];

/// A web action's request (any caller → controller) never panics the
/// body, query and argument parsing; a plain action's arguments never
/// take an `__ow_*` value or a final parameter from the caller, and a raw
/// one's hold exactly the context, the raw query and the body.
pub fn web_request(data: &[u8]) {
    let candidate = Input::of(data).bytes(WEB_REQUEST);
    let Some((&selector, rest)) = candidate.split_first() else {
        return;
    };
    let Some(&content_type) =
        WEB_CONTENT_TYPES.get(usize::from(selector) % WEB_CONTENT_TYPES.len())
    else {
        return;
    };
    let raw = selector & 0x80 != 0;
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => rest.split_at(at),
        None => (rest, &[][..]),
    };
    let body = body.get(1..).unwrap_or_default();
    let query = String::from_utf8_lossy(query).into_owned();
    let Ok(parsed) = web::request_body(content_type, body, raw) else {
        return;
    };
    let headers: [(&str, &[u8]); 1] = [("content-type", content_type.unwrap_or("").as_bytes())];
    let mut request = web::WebRequest::new("POST", headers, "/p".into(), query.clone());
    request.body = parsed;
    let immutable = ["fixed".to_owned()];
    let Ok(arguments) = request.arguments(raw, &immutable) else {
        assert!(!raw, "web request: a raw action's request was refused");
        return;
    };
    assert_eq!(arguments.get("__ow_method"), Some(&Value::from("post")));
    assert_eq!(arguments.get("__ow_path"), Some(&Value::from("/p")));
    assert!(
        arguments.get("__ow_headers").is_some_and(Value::is_object),
        "web request: the headers were replaced"
    );
    assert!(
        !arguments.contains_key("__ow_user"),
        "web request: a caller set __ow_user"
    );
    if raw {
        assert_eq!(arguments.get("__ow_query"), Some(&Value::from(query)));
        assert!(
            arguments.keys().all(|key| key.starts_with("__ow_")),
            "web request: a raw action got parsed parameters"
        );
    } else {
        assert!(
            !arguments.contains_key("fixed") && !arguments.contains_key("__ow_query"),
            "web request: a caller overrode a final or reserved name"
        );
    }
}

/// A valid action result for [`web_result`]'s edits.
pub const WEB_RESULT: &[u8] = br#"{"statusCode":201,"headers":{"Content-Type":"image/png","Set-Cookie":["a=1","b=2"],"X-N":7},"body":"AAEC/w==","html":"<b>x</b>","text":{"deep":[1,"two"]},"svg":"<svg/>"}"#;

/// A web action's result (action code → controller) never panics its
/// rendering under any extension, success or application error; an answer
/// has a status in 100-599, only valid header names and values, a content
/// type that is a media type, and `.json` answers that are JSON.
pub fn web_result(data: &[u8]) {
    let candidate = Input::of(data).bytes(WEB_RESULT);
    let Ok(result) = serde_json::from_slice::<Value>(&candidate) else {
        return;
    };
    let responses = [
        ActivationResponse::success(result.clone()),
        ActivationResponse::new(
            ActivationStatus::ApplicationError,
            serde_json::json!({ "error": result }),
        ),
    ];
    let extensions = [
        web::Extension::Http,
        web::Extension::Json,
        web::Extension::Html,
        web::Extension::Svg,
        web::Extension::Text,
    ];
    for response in &responses {
        for extension in extensions {
            for path in ["", "/text", "/text/deep/1", "/headers/X-N"] {
                let Ok(answer) = web::web_answer(extension, response, path) else {
                    continue;
                };
                assert!(
                    (100..=599).contains(&answer.status),
                    "web result: status {} answered",
                    answer.status
                );
                for (name, value) in &answer.headers {
                    assert!(
                        web::is_token(name) && web::is_field_value(value),
                        "web result: invalid header {name:?}: {value:?}"
                    );
                    assert!(
                        !name.eq_ignore_ascii_case("content-type"),
                        "web result: a second content type"
                    );
                }
                if let Some(content_type) = &answer.content_type {
                    assert!(
                        web::media_type(content_type).is_some()
                            && web::is_field_value(content_type),
                        "web result: content type {content_type:?}"
                    );
                }
                if extension == web::Extension::Json {
                    assert!(
                        serde_json::from_slice::<Value>(&answer.body).is_ok(),
                        "web result: a .json answer is not JSON"
                    );
                }
            }
        }
    }
}

/// A valid `PUT` body of a binding, for [`package_put`]'s edits.
pub const PACKAGE_PUT: &[u8] = br#"{"publish":true,"binding":{"namespace":"/other","name":"tools"},"parameters":[{"key":"a","value":1},{"key":"b","value":{"c":[true,null]}}],"annotations":[{"key":"a","value":2}]}"#;

/// A package or binding `PUT` body (API user → controller) never panics
/// the parsing, the binding's names or the parameter inheritance; a
/// binding's parameters win over its package's, the package's survive
/// where the binding has none, and a name that parses prints as itself.
pub fn package_put(data: &[u8]) {
    let candidate = Input::of(data).bytes(PACKAGE_PUT);
    let Ok(put) = serde_json::from_slice::<PackagePut>(&candidate) else {
        return;
    };
    if let Some(binding) = put.binding.as_ref().filter(|binding| !binding.is_empty()) {
        let names = [binding.namespace.as_deref(), binding.name.as_deref()];
        for text in names.into_iter().flatten() {
            let bare = text.trim_start_matches('/');
            if let Ok(name) = EntityName::new(bare) {
                assert_eq!(
                    EntityName::new(name.as_str()).ok().as_ref(),
                    Some(&name),
                    "package put: a binding name does not print as itself"
                );
            }
        }
    }
    let Ok(name) = EntityName::new("tools") else {
        return;
    };
    let parameters = put.parameters.unwrap_or_default();
    // The annotations stand in for the binding's own parameters.
    let binding_parameters = put.annotations.unwrap_or_default();
    let package = |parameters| Package {
        namespace: name.clone(),
        name: name.clone(),
        version: semver::Version::new(0, 0, 1),
        publish: put.publish.unwrap_or(false),
        binding: None,
        parameters,
        annotations: Default::default(),
        updated: 0,
    };
    let shared = package(parameters);
    let binding = package(binding_parameters);
    let merged = package_parameters(&shared, Some(&binding));
    let bound = binding.parameters.to_object();
    for (key, value) in &bound {
        assert_eq!(
            merged.get(key),
            Some(value),
            "package parameters: the binding's value lost to its package's"
        );
    }
    for (key, value) in shared.parameters.to_object() {
        if !bound.contains_key(&key) {
            assert_eq!(
                merged.get(&key),
                Some(&value),
                "package parameters: a package's parameter was lost"
            );
        }
    }
}

/// A valid stored activation record for [`store_record`]'s edits: the
/// selector byte `0` (0x30, an activation), then the record as the store
/// keeps it.
pub const STORE_RECORD: &[u8] = br#"0{"namespace":"guest","name":"hello","subject":"guest","activationId":"0123456789abcdef0123456789abcdef","version":"0.0.1","publish":false,"start":1,"end":3,"duration":2,"cause":"fedcba9876543210fedcba9876543210","response":{"status":"success","success":true,"result":{"greeting":"hi","n":1.5e300}},"logs":["2026-12-04T00:00:00.000Z stdout: hi"],"annotations":[{"key":"kind","value":"wasm:wasi"}]}"#;

/// Decodes `bytes` as a `T` the way the store does and, if that works,
/// panics unless the value re-encodes to bytes that decode to itself.
fn stored_round_trip<T>(what: &str, bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(decoded) = serde_json::from_slice::<T>(bytes) else {
        return;
    };
    let encoded = match serde_json::to_vec(&decoded) {
        Ok(encoded) => encoded,
        Err(error) => panic!("{what}: a decoded record does not encode: {error}"),
    };
    match serde_json::from_slice::<T>(&encoded) {
        Ok(again) => assert_eq!(
            again, decoded,
            "{what}: a record changed on its way through the store"
        ),
        Err(error) => panic!("{what}: a record the store wrote does not decode: {error}"),
    }
}

/// A record read back from the store (the provider's disk, or its
/// database) never panics the decoding, and every record that decodes is
/// written back as bytes that decode to the same record: what the store
/// writes, it can read. The first byte chooses the record's type.
pub fn store_record(data: &[u8]) {
    let candidate = Input::of(data).bytes(STORE_RECORD);
    let Some((&selector, record)) = candidate.split_first() else {
        return;
    };
    match selector % 6 {
        0 => stored_round_trip::<Activation>("activation", record),
        1 => stored_round_trip::<Action>("action", record),
        2 => stored_round_trip::<Package>("package", record),
        3 => stored_round_trip::<Trigger>("trigger", record),
        4 => stored_round_trip::<Rule>("rule", record),
        _ => stored_round_trip::<NamespaceRecord>("namespace", record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The checks can fail: an oracle is only as good as them.
    #[test]
    #[should_panic(expected = "refused the valid bytes")]
    fn refusing_the_valid_bytes_is_a_failure() {
        accepted_only_if_unchanged("t", b"valid", b"valid", false);
    }

    #[test]
    #[should_panic(expected = "accepted bytes that differ")]
    fn accepting_changed_bytes_is_a_failure() {
        accepted_only_if_unchanged("t", b"valid", b"valiD", true);
    }

    #[test]
    #[should_panic(expected = "two encodings of one object")]
    fn a_second_encoding_is_a_failure() {
        canonical("t", b"\x00\x01", b"\x01".to_vec());
    }

    #[test]
    fn the_valid_fixtures_are_accepted() {
        // Each oracle panics if it refuses its untouched valid object.
        for target in crate::TARGETS {
            (target.oracle)(&crate::input::edits(&[]));
        }
    }
}
