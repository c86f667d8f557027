//! Store URLs of the etcd backup → an `object_store` client, credentials from
//! the environment only (a Secret mounted as environment variables in the
//! DaemonSet):
//!
//! | URL | client | credentials and settings |
//! |---|---|---|
//! | `s3://bucket/prefix` | Amazon S3 or any S3-compatible store | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (an `http://` endpoint is allowed because it was given explicitly; otherwise only https), else the instance's or pod's identity |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_SERVICE_ACCOUNT` (a key file) / `GOOGLE_SERVICE_ACCOUNT_KEY` (its JSON) / `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server; `GOOGLE_BASE_URL` or the key's `gcs_base_url` for another endpoint (an `http://` one is allowed because it was given explicitly) |
//! | `az://container/prefix` | Azure Blob Storage | `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY`, a SAS (`AZURE_STORAGE_SAS_KEY`), or a workload identity; `AZURE_STORAGE_ENDPOINT` for another endpoint (`http://` allowed when given there), `AZURE_STORAGE_USE_EMULATOR=true` for Azurite |
//! | `file:///dir` | a local directory (created if missing) | — |
//!
//! A URL may not carry credentials (`s3://key:secret@bucket`) or a query:
//! refused, and the refusal does not repeat them. A client that cannot be built
//! (no account, a key that is not a key) says which of the store's variables are
//! set — names only — and which it reads.
//!
//! Tested against real servers: `s3://` with moto (agent/tests/backup.rs), `az://`
//! with Azurite and `gs://` with fake-gcs-server (agent/tests/backup_clouds.rs;
//! fake-gcs-server does not take object_store's uploads, so the gs:// upload is
//! not covered: see docs/testing.md).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::backup::{BackupError, redact};

/// An opened store: the client, the prefix every backup object goes under,
/// and how to name it in messages (no credentials).
#[derive(Debug, Clone)]
pub struct Store {
    pub inner: Arc<dyn ObjectStore>,
    /// `<url path>/[<cluster>]`, relative to the bucket (or the directory for `file://`).
    pub prefix: ObjectPath,
    /// The store URL as given, without credentials or query.
    pub display: String,
    /// `s3://bucket`, `file:///dir`: what object names are relative to.
    root: String,
}

impl Store {
    /// Wrap a client (tests wrap stores to inject faults).
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        display: String,
        root: String,
    ) -> Self {
        Self {
            inner,
            prefix,
            display,
            root,
        }
    }

    /// The URL of an object of this store.
    pub fn url_of(&self, object: &ObjectPath) -> String {
        format!("{}/{}", self.root.trim_end_matches('/'), object)
    }

    /// Replace the client, keeping names (tests).
    pub fn with_inner(mut self, inner: Arc<dyn ObjectStore>) -> Self {
        self.inner = inner;
        self
    }
}

fn config(msg: String) -> BackupError {
    BackupError::Config(msg)
}

