//! Trial artifacts in S3-compatible storage: the API's artifact routes against a real S3 server,
//! `moto_server` (PyPI `moto[server]`, installed into the project's `.venv` by the Makefile; or
//! `$ORRERY_MOTO_SERVER`). Never skipped: without it the test fails and says what to install. A
//! 12 MB upload (two multipart parts), its download, a corrupted upload refused, a replacement;
//! then the bucket holds exactly the listed artifacts' objects.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use orrery_api::artifacts::{Artifacts, Limits};
use orrery_api::AuthConfig;

const ADMIN: &str = "s3-admin-token";
const BUCKET: &str = "orrery-artifacts";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("ORRERY_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    assert!(
        p.exists(),
        "{} is missing: the S3 test needs moto's server (make unit installs it: .venv/bin/pip install 'moto[server]'), or set ORRERY_MOTO_SERVER",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto S3 server on a free loopback port, with the test bucket made.
fn start_moto() -> (Moto, String) {
    let port = free_port();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let r = ureq::put(&format!("{endpoint}/{BUCKET}")).call();
    assert!(r.is_ok(), "creating the bucket: {r:?}");
    (moto, endpoint)
}

fn digest(body: &[u8]) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
    )
}

fn put(url: &str, digest: &str, body: &[u8]) -> u16 {
    match ureq::put(url)
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .set("Content-Digest", digest)
        .send_bytes(body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("PUT {url}: {e}"),
    }
}

fn get(url: &str) -> Vec<u8> {
    let r = ureq::get(url)
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    let mut out = Vec::new();
    r.into_reader().read_to_end(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_in_s3() {
    let (_moto, endpoint) = start_moto();
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ];
    let location = format!("s3://{BUCKET}/orrery");
    let artifacts = Artifacts::open(&location, &options, Limits::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = orrery_api::Store::open_sqlite(&dir.path().join("api.db"))
        .await
        .unwrap();
    let spec = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: s3}\nspec:\n  workload: stability\n";
    let exp = store
        .create_experiment(spec, &orrery_core::load_spec(spec).unwrap())
        .await
        .unwrap();
    let trial = store.trials(exp.id).await.unwrap()[0].id;
    let opts = orrery_api::Options {
        auth: AuthConfig::new(ADMIN, None),
        logs: None,
        artifacts: Some(Arc::new(artifacts)),
    };
    let (addr, _) = orrery_api::spawn(Arc::new(store), opts, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{addr}/api/v1/trials/{trial}/artifacts/model");
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
    let small = b"the final model".to_vec();
    let (big_sha, small_sha) = (
        format!("{:x}", Sha256::digest(&big)),
        format!("{:x}", Sha256::digest(&small)),
    );
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(put(&u, &digest(&big), &big), 201);
        assert_eq!(get(&u), big);
        let mut corrupted = big.clone();
        corrupted[5_000_000] ^= 0xff;
        assert_eq!(put(&u, &digest(&big), &corrupted), 400);
        assert_eq!(get(&u), big);
        assert_eq!(put(&u, &digest(&small), &small), 201);
        assert_eq!(get(&u), small);
    })
    .await
    .unwrap();

    // The bucket: the one listed artifact's object; the replaced, the corrupted and the staging
    // objects are gone.
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_url(format!("s3://{BUCKET}"))
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_region("us-east-1")
        .build()
        .unwrap();
    let mut keys: Vec<String> = s3
        .list(None)
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    keys.sort();
    assert_eq!(
        keys.len(),
        1,
        "{keys:?} (big was {big_sha}, small {small_sha})"
    );
    assert!(
        keys[0].starts_with(&format!("orrery/trials/{trial}/model/")),
        "{keys:?}"
    );
}
