//! Signed chain plans: the provider, holding every namespace's API key,
//! rewrites a confidential sequence through the REST API (its components,
//! its plan annotation) and the owner's client refuses to run it, with an
//! error naming what changed, before anything is sealed or run.

use clemmys_client::confidential::ConfidentialError;
use clemmys_proto::chain_plan::{
    CHAIN_PLAN_ANNOTATION, ChainPlan, ChainPlanError, PlanComponent, SignedChainPlan,
};
use clemmys_proto::identity::ClientIdentity;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::chains::setup;
use crate::common::{Owner, TestServer, annotation};

/// Plays the provider: overwrites sequence `name` through the API with
/// `components` and, when given, `annotations` (else the stored ones stay).
async fn provider_put(
    server: &TestServer,
    name: &str,
    components: &[&str],
    annotations: Option<Value>,
) {
    let components: Vec<String> = components.iter().map(|c| format!("/guest/{c}")).collect();
    let mut body = json!({"exec": {"kind": "sequence", "components": components}});
    if let Some(annotations) = annotations {
        body["annotations"] = annotations;
    }
    let answer = server
        .call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            Some(body),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
}

/// The stored plan annotation of sequence `name`, as the provider reads it.
async fn stored_plan(server: &TestServer, name: &str) -> Value {
    let action = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/actions/{name}"),
            None,
        )
        .await;
    annotation(&action.json, CHAIN_PLAN_ANNOTATION)
        .expect("a signed plan")
        .clone()
}

fn plan_annotation(plan: &SignedChainPlan) -> Value {
    use base64::Engine;
    json!([{
        "key": CHAIN_PLAN_ANNOTATION,
        "value": base64::engine::general_purpose::STANDARD.encode(plan.to_bytes()),
    }])
}

/// Invokes `name` as the owner and answers the plan error it must fail with.
async fn refused_plan(owner: &Owner, name: &str) -> ChainPlanError {
    match owner.invoke(name, json!({"name": "Ada"})).await {
        Err(ConfidentialError::ChainPlan(error)) => error,
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(opened) => panic!("the changed sequence ran: {}", opened.result),
    }
}

/// A node with the owner's confidential sequence `pipe` = echo, greet.
async fn pipe() -> (TestServer, Owner) {
    let (server, owner) = setup().await;
    owner.create_sequence("pipe", &["echo", "greet"]).await;
    (server, owner)
}

#[tokio::test]
async fn the_owners_signed_sequence_runs() {
    let (_server, owner) = pipe().await;
    let opened = owner
        .invoke("pipe", json!({"name": "Ada"}))
        .await
        .expect("runs");
    assert_eq!(opened.result, json!({"payload": "Hello, Ada!"}));
}

#[tokio::test]
async fn chain_plan_shortened_by_the_provider_is_refused() {
    let (server, owner) = pipe().await;
    provider_put(&server, "pipe", &["greet"], None).await;
    assert_eq!(
        refused_plan(&owner, "pipe").await,
        ChainPlanError::ComponentsDiffer
    );
}

#[tokio::test]
async fn chain_plan_reordered_by_the_provider_is_refused() {
    let (server, owner) = pipe().await;
    provider_put(&server, "pipe", &["greet", "echo"], None).await;
    assert_eq!(
        refused_plan(&owner, "pipe").await,
        ChainPlanError::ComponentsDiffer
    );
}

#[tokio::test]
async fn chain_plan_step_repeated_by_the_provider_is_refused() {
    let (server, owner) = pipe().await;
    provider_put(&server, "pipe", &["echo", "echo", "greet"], None).await;
    assert_eq!(
        refused_plan(&owner, "pipe").await,
        ChainPlanError::ComponentsDiffer
    );
}

#[tokio::test]
async fn chain_plan_step_replaced_by_another_owner_action_is_refused() {
    let (server, owner) = pipe().await;
    provider_put(&server, "pipe", &["echo", "shout"], None).await;
    assert_eq!(
        refused_plan(&owner, "pipe").await,
        ChainPlanError::ComponentsDiffer
    );
}

#[tokio::test]
async fn chain_plan_signature_removed_is_refused() {
    let (server, owner) = pipe().await;
    provider_put(&server, "pipe", &["echo", "greet"], Some(json!([]))).await;
    assert_eq!(refused_plan(&owner, "pipe").await, ChainPlanError::Missing);
}