/// Open the store `url`; objects go under its path and then `cluster`.
pub fn open(url: &str, cluster: Option<&str>) -> Result<Store, BackupError> {
    let parsed = url::Url::parse(url).map_err(|e| {
        config(format!(
            "store URL {:?}: {e} (expected s3://bucket/prefix, gs://, az:// or file:///dir)",
            strip_url_credentials(url)
        ))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(config(format!(
            "store URL {}: credentials do not go in the URL; use the environment (AWS_ACCESS_KEY_ID, …)",
            strip_url_credentials(url)
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(config(format!(
            "store URL {}: a query or fragment is not allowed",
            strip_url_credentials(url)
        )));
    }
    let display = url.to_string();
    let mut prefix_parts: Vec<String> = parsed
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(c) = cluster {
        if c.is_empty() || c.contains('/') || c == "." || c == ".." {
            return Err(config(format!(
                "cluster name {c:?} cannot name a store directory"
            )));
        }
        prefix_parts.push(c.to_string());
    }
    let scheme = parsed.scheme();
    let bucket = parsed.host_str().unwrap_or_default().to_string();
    // A client that cannot be built says which variables it read (names, never values) and
    // which it expects: object_store's own messages ("Account must be specified", "Invalid
    // RSA key") do not.
    let store_err = |e: object_store::Error| {
        let hint = env_hint(scheme)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        config(format!(
            "store {display}: {}{hint}",
            redact(&e.to_string())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ))
    };
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    };
    let client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120));
    let (inner, prefix, root): (Arc<dyn ObjectStore>, Vec<String>, String) = match scheme {
        "s3" | "s3a" => {
            if bucket.is_empty() {
                return Err(config(format!("store URL {display}: no bucket")));
            }
            let endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
            // Plain http only when the endpoint was given explicitly as http://.
            let allow_http = endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
            let s3 = AmazonS3Builder::from_env()
                .with_url(format!("s3://{bucket}"))
                .with_allow_http(allow_http)
                .with_retry(retry)
                .with_client_options(client.with_allow_http(allow_http))
                .build()
                .map_err(store_err)?;
            (Arc::new(s3), prefix_parts, format!("{scheme}://{bucket}"))
        }
        "gs" => {
            if bucket.is_empty() {
                return Err(config(format!("store URL {display}: no bucket")));
            }
            // Plain http only when the base URL was given explicitly as http://
            // (GOOGLE_BASE_URL, or `gcs_base_url` in the service-account key).
            let allow_http = gcs_base_url().is_some_and(|u| u.starts_with("http://"));
            let gcs = GoogleCloudStorageBuilder::from_env()
                .with_url(format!("gs://{bucket}"))
                .with_retry(retry)
                .with_client_options(client.with_allow_http(allow_http))
                .build()
                .map_err(store_err)?;
            (Arc::new(gcs), prefix_parts, format!("gs://{bucket}"))
        }
        "az" | "azure" | "abfs" | "abfss" => {
            if bucket.is_empty() {
                return Err(config(format!("store URL {display}: no container")));
            }
            // Plain http only when the endpoint was given explicitly as http://
            // (AZURE_STORAGE_ENDPOINT; AZURE_STORAGE_USE_EMULATOR=true means Azurite at
            // AZURITE_BLOB_STORAGE_URL, default http://127.0.0.1:10000, as object_store does).
            let allow_http = ["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
                .is_some_and(|e| e.starts_with("http://"));
            let az = MicrosoftAzureBuilder::from_env()
                .with_url(format!("{scheme}://{bucket}"))
                .with_retry(retry)
                .with_client_options(client.with_allow_http(allow_http))
                .build()
                .map_err(store_err)?;
            (Arc::new(az), prefix_parts, format!("{scheme}://{bucket}"))
        }
        "file" => {
            if !bucket.is_empty() && bucket != "localhost" {
                return Err(config(format!(
                    "store URL {display}: file URLs name a local directory: file:///dir"
                )));
            }
            let dir = parsed
                .to_file_path()
                .map_err(|()| config(format!("store URL {display}: not a local directory path")))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| config(format!("store {display}: creating {}: {e}", dir.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&dir).map_err(store_err)?;
            let cluster: Vec<String> = cluster.map(|c| vec![c.to_string()]).unwrap_or_default();
            (Arc::new(fs), cluster, format!("file://{}", dir.display()))
        }
        other => {
            return Err(config(format!(
                "store URL {display}: scheme {other}:// is not supported (s3://, gs://, az://, file://)"
            )));
        }
    };
    let prefix = ObjectPath::from_iter(prefix.iter().map(String::as_str));
    Ok(Store {
        inner,
        prefix,
        display,
        root,
    })
}

/// The store's environment variables that are set (names only) and the ones it reads.
fn env_hint(scheme: &str) -> Option<String> {
    let (prefixes, expected): (&[&str], &str) = match scheme {
        "s3" | "s3a" => (
            &["AWS_"],
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL",
        ),
        "gs" => (
            &["GOOGLE_", "SERVICE_ACCOUNT"],
            "GOOGLE_SERVICE_ACCOUNT (a key file) or GOOGLE_SERVICE_ACCOUNT_KEY (its JSON), GOOGLE_APPLICATION_CREDENTIALS",
        ),
        "az" | "azure" | "abfs" | "abfss" => (
            &["AZURE_", "AZURITE_"],
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_KEY), AZURE_STORAGE_ENDPOINT",
        ),
        _ => return None,
    };
    let mut set: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
        .collect();
    set.sort();
    let set = if set.is_empty() {
        "none".to_string()
    } else {
        set.join(", ")
    };
    Some(format!("variables set: {set}; read: {expected}"))
}

/// The GCS base URL given explicitly: `GOOGLE_BASE_URL`, else `gcs_base_url` in the
/// service-account key (`GOOGLE_SERVICE_ACCOUNT_KEY`, or the file `GOOGLE_SERVICE_ACCOUNT`
/// names), which is how object_store points at an emulator. An unreadable key is left to
/// object_store, whose error names the file.
fn gcs_base_url() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(u) = var("GOOGLE_BASE_URL") {
        return Some(u);
    }
    let key = var("GOOGLE_SERVICE_ACCOUNT_KEY").or_else(|| {
        [
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "SERVICE_ACCOUNT",
        ]
        .iter()
        .find_map(|k| var(k))
        .and_then(|path| std::fs::read_to_string(path).ok())
    })?;
    let v: serde_json::Value = serde_json::from_str(&key).ok()?;
    v.get("gcs_base_url")?.as_str().map(str::to_string)
}

/// Remove `user:password@` and query strings from every URL in `s`.
pub fn strip_url_credentials(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '>' || c == '<')
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        let host_end = url.find('/').unwrap_or(url.len());
        let url = match url[..host_end].rfind('@') {
            Some(at) => format!("[redacted]@{}", &url[at + 1..]),
            None => url.to_string(),
        };
        let url = match url.find('?') {
            Some(q) => format!("{}?[redacted]", &url[..q]),
            None => url,
        };
        out.push_str(&url);
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_and_queries() {
        assert_eq!(
            strip_url_credentials(
                "PUT https://AKIA:s3cr3t@s3.example/b/k?X-Amz-Signature=abc failed"
            ),
            "PUT https://[redacted]@s3.example/b/k?[redacted] failed"
        );
        assert_eq!(strip_url_credentials("s3://bucket/x y"), "s3://bucket/x y");
    }

    #[test]
    fn store_urls() {
        let d = tempfile::tempdir().unwrap();
        let url = format!("file://{}/backups", d.path().display());
        let s = open(&url, Some("prod")).unwrap();
        assert_eq!(s.prefix.as_ref(), "prod");
        assert!(d.path().join("backups").is_dir());
        assert_eq!(
            s.url_of(&ObjectPath::from("prod/x.db")),
            format!("file://{}/backups/prod/x.db", d.path().display())
        );
        for (bad, want) in [
            (
                "s3://AKIA:s3cr3t@bucket/p",
                "credentials do not go in the URL",
            ),
            ("s3://bucket/p?token=x", "query"),
            ("ftp://host/p", "not supported"),
            ("bucket/p", "expected s3://"),
        ] {
            let e = open(bad, None).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        assert!(open(&url, Some("../x")).is_err());
    }
}
