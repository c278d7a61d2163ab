//! Where trial artifacts' bytes live (checkpoints, final models): an object store behind the
//! `object_store` crate — a local folder by default, S3-compatible storage by URL — with the
//! server's limits. The metadata (name, size, SHA-256, step) is in SQL (`store::artifacts`); an
//! artifact exists when its row does.
//!
//! An upload is streamed to an object of its own, `trials/<trial>/<name>/<random id>`, while its
//! SHA-256 and size are computed, and checked against the client's `Content-Digest` and the
//! limits. The row is written last (`store::artifacts`), so a failed or truncated upload leaves no
//! row, and its object is deleted. Since every upload has its own key, no upload ever touches the
//! bytes the current row points at; a replacement deletes the old object after the new row is
//! committed. The upload runs in a task of its own, so a client that disconnects mid-body still
//! gets its partial object aborted.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};

/// The default largest artifact: 4 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Multipart chunk size: S3 wants parts of at least 5 MiB (all but the last).
const CHUNK_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest artifact accepted.
    pub max_bytes: u64,
    /// Most bytes all artifacts together may take; `None`: no quota.
    pub quota: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            quota: None,
        }
    }
}

/// The server's artifact storage.
pub struct Artifacts {
    store: Arc<dyn ObjectStore>,
    /// What `--artifacts` said, for messages and logs.
    location: String,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error("artifact storage {location}: {message}")]
    Open { location: String, message: String },
    #[error("artifact storage: {0}")]
    Storage(#[from] object_store::Error),
}

/// Why an upload was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the artifact is larger than this server's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body's SHA-256 is {got}, not the {want} its Content-Digest header says: the upload was corrupted or truncated; nothing was stored")]
    DigestMismatch { got: String, want: String },
    #[error("the body ended early or could not be read ({0}); nothing was stored")]
    Body(String),
    #[error("artifact storage: {0}")]
    Storage(#[from] object_store::Error),
}

/// A stored upload: where its bytes are and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Artifacts {
    /// `location`: a folder (created if missing), `file:///abs/path`, or `s3://BUCKET[/PREFIX]`.
    /// S3 is configured as the AWS tools are, from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for an S3-compatible server,
    /// `AWS_ALLOW_HTTP=true` for one without TLS), then `options` (the same keys, lower case).
    pub fn open(
        location: &str,
        options: &[(&str, &str)],
        limits: Limits,
    ) -> Result<Self, ArtifactsError> {
        let err = |message: String| ArtifactsError::Open {
            location: location.to_string(),
            message,
        };
        let store: Arc<dyn ObjectStore> = if location.starts_with("s3://") {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(location);
            for (k, v) in options {
                let key = k
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e: object_store::Error| err(e.to_string()))?;
                b = b.with_config(key, *v);
            }
            let s3 = b.build().map_err(|e| err(e.to_string()))?;
            // The URL's path is the prefix under the bucket.
            let prefix = location
                .trim_start_matches("s3://")
                .split_once('/')
                .map(|(_, p)| p.trim_matches('/'))
                .unwrap_or("");
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = location.strip_prefix("file://").unwrap_or(location);
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create it: {e}")))?;
            // Cleanup: deleting an artifact's last object removes its emptied folders.
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| err(e.to_string()))?
                .with_automatic_cleanup(true);
            Arc::new(fs)
        };
        Ok(Artifacts {
            store,
            location: location.to_string(),
            limits,
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// A new key for an upload of trial `trial`'s artifact `name`.
    fn new_key(trial: i64, name: &str) -> Path {
        Path::from(format!(
            "trials/{trial}/{name}/{}",
            hex(&rand::random::<[u8; 16]>())
        ))
    }

    /// Streams `body` into storage as trial `trial`'s artifact `name`: refused past `max` bytes,
    /// stored only when its SHA-256 is `want` (lower-case hex). Nothing stays behind on failure.
    pub async fn upload<S, E>(
        &self,
        trial: i64,
        name: &str,
        want: &str,
        max: u64,
        body: S,
    ) -> Result<Stored, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = Self::new_key(trial, name);
        let upload = self.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES);
        match Self::feed(&mut writer, body, max).await {
            Ok((size, sha)) => {
                // `finish` aborts the upload itself when it fails.
                writer.finish().await?;
                if sha != want {
                    self.forget(&key).await;
                    return Err(UploadError::DigestMismatch {
                        got: sha,
                        want: want.to_string(),
                    });
                }
                Ok(Stored {
                    key: key.to_string(),
                    size,
                    sha256: sha,
                })
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "aborting an artifact upload");
                }
                Err(e)
            }
        }
    }

    /// Copies the body into the writer, hashing and counting; stops past `max`.
    async fn feed<S, E>(
        writer: &mut WriteMultipart,
        mut body: S,
        max: u64,
    ) -> Result<(u64, String), UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > max {
                return Err(UploadError::TooLarge { limit: max });
            }
            hasher.update(&chunk);
            // Back pressure: at most two parts in flight.
            writer.wait_for_capacity(2).await?;
            writer.put(chunk);
        }
        Ok((size, hex(&hasher.finalize())))
    }

    /// The bytes at `key`, as a stream.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, object_store::Error> {
        let got = self.store.get(&Path::from(key)).await?;
        Ok(match got.payload {
            // A local file: read in 1 MiB pieces (object_store's own stream reads 8 KiB at a
            // time, one blocking task each: a download ran at a tenth of a local copy's speed).
            GetResultPayload::File(file, _) => file_stream(file),
            GetResultPayload::Stream(s) => s,
        })
    }

    /// Deletes the object at `key`; a failure is logged (an orphan object costs space, not
    /// correctness: nothing lists it).
    pub async fn delete(&self, key: &str) {
        self.forget(&Path::from(key)).await
    }

    async fn forget(&self, path: &Path) {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, key = %path, "deleting an artifact object"),
        }
    }
}

