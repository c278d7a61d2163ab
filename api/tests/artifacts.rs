//! Trial artifacts over real HTTP, on SQLite and PostgreSQL, stored in a real folder: a worker
//! stores and reads its own trial's artifacts and no other's; the download is the upload, with its
//! SHA-256 as ETag; a corrupted body (SHA-256 mismatch), a missing digest, a bad name, a body over
//! the size limit or past the quota are refused and change nothing; a truncated upload is not
//! listed and leaves no bytes behind; a replacement deletes the bytes it replaced.

mod support;

use std::io::{Read, Write};

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use orrery_api::artifacts::Limits;
use support::Db;

on_both_databases!(artifacts_end_to_end);

const SPEC: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: art}\nspec:\n  workload: stability\n  search:\n    space:\n      training.lr: {values: [1.0e-3, 1.0e-2]}\n";
const ADMIN: &str = "artifacts-admin-token";

fn digest(body: &[u8]) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
    )
}

/// (status, body as text) of a PUT of `body` with the given digest header.
fn put(token: &str, url: &str, digest: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = ureq::put(url).set("Authorization", &format!("Bearer {token}"));
    if let Some(d) = digest {
        req = req.set("Content-Digest", d);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
        Err(e) => panic!("PUT {url}: {e}"),
    }
}