#[tokio::test]
async fn chain_plan_copied_from_another_sequence_is_refused() {
    let (server, owner) = pipe().await;
    // Another sequence of the owner, with the changed steps the provider
    // wants: its signed plan is copied onto pipe.
    owner.create_sequence("other", &["greet"]).await;
    let copied = stored_plan(&server, "other").await;
    provider_put(
        &server,
        "pipe",
        &["greet"],
        Some(json!([{"key": CHAIN_PLAN_ANNOTATION, "value": copied}])),
    )
    .await;
    assert!(matches!(
        refused_plan(&owner, "pipe").await,
        ChainPlanError::OtherSequence { name, .. } if name == "other"
    ));
}

#[tokio::test]
async fn chain_plan_forged_by_the_provider_is_refused() {
    let (server, owner) = pipe().await;
    let provider = ClientIdentity::generate(&mut clemmys_tee::os_rng());
    let shortened = |owner_id| ChainPlan {
        owner: owner_id,
        namespace: "guest".into(),
        name: "pipe".into(),
        version: u64::MAX,
        components: vec![PlanComponent {
            owner: owner_id,
            namespace: "guest".into(),
            name: "greet".into(),
        }],
    };
    // Claiming the owner's identity: the signature fails.
    let forged = shortened(owner.client.client_id()).sign(&provider);
    provider_put(&server, "pipe", &["greet"], Some(plan_annotation(&forged))).await;
    assert_eq!(
        refused_plan(&owner, "pipe").await,
        ChainPlanError::BadSignature
    );
    // Under the provider's own identity: not an owner the client trusts.
    let own = shortened(provider.id()).sign(&provider);
    provider_put(&server, "pipe", &["greet"], Some(plan_annotation(&own))).await;
    let fresh = owner.second_client(&server).await;
    assert_eq!(
        refused_plan(&fresh, "pipe").await,
        ChainPlanError::UntrustedOwner(provider.id())
    );
}

#[tokio::test]
async fn older_signed_chain_plan_restored_is_refused() {
    let (server, owner) = pipe().await;
    let old = stored_plan(&server, "pipe").await;
    // The owner changes the sequence; the new plan runs.
    owner
        .create_sequence("pipe", &["echo", "shout", "echo"])
        .await;
    let opened = owner
        .invoke("pipe", json!({"secret": "turtle"}))
        .await
        .expect("the new plan runs");
    assert_eq!(opened.result, json!({"shout": "TURTLE"}));
    // The provider restores the old, genuinely signed definition; a client
    // of the owner that never saw it in this process still refuses it.
    provider_put(
        &server,
        "pipe",
        &["echo", "greet"],
        Some(json!([{"key": CHAIN_PLAN_ANNOTATION, "value": old}])),
    )
    .await;
    let fresh = owner.second_client(&server).await;
    assert!(matches!(
        refused_plan(&fresh, "pipe").await,
        ChainPlanError::RolledBack { version, newest } if version < newest
    ));
}

#[tokio::test]
async fn a_chain_plan_annotation_that_is_no_plan_is_refused_by_the_controller() {
    let (server, owner) = pipe().await;
    let genuine = stored_plan(&server, "pipe").await;
    let truncated = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = engine
            .decode(genuine.as_str().expect("base64"))
            .expect("base64");
        engine.encode(&bytes[..bytes.len() - 1])
    };
    for bad in [json!("not base64!"), json!(7), json!(truncated)] {
        let answer = server
            .call(
                Method::PUT,
                "/api/v1/namespaces/_/actions/pipe?overwrite=true",
                Some(json!({
                    "exec": {"kind": "sequence", "components": ["/guest/echo", "/guest/greet"]},
                    "annotations": [{"key": CHAIN_PLAN_ANNOTATION, "value": bad}],
                })),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.json
        );
    }
    // The stored sequence is unchanged and still runs.
    assert_eq!(stored_plan(&server, "pipe").await, genuine);
    owner
        .invoke("pipe", json!({"name": "Ada"}))
        .await
        .expect("runs");
}

#[tokio::test]
async fn a_confidential_sequence_as_a_component_is_refused_by_name() {
    let (_server, owner) = setup().await;
    crate::chains::create(&owner, "pipe", &["echo", "greet"]).await;
    let nested = owner
        .client
        .put_sequence(
            "outer",
            &["pipe".to_owned(), "echo".to_owned()],
            Default::default(),
            false,
        )
        .await;
    assert!(
        matches!(&nested, Err(ConfidentialError::NestedChain(name)) if name == "pipe"),
        "{nested:?}"
    );
}

