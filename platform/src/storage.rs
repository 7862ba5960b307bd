//! Object storage for uploaded files and their renditions, through the `object_store` crate: a
//! local directory (the embedded default; in Kubernetes one volume every process mounts) or any
//! S3-compatible store (`STORAGE_URL=s3://…`).
//!
//! Object names hold random ids only, never anything a person typed: a user's avatar uploads
//! live under `uploads/{user_id}/`, its renditions under `avatars/{user_id}/`, so forgetting a
//! person deletes two prefixes.

use std::sync::Arc;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, aws::AmazonS3Builder, local::LocalFileSystem, path::Path, prefix::PrefixStore};
use uuid::Uuid;

use crate::Settings;

/// The store every process shares.
pub type Store = Arc<dyn ObjectStore>;

/// Opens the store `STORAGE_URL` names.
pub fn open(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.storage_url.as_str();
    if let Some(dir) = url.strip_prefix("file:") {
        let dir = dir.strip_prefix("//").unwrap_or(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating the storage directory {dir}"))?;
        let store = LocalFileSystem::new_with_prefix(dir).with_context(|| format!("opening {dir}"))?;
        return Ok(Arc::new(store));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "STORAGE_URL names no bucket: `{url}`");
        let s3 = &settings.s3;
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_region(&s3.region);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store: Store = Arc::new(builder.build().context("configuring the S3 store")?);
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) });
    }
    anyhow::bail!("STORAGE_URL must be `file:DIR` or `s3://BUCKET[/PREFIX]`, not `{url}`")
}

/// Where an avatar upload waits for the worker.
pub fn upload_path(user: Uuid, upload: Uuid) -> Path {
    Path::from(format!("uploads/{user}/{upload}"))
}

/// Where a rendition of an avatar upload is kept (`size` in pixels, JPEG).
pub fn rendition_path(user: Uuid, upload: Uuid, size: u32) -> Path {
    Path::from(format!("avatars/{user}/{upload}/{size}.jpg"))
}

/// The prefixes holding a person's files (uploads, renditions).
pub fn user_prefixes(user: Uuid) -> [Path; 2] {
    [Path::from(format!("uploads/{user}")), Path::from(format!("avatars/{user}"))]
}

/// Deletes every object under `prefix`; returns how many there were.
pub async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> object_store::Result<usize> {
    let names = store.list(Some(prefix)).map_ok(|meta| meta.location).boxed();
    let deleted: Vec<Path> = store.delete_stream(names).try_collect().await?;
    Ok(deleted.len())
}

/// Deletes an object; one already gone is fine.
pub async fn delete_quietly(store: &dyn ObjectStore, path: &Path) -> object_store::Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