/// (status, ETag, bytes) of a GET.
fn get(token: &str, url: &str, if_none_match: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(url).set("Authorization", &format!("Bearer {token}"));
    if let Some(t) = if_none_match {
        req = req.set("If-None-Match", t);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = r.status();
    let etag = r.header("ETag").unwrap_or("").to_string();
    let mut bytes = Vec::new();
    r.into_reader().read_to_end(&mut bytes).unwrap();
    (status, etag, bytes)
}

fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

async fn artifacts_end_to_end(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let art_dir = dir.path().join("artifacts");
    let addr = support::serve_with_artifacts(
        store,
        ADMIN,
        dir.path(),
        Limits {
            max_bytes: 1000,
            quota: Some(2500),
        },
    )
    .await;
    let base = format!("http://{addr}");
    let base2 = base.clone();
    tokio::task::spawn_blocking(move || {
        let call = |token: Option<&str>, method: &str, url: &str, body: Option<&str>| {
            let r = support::request(token, method, url, body);
            (r.status, r.body)
        };
        let (st, exp) = call(Some(ADMIN), "POST", &format!("{base}/api/v1/experiments"), Some(SPEC));
        assert_eq!(st, 201, "{exp}");
        let api = format!("{base}/api/v1");
        let ids = support::trial_ids(&api, ADMIN, &exp);
        let (a, b) = (ids[0], ids[1]);
        let token = |t: i64| support::worker_token(&api, ADMIN, t);
        let (ta, tb) = (token(a), token(b));
        let url = |t: i64, name: &str| format!("{base}/api/v1/trials/{t}/artifacts/{name}");
        let list = |t: i64| -> Vec<Value> {
            let (st, v) = call(Some(ADMIN), "GET", &format!("{base}/api/v1/trials/{t}/artifacts"), None);
            assert_eq!(st, 200, "{v}");
            v.as_array().unwrap().clone()
        };

        // A worker stores its own trial's artifact, with the step it was taken at.
        let model: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
        let (st, body) = put(&ta, &format!("{}?step=40", url(a, "checkpoint-40")), Some(&digest(&model)), &model);
        assert_eq!(st, 201, "{body}");
        let stored: Value = serde_json::from_str(&body).unwrap();
        let sha = format!("{:x}", Sha256::digest(&model));
        assert_eq!(stored["sha256"], sha.as_str());
        assert_eq!((stored["size"].as_u64(), stored["step"].as_i64()), (Some(600), Some(40)));
        assert_eq!(list(a).len(), 1);

        // The download is the upload; its ETag is the SHA-256; a matching If-None-Match is a 304.
        let (st, etag, bytes) = get(&ta, &url(a, "checkpoint-40"), None);
        assert_eq!((st, etag.as_str()), (200, format!("\"{sha}\"").as_str()));
        assert_eq!(bytes, model);
        assert_eq!(get(&ta, &url(a, "checkpoint-40"), Some(&etag)).0, 304);

        // Token scope: trial b's worker can neither write nor read trial a's artifacts.
        let (st, body) = put(&tb, &url(a, "intruder"), Some(&digest(b"x")), b"x");
        assert_eq!(st, 403, "{body}");
        assert_eq!(get(&tb, &url(a, "checkpoint-40"), None).0, 403);
        assert_eq!(list(a).len(), 1);

        // Refused, changing nothing: a corrupted body, no digest, a bad name, too large.
        let mut corrupted = model.clone();
        corrupted[10] ^= 1;
        let (st, body) = put(&ta, &url(a, "checkpoint-40"), Some(&digest(&model)), &corrupted);
        assert_eq!(st, 400, "{body}");
        assert!(body.contains("SHA-256"), "{body}");
        let (st, body) = put(&ta, &url(a, "other"), None, &model);
        assert_eq!(st, 400, "{body}");
        assert!(body.contains("Content-Digest"), "{body}");
        let (st, body) = put(&ta, &url(a, ".hidden"), Some(&digest(b"x")), b"x");
        assert_eq!(st, 422, "{body}");
        let big = vec![1u8; 1001];
        let (st, body) = put(&ta, &url(a, "big"), Some(&digest(&big)), &big);
        assert_eq!(st, 413, "{body}");
        assert_eq!(put(ADMIN, &url(9999, "x"), Some(&digest(b"x")), b"x").0, 404);
        assert_eq!(get(&ta, &url(a, "checkpoint-40"), None).2, model);
        assert_eq!(list(a).len(), 1);

        // A truncated upload (the connection closes after 10 of 500 promised bytes) is not listed.
        {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let head = format!(
                "PUT /api/v1/trials/{a}/artifacts/truncated HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ta}\r\nContent-Digest: {}\r\nContent-Length: 500\r\n\r\n",
                digest(&[0u8; 500])
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&[0u8; 10]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
        }
        // The quota: 600 stored; 900 more fits (1,500), then 900 more does not (2,400 + 900).
        let second: Vec<u8> = vec![2u8; 900];
        assert_eq!(put(&ta, &url(a, "model"), Some(&digest(&second)), &second).0, 201);
        let (st, body) = put(&tb, &url(b, "model"), Some(&digest(&second)), &second);
        assert_eq!(st, 201, "{body}");
        let (st, body) = put(&tb, &url(b, "extra"), Some(&digest(&second)), &second);
        assert_eq!(st, 507, "{body}");
        let names: Vec<String> = list(a).iter().map(|x| x["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, vec!["checkpoint-40", "model"]);

        // A replacement: the new bytes are served and the old ones are gone from storage.
        let third = vec![3u8; 100];
        assert_eq!(put(&ta, &url(a, "model"), Some(&digest(&third)), &third).0, 201);
        assert_eq!(get(&ta, &url(a, "model"), None).2, third);
        // The same bytes again: stored afresh, served, and still one object on disk (below).
        assert_eq!(put(&ta, &url(a, "model"), Some(&digest(&third)), &third).0, 201);
        assert_eq!(get(&ta, &url(a, "model"), None).2, third);
        (
            art_dir,
            a,
            b,
            sha,
            format!("{:x}", Sha256::digest(&third)),
            format!("{:x}", Sha256::digest(&second)),
            exp["id"].as_i64().unwrap(),
        )
    })
    .await
    .map(|(art_dir, a, b, _sha, _third, _second, exp_id)| {
        // On disk: exactly the three listed artifacts' objects, one each; nothing of the refused,
        // truncated or replaced uploads.
        let want = [
            format!("trials/{a}/checkpoint-40/"),
            format!("trials/{a}/model/"),
            format!("trials/{b}/model/"),
        ];
        // A truncated upload's partial object may take a moment to be aborted after the
        // connection closed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let files = files_under(&art_dir);
            let ok = files.len() == want.len()
                && files.iter().zip(&want).all(|(f, w)| f.starts_with(w.as_str()));
            if ok || std::time::Instant::now() > deadline {
                assert!(ok, "{files:?}");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Deleting the experiment deletes its artifacts, rows and bytes; a running one is refused.
        let exp_url = format!("{base2}/api/v1/experiments/{exp_id}");
        let r = support::request(Some(ADMIN), "DELETE", &exp_url, None);
        assert_eq!(r.status, 409, "{}", r.body);
        let r = support::request(
            Some(ADMIN),
            "POST",
            &format!("{exp_url}/state"),
            Some(r#"{"phase": "Cancelled", "reason": "Test"}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = support::request(Some(ADMIN), "DELETE", &exp_url, None);
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(support::request(Some(ADMIN), "GET", &exp_url, None).status, 404);
        let listing = format!("{base2}/api/v1/trials/{a}/artifacts");
        assert_eq!(support::request(Some(ADMIN), "GET", &listing, None).status, 404);
        assert_eq!(files_under(&art_dir), Vec::<String>::new());
    })
    .unwrap();
}
