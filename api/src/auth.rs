//! Access control. Three kinds of bearer token (`Authorization: Bearer TOKEN`):
//!
//! - the **admin** token, configured on the server: everything (create, cancel and delete
//!   experiments, mint worker tokens, write any trial);
//! - a trial's **worker** token, minted by `POST /api/v1/trials/{id}/token` and stored only as its
//!   SHA-256: writes that one trial's metrics and state, and reads it;
//! - the **read** token, optional: reads. Without one, reads are open (a public leaderboard).
//!
//! No token, or one the server does not know: 401 with `WWW-Authenticate: Bearer`. A known token
//! that may not do this: 403. Configured tokens are compared by their SHA-256 digests in constant
//! time; worker tokens are found by the digest's index (a digest of a random 256-bit token tells an
//! attacker nothing).

use std::path::{Path, PathBuf};

use axum::http::Method;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub type TokenHash = [u8; 32];

pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest as stored in the database.
pub fn hash_hex(token: &str) -> String {
    hex(&hash(token))
}

/// A new random token: 32 bytes from the OS-seeded CSPRNG, hex, with a prefix that makes a leaked
/// one easy to recognise.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("orr_{}", hex(&bytes))
}

/// The server's configured tokens.
#[derive(Clone)]
pub struct AuthConfig {
    admin: TokenHash,
    read: Option<TokenHash>,
}

impl AuthConfig {
    /// `read`: `None` leaves reads open to everyone.
    pub fn new(admin_token: &str, read_token: Option<&str>) -> Self {
        AuthConfig {
            admin: hash(admin_token),
            read: read_token.map(hash),
        }
    }

    /// A server whose admin token nobody knows (the embedded API of `orrery run`, whose executor
    /// writes through the store directly): workers use their own tokens, reads are open.
    pub fn local() -> Self {
        AuthConfig::new(&new_token(), None)
    }

    pub fn reads_are_open(&self) -> bool {
        self.read.is_none()
    }

    fn is_admin(&self, h: &TokenHash) -> bool {
        self.admin.ct_eq(h).into()
    }

    fn is_reader(&self, h: &TokenHash) -> bool {
        self.read.is_some_and(|r| bool::from(r.ct_eq(h)))
    }
}

/// The admin token for `orrery serve` / `orrery-api`: the configured one (`ORRERY_ADMIN_TOKEN`),
/// else the one in `file`, else a new one written to `file` (mode 0600). Returns the token and the
/// file it was read from or written to, if any.
pub fn admin_token(
    configured: Option<String>,
    file: &Path,
) -> std::io::Result<(String, Option<PathBuf>)> {
    if let Some(t) = configured.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), None));
    }
    if let Ok(t) = std::fs::read_to_string(file) {
        if !t.trim().is_empty() {
            return Ok((t.trim().to_string(), Some(file.to_path_buf())));
        }
    }
    let token = new_token();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(file)?;
        writeln!(f, "{token}")?;
    }
    Ok((token, Some(file.to_path_buf())))
}

/// The access-control options of `orrery serve` and `orrery-api`.
#[derive(Debug, Clone, clap::Args)]
pub struct AccessArgs {
    /// The admin token (create, cancel and delete experiments, mint worker tokens). Without it the
    /// token in --admin-token-file is used, or a new one is written there.
    #[arg(long, env = "ORRERY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(
        long,
        env = "ORRERY_ADMIN_TOKEN_FILE",
        default_value = ".orrery/admin-token"
    )]
    pub admin_token_file: PathBuf,
    /// With a read token every read needs it (or the admin token); without one, reads are open.
    #[arg(long, env = "ORRERY_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
}

impl AccessArgs {
    /// The server's configuration, and a line saying where the admin token came from.
    pub fn load(&self) -> std::io::Result<(AuthConfig, String)> {
        let (admin, file) = admin_token(self.admin_token.clone(), &self.admin_token_file)?;
        let read = self.read_token.as_deref().filter(|t| !t.trim().is_empty());
        let cfg = AuthConfig::new(&admin, read);
        let from = match file {
            Some(f) => format!("the admin token is in {}", f.display()),
            None => "the admin token is the one configured".into(),
        };
        let reads = if cfg.reads_are_open() {
            "reads are open"
        } else {
            "reads need the read token"
        };
        Ok((cfg, format!("{from}; {reads}")))
    }
}