/// A local file's bytes in 1 MiB pieces, each read on the blocking pool.
fn file_stream(file: std::fs::File) -> BoxStream<'static, Result<Bytes, object_store::Error>> {
    const PIECE: u64 = 1 << 20;
    futures_util::stream::try_unfold(file, |mut file| async move {
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = Vec::with_capacity(PIECE as usize);
            (&mut file).take(PIECE).read_to_end(&mut buf)?;
            Ok::<_, std::io::Error>((!buf.is_empty()).then(|| (Bytes::from(buf), file)))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })
    })
    .boxed()
}

/// A size: bytes, or with a unit (`500MB`, `4GiB`, `1.5GB`; K, M, G, T in powers of 1000, Ki,
/// Mi, Gi, Ti in powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a size (such as 500MB or 4GiB)"))?;
    let mult: f64 = match unit.trim().trim_end_matches(['B', 'b']) {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{s}\" (K, M, G, T, Ki, Mi, Gi, Ti)"
            ))
        }
    };
    Ok((n * mult).round() as u64)
}

/// `--artifacts`, `--artifacts-max-bytes` and `--artifacts-quota`, shared by `orrery-api`,
/// `orrery serve` and `orrery run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ArtifactArgs {
    /// Where trial artifacts (checkpoints, models) are stored: a folder, or s3://BUCKET/PREFIX
    /// (credentials and endpoint from AWS_* variables). Default: `artifacts/` beside the SQLite
    /// database file (`.orrery/artifacts` with a database URL).
    #[arg(long = "artifacts", env = "ORRERY_ARTIFACTS")]
    pub location: Option<String>,
    /// Largest artifact accepted (bytes, or 500MB, 4GiB, ...).
    #[arg(long = "artifacts-max-bytes", env = "ORRERY_ARTIFACTS_MAX_BYTES", default_value = "4GiB", value_parser = parse_size)]
    pub max_bytes: u64,
    /// Most bytes all artifacts may take together; an upload past it is refused (507).
    #[arg(long = "artifacts-quota", env = "ORRERY_ARTIFACTS_QUOTA", value_parser = parse_size)]
    pub quota: Option<u64>,
}

impl ArtifactArgs {
    /// Opens `--artifacts`, or `default` when it was not given.
    pub fn open_or(&self, default: &std::path::Path) -> Result<Artifacts, ArtifactsError> {
        let location = match &self.location {
            Some(l) => l.clone(),
            None => default.to_string_lossy().into_owned(),
        };
        Artifacts::open(
            &location,
            &[],
            Limits {
                max_bytes: self.max_bytes,
                quota: self.quota,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("2 Ki"), Ok(2048));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3XB").unwrap_err().contains("unknown unit"));
    }

    #[tokio::test]
    async fn a_bad_digest_or_an_oversize_body_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::open(dir.path().to_str().unwrap(), &[], Limits::default()).unwrap();
        let body = |parts: Vec<&'static [u8]>| {
            futures_util::stream::iter(
                parts
                    .into_iter()
                    .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
            )
        };
        let sha = hex(&Sha256::digest(b"hello world"));
        let ok = a
            .upload(7, "model", &sha, 100, body(vec![b"hello ", b"world"]))
            .await
            .unwrap();
        assert_eq!((ok.size, ok.sha256.as_str()), (11, sha.as_str()));
        assert!(ok.key.starts_with("trials/7/model/"), "{}", ok.key);
        let mut read = a.read(&ok.key).await.unwrap();
        let mut got = Vec::new();
        while let Some(b) = read.next().await {
            got.extend_from_slice(&b.unwrap());
        }
        assert_eq!(got, b"hello world");

        let bad = a
            .upload(7, "model", &sha, 100, body(vec![b"hello there"]))
            .await
            .unwrap_err();
        assert!(matches!(bad, UploadError::DigestMismatch { .. }), "{bad}");
        let big = a
            .upload(7, "model", &sha, 5, body(vec![b"hello ", b"world"]))
            .await
            .unwrap_err();
        assert!(matches!(big, UploadError::TooLarge { limit: 5 }), "{big}");
        // Only the one good object is on disk: nothing of the refused uploads.
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files, vec![ok.key.clone()], "{files:?}");
    }

    fn walk(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out
    }
}
