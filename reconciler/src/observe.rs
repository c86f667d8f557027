//! Observe a live cluster: list Nodes, Pods and PodDisruptionBudgets and turn
//! them into the same kubectl-style `List` that `cupcake plan --snapshot`
//! reads, so a live plan and a snapshot plan go through one reader.

use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Page size for list calls; large clusters are read in pages.
const PAGE: u32 = 500;

/// Why the cluster could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no usable kubeconfig (in-cluster or $KUBECONFIG): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("listing {what}: {source}")]
    List {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("encoding the snapshot: {0}")]
    Encode(#[source] serde_json::Error),
}

/// A client from a kubeconfig file, or inferred (in-cluster, then $KUBECONFIG / ~/.kube/config).
///
/// kube's client retries 429/503/504 answers with backoff (up to 15 times);
/// that suits reads, but an eviction blocked by a PDB also answers 429 — code
/// that must see a refusal (drains) builds its client with [`config`] and
/// `default_retry = false`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ObserveError> {
    Client::try_from(config(kubeconfig).await?).map_err(ObserveError::Client)
}

/// The client configuration [`client`] uses.
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config, ObserveError> {
    install_crypto_provider();
    let config = match kubeconfig {
        Some(p) => {
            let kc = Kubeconfig::read_from(p).map_err(|source| ObserveError::Kubeconfig {
                path: p.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|source| ObserveError::Kubeconfig {
                    path: p.display().to_string(),
                    source,
                })?
        }
        None => Config::infer().await.map_err(ObserveError::Infer)?,
    };
    Ok(config)
}

/// Use aws-lc-rs for TLS everywhere (one crypto provider in the process).
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn list_all<K>(api: Api<K>, what: &'static str) -> Result<Vec<K>, ObserveError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|source| ObserveError::List { what, source })?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

#[derive(Serialize)]
struct List {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    items: Vec<serde_json::Value>,
    kind: &'static str,
    metadata: serde_json::Value,
}

/// The cluster's nodes, pods and PDBs as a kubectl-style `v1 List` in JSON.
pub async fn snapshot_json(client: &Client) -> Result<String, ObserveError> {
    let nodes = list_all(Api::<Node>::all(client.clone()), "nodes").await?;
    let pods = list_all(Api::<Pod>::all(client.clone()), "pods").await?;
    let pdbs = list_all(
        Api::<PodDisruptionBudget>::all(client.clone()),
        "poddisruptionbudgets",
    )
    .await?;
    let mut items = Vec::with_capacity(nodes.len() + pods.len() + pdbs.len());
    // k8s-openapi writes apiVersion and kind for every object, as kubectl does.
    for n in &nodes {
        items.push(serde_json::to_value(n).map_err(ObserveError::Encode)?);
    }
    for p in &pods {
        items.push(serde_json::to_value(p).map_err(ObserveError::Encode)?);
    }
    for p in &pdbs {
        items.push(serde_json::to_value(p).map_err(ObserveError::Encode)?);
    }
    let list = List {
        api_version: "v1",
        items,
        kind: "List",
        metadata: serde_json::json!({"resourceVersion": ""}),
    };
    serde_json::to_string(&list).map_err(ObserveError::Encode)
}