/// Who presented the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    Admin,
    Reader,
    /// The worker token of this trial.
    Worker(i64),
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health and metrics: nothing.
    Public,
    /// A read; `trial` when it reads one trial (its worker may read it).
    Read { trial: Option<i64> },
    /// A download of one trial's artifact: a read, except that a worker token, which otherwise
    /// reads what open reads allow, gets only its own trial's (model weights are not metrics).
    ReadArtifact { trial: i64 },
    /// A write to one trial's metrics, state or artifacts.
    WriteTrial(i64),
    /// Any other write.
    Admin,
}

/// The rule for a request, from its method and path.
pub fn need(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let trial = match segs.as_slice() {
        ["api", "v1", "trials", id, ..] => id.parse::<i64>().ok(),
        _ => None,
    };
    match segs.as_slice() {
        ["healthz"] | ["readyz"] | ["metrics"] => Need::Public,
        ["api", "v1", "trials", _, "artifacts", _]
            if method == Method::GET || method == Method::HEAD =>
        {
            // An id that is not a plain number (`%32`, which the router would decode) gets the
            // strictest rule, so that the two readings of the path cannot disagree in a
            // worker's favour.
            match trial {
                Some(t) => Need::ReadArtifact { trial: t },
                None => Need::Admin,
            }
        }
        _ if method == Method::GET || method == Method::HEAD => Need::Read { trial },
        ["api", "v1", "trials", _, "provenance"] if method == Method::PUT => match trial {
            Some(t) => Need::WriteTrial(t),
            None => Need::Admin,
        },
        ["api", "v1", "trials", _, "metrics" | "state"] if method == Method::POST => match trial {
            Some(t) => Need::WriteTrial(t),
            None => Need::Admin,
        },
        ["api", "v1", "trials", _, "artifacts", _]
            if method == Method::PUT || method == Method::DELETE =>
        {
            match trial {
                Some(t) => Need::WriteTrial(t),
                None => Need::Admin,
            }
        }
        _ => Need::Admin,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: no token, or an unknown one.
    Unauthenticated(String),
    /// 403: a known token that may not do this.
    Forbidden(String),
}

/// Identifies a presented token against the configured ones; worker tokens are looked up by
/// `find_worker` (digest → trial). `Err`: a token was presented and matches nothing.
pub async fn identify<F, Fut, E>(
    cfg: &AuthConfig,
    token: Option<&str>,
    find_worker: F,
) -> Result<Result<Identity, Denied>, E>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<i64>, E>>,
{
    let Some(token) = token else {
        return Ok(Ok(Identity::Anonymous));
    };
    let h = hash(token);
    if cfg.is_admin(&h) {
        return Ok(Ok(Identity::Admin));
    }
    if cfg.is_reader(&h) {
        return Ok(Ok(Identity::Reader));
    }
    Ok(match find_worker(hex(&h)).await? {
        Some(trial) => Ok(Identity::Worker(trial)),
        None => Err(Denied::Unauthenticated(
            "the bearer token is not known to this server".into(),
        )),
    })
}

/// Whether `who` may do what `need` asks.
pub fn authorize(cfg: &AuthConfig, who: Identity, need: Need) -> Result<(), Denied> {
    use Identity::*;
    let missing = || {
        Denied::Unauthenticated("this needs a bearer token (Authorization: Bearer TOKEN)".into())
    };
    match (need, who) {
        (Need::Public, _) | (_, Admin) => Ok(()),
        (Need::ReadArtifact { trial: t }, Worker(w)) if t == w => Ok(()),
        (Need::ReadArtifact { trial: t }, Worker(w)) => Err(Denied::Forbidden(format!(
            "the worker token of trial {w} reads only that trial's artifacts, not trial {t}'s"
        ))),
        (Need::ReadArtifact { .. }, _) if cfg.reads_are_open() => Ok(()),
        (Need::ReadArtifact { .. }, Reader) => Ok(()),
        (Need::Read { .. }, _) if cfg.reads_are_open() => Ok(()),
        (Need::Read { .. }, Reader) => Ok(()),
        (Need::Read { trial: Some(t) }, Worker(w)) if t == w => Ok(()),
        (Need::WriteTrial(t), Worker(w)) if t == w => Ok(()),
        (_, Anonymous) => Err(missing()),
        (Need::Read { .. }, Worker(w)) => Err(Denied::Forbidden(format!(
            "the worker token of trial {w} reads only that trial"
        ))),
        (Need::WriteTrial(t), Worker(w)) => Err(Denied::Forbidden(format!(
            "the worker token of trial {w} cannot write trial {t}"
        ))),
        (Need::WriteTrial(_) | Need::Admin, Reader) => {
            Err(Denied::Forbidden("the read token cannot write".into()))
        }
        (Need::Admin, Worker(w)) => Err(Denied::Forbidden(format!(
            "the worker token of trial {w} writes only that trial's metrics, state and artifacts"
        ))),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header. `Err` for a header that is present but
/// not a bearer token.
pub fn bearer(header: Option<&str>) -> Result<Option<&str>, Denied> {
    match header {
        None => Ok(None),
        Some(h) => match h.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Ok(Some(token.trim()))
            }
            _ => Err(Denied::Unauthenticated(
                "the Authorization header must be `Bearer TOKEN`".into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed() -> AuthConfig {
        AuthConfig::new("admin", Some("reader"))
    }

    #[test]
    fn rules_by_method_and_path() {
        assert_eq!(need(&Method::GET, "/healthz"), Need::Public);
        assert_eq!(need(&Method::GET, "/metrics"), Need::Public);
        assert_eq!(
            need(&Method::GET, "/api/v1/trials/7"),
            Need::Read { trial: Some(7) }
        );
        assert_eq!(
            need(&Method::GET, "/api/v1/experiments"),
            Need::Read { trial: None }
        );
        assert_eq!(
            need(&Method::POST, "/api/v1/trials/7/metrics"),
            Need::WriteTrial(7)
        );
        assert_eq!(
            need(&Method::POST, "/api/v1/trials/7/state"),
            Need::WriteTrial(7)
        );
        assert_eq!(
            need(&Method::PUT, "/api/v1/trials/7/artifacts/model"),
            Need::WriteTrial(7)
        );
        assert_eq!(
            need(&Method::GET, "/api/v1/trials/7/artifacts/model"),
            Need::ReadArtifact { trial: 7 }
        );
        assert_eq!(
            need(&Method::GET, "/api/v1/trials/7/artifacts"),
            Need::Read { trial: Some(7) }
        );
        assert_eq!(
            need(&Method::GET, "/api/v1/trials/%37/artifacts/model"),
            Need::Admin
        );
        assert_eq!(
            need(&Method::DELETE, "/api/v1/trials/7/artifacts/model"),
            Need::WriteTrial(7)
        );
        assert_eq!(need(&Method::PUT, "/api/v1/trials/7/metrics"), Need::Admin);
        assert_eq!(
            need(&Method::PUT, "/api/v1/trials/7/provenance"),
            Need::WriteTrial(7)
        );
        assert_eq!(need(&Method::POST, "/api/v1/trials/7/token"), Need::Admin);
        assert_eq!(need(&Method::POST, "/api/v1/trials/x/state"), Need::Admin);
        assert_eq!(need(&Method::POST, "/api/v1/experiments"), Need::Admin);
        assert_eq!(need(&Method::DELETE, "/api/v1/experiments/1"), Need::Admin);
    }

    #[test]
    fn who_may_do_what() {
        let c = closed();
        let deny401 = |r: Result<(), Denied>| matches!(r, Err(Denied::Unauthenticated(_)));
        let deny403 = |r: Result<(), Denied>| matches!(r, Err(Denied::Forbidden(_)));
        let read = Need::Read { trial: None };
        // Nobody: only public routes, and reads when they are open.
        assert!(authorize(&c, Identity::Anonymous, Need::Public).is_ok());
        assert!(deny401(authorize(&c, Identity::Anonymous, read)));
        assert!(authorize(&AuthConfig::new("a", None), Identity::Anonymous, read).is_ok());
        assert!(deny401(authorize(
            &c,
            Identity::Anonymous,
            Need::WriteTrial(1)
        )));
        assert!(deny401(authorize(&c, Identity::Anonymous, Need::Admin)));
        // A worker: its own trial only.
        let w = Identity::Worker(1);
        assert!(authorize(&c, w, Need::WriteTrial(1)).is_ok());
        assert!(authorize(&c, w, Need::Read { trial: Some(1) }).is_ok());
        assert!(deny403(authorize(&c, w, Need::WriteTrial(2))));
        assert!(deny403(authorize(&c, w, Need::Read { trial: Some(2) })));
        assert!(deny403(authorize(&c, w, read)));
        assert!(deny403(authorize(&c, w, Need::Admin)));
        // Artifacts: a worker downloads its own trial's only, even where reads are open.
        let open = AuthConfig::new("a", None);
        assert!(authorize(&open, w, Need::ReadArtifact { trial: 1 }).is_ok());
        assert!(deny403(authorize(
            &open,
            w,
            Need::ReadArtifact { trial: 2 }
        )));
        assert!(authorize(&open, Identity::Anonymous, Need::ReadArtifact { trial: 2 }).is_ok());
        assert!(deny401(authorize(
            &c,
            Identity::Anonymous,
            Need::ReadArtifact { trial: 2 }
        )));
        assert!(authorize(&c, Identity::Reader, Need::ReadArtifact { trial: 2 }).is_ok());
        // The reader reads.
        assert!(authorize(&c, Identity::Reader, read).is_ok());
        assert!(deny403(authorize(
            &c,
            Identity::Reader,
            Need::WriteTrial(1)
        )));
        assert!(deny403(authorize(&c, Identity::Reader, Need::Admin)));
        // The admin does everything.
        for n in [read, Need::WriteTrial(3), Need::Admin] {
            assert!(authorize(&c, Identity::Admin, n).is_ok());
        }
    }

    #[tokio::test]
    async fn tokens_are_identified_by_their_digest() {
        let c = closed();
        let worker = new_token();
        let stored = hash_hex(&worker);
        let find = |h: String| {
            let stored = stored.clone();
            async move { Ok::<_, ()>((h == stored).then_some(42)) }
        };
        assert_eq!(
            identify(&c, Some("admin"), find).await.unwrap(),
            Ok(Identity::Admin)
        );
        assert_eq!(
            identify(&c, Some("reader"), find).await.unwrap(),
            Ok(Identity::Reader)
        );
        assert_eq!(
            identify(&c, Some(&worker), find).await.unwrap(),
            Ok(Identity::Worker(42))
        );
        assert!(identify(&c, Some("guess"), find).await.unwrap().is_err());
        assert_eq!(
            identify(&c, None, find).await.unwrap(),
            Ok(Identity::Anonymous)
        );
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(None), Ok(None));
        assert_eq!(bearer(Some("Bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer(Some("bearer abc")), Ok(Some("abc")));
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
    }

    #[test]
    fn new_tokens_differ_and_admin_token_file_is_private() {
        assert_ne!(new_token(), new_token());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/admin-token");
        let (t, from) = admin_token(None, &file).unwrap();
        assert_eq!(from.as_deref(), Some(file.as_path()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Read back, not replaced; a configured token wins.
        assert_eq!(admin_token(None, &file).unwrap().0, t);
        assert_eq!(
            admin_token(Some("given".into()), &file).unwrap(),
            ("given".into(), None)
        );
    }
}