/// The owner's home identity, as the provider never holds it: used here
/// only to make the plans the owner's client really signed (a PUT whose
/// answer the provider forged, another deployment's plan).
fn owners_identity(owner: &Owner) -> ClientIdentity {
    clemmys_client::confidential::ClientHome::open(owner.home.path())
        .expect("home")
        .identity()
        .expect("identity")
}

/// The owner's signed plan of `pipe` at `version`, of `steps`.
fn owners_plan(identity: &ClientIdentity, version: u64, steps: &[&str]) -> SignedChainPlan {
    ChainPlan {
        owner: identity.id(),
        namespace: "guest".into(),
        name: "pipe".into(),
        version,
        components: steps
            .iter()
            .map(|step| PlanComponent {
                owner: identity.id(),
                namespace: "guest".into(),
                name: (*step).into(),
            })
            .collect(),
    }
    .sign(identity)
}

/// The version of `pipe`'s stored plan.
async fn stored_version(server: &TestServer) -> u64 {
    use base64::Engine;
    let stored = stored_plan(server, "pipe").await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(stored.as_str().expect("a string"))
        .expect("base64");
    SignedChainPlan::from_bytes(&bytes)
        .expect("a plan")
        .unverified()
        .version
}

/// A plan the owner signed but never registered with the broker (the
/// provider kept the PUT of an update and answered it with an error, so the
/// owner's client registered nothing, or copied the plan from another
/// deployment of the same sequence) is refused by every client, also at
/// the registered version with other steps. Failed before clients compared
/// the plan with the broker's registration: its version was only a floor,
/// so both plans ran (a provider review's finding R1).
#[tokio::test]
async fn an_owners_plan_the_broker_never_registered_is_refused() {
    let (server, owner) = pipe().await;
    let identity = owners_identity(&owner);
    let registered = stored_version(&server).await;
    for (version, steps) in [
        (
            registered.saturating_add(10_000),
            &["echo", "shout", "echo"][..],
        ),
        (registered, &["shout"][..]),
    ] {
        let unregistered = owners_plan(&identity, version, steps);
        provider_put(&server, "pipe", steps, Some(plan_annotation(&unregistered))).await;
        let fresh = owner.second_client(&server).await;
        assert!(matches!(
            refused_plan(&fresh, "pipe").await,
            ChainPlanError::Unregistered { version: shown, registered: at }
                if shown == version && at == registered
        ));
    }
}

/// A sequence that was never registered (made before sequences were, or
/// whose registration the provider dropped), replaced by a confidential
/// action: the provider puts the old sequence back, and every client,
/// the owner's included, refuses it since the broker registers the name
/// as an action. Failed before: the action's version (1) was below the
/// plan's, so the retired chain ran instead of the action (a provider
/// review's finding R2).
#[tokio::test]
async fn an_unregistered_sequence_put_back_over_its_action_is_refused() {
    let (server, owner) = setup().await;
    let identity = owners_identity(&owner);
    let old = owners_plan(&identity, clemmys_whisk::now_ms(), &["echo", "greet"]);
    provider_put(
        &server,
        "pipe",
        &["echo", "greet"],
        Some(plan_annotation(&old)),
    )
    .await;
    owner
        .invoke("pipe", json!({"name": "Ada"}))
        .await
        .expect("the unregistered sequence runs, as one made before registration");
    owner.deploy("pipe", "secret").await;
    tokio::time::sleep(clemmys_client::confidential::PLAN_RECHECK_INTERVAL).await;
    let opened = owner
        .invoke("pipe", json!({"secret": "turtle"}))
        .await
        .expect("the action runs");
    assert_eq!(opened.result, json!({"shout": "TURTLE"}));
    provider_put(
        &server,
        "pipe",
        &["echo", "greet"],
        Some(plan_annotation(&old)),
    )
    .await;
    tokio::time::sleep(clemmys_client::confidential::PLAN_RECHECK_INTERVAL).await;
    for client in [&owner, &owner.second_client(&server).await] {
        assert!(matches!(
            refused_plan(client, "pipe").await,
            ChainPlanError::ReplacedByAction { .. }
        ));
    }
}
