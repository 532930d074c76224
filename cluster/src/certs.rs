//! Development certificates: a CA, one certificate per node (server and client: nodes dial
//! each other and the other site), and one client certificate per role. The subject's common
//! name is the identity recorded in the journal; the organizational unit is the role.
//!
//! Layout under the certificates folder: `ca.pem`, `ca.key`, `nodes/<site>-<id>.{pem,key}`,
//! `clients/<name>.{pem,key}`. Keys are written readable by their owner only.

use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::path::PathBuf;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::SanType;

/// The DNS name in every node certificate (what clients verify).
pub const NODE_SERVER_NAME: &str = "ledger-node";
/// The client roles a development setup gets a certificate for. Two operators, for dual
/// control (four eyes) of site operations.
pub const CLIENT_IDENTITIES: &[(&str, &str)] = &[
    ("writer", "writer"),
    ("reader", "reader"),
    ("auditor", "auditor"),
    ("operator-1", "operator"),
    ("operator-2", "operator"),
    ("admin", "admin"),
];
const CA_NAME: &str = "ledger development CA";
const VALIDITY_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("io on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.display().to_string(), source }
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if private {
        ledger_node::security::pii::write_private(path, text.as_bytes()).map_err(io(path))
    } else {
        std::fs::write(path, text).map_err(io(path))
    }
}

/// A certificates folder.
#[derive(Clone, Debug)]
pub struct CertsDir {
    pub dir: PathBuf,
}

/// Paths of one certificate and its key.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn ca_params() -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = time_now_minus_days(1);
    params.not_after = time_now_plus_days(VALIDITY_DAYS);
    Ok(params)
}

fn time_now_minus_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - time::Duration::days(days)
}

fn time_now_plus_days(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

impl CertsDir {
    pub fn new(dir: impl Into<PathBuf>) -> CertsDir {
        CertsDir { dir: dir.into() }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn node(&self, site: &str, id: u64) -> CertFiles {
        let base = self.dir.join("nodes").join(format!("{site}-{id}"));
        CertFiles { ca: self.ca_path(), cert: base.with_extension("pem"), key: base.with_extension("key") }
    }

    pub fn client(&self, name: &str) -> CertFiles {
        let base = self.dir.join("clients").join(name);
        CertFiles { ca: self.ca_path(), cert: base.with_extension("pem"), key: base.with_extension("key") }
    }

    /// Creates the CA if absent.
    pub fn ensure_ca(&self) -> Result<(), CertError> {
        if self.ca_path().exists() {
            return Ok(());
        }
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write(&self.ca_path(), &cert.pem(), false)?;
        write(&self.dir.join("ca.key"), &key.serialize_pem(), true)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        let key_path = self.dir.join("ca.key");
        let pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        Ok(Issuer::new(ca_params()?, KeyPair::from_pem(&pem)?))
    }

    /// Issues a certificate for `name` with `role`, valid from `not_before` to `not_after`
    /// (days relative to now; negative is in the past). Node certificates also serve.
    pub fn issue(&self, files: &CertFiles, name: &str, role: &str, valid_days: (i64, i64)) -> Result<(), CertError> {
        let node = role == "node";
        let mut params = CertificateParams::new(if node {
            vec![NODE_SERVER_NAME.to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        })?;
        if node {
            params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationalUnitName, role);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if node {
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.not_before = time_now_plus_days(valid_days.0);
        params.not_after = time_now_plus_days(valid_days.1);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        write(&files.cert, &cert.pem(), false)?;
        write(&files.key, &key.serialize_pem(), true)
    }

    /// Creates whatever is missing: the CA, every node's certificate, every client role's.
    pub fn ensure_all(&self, nodes: &[(String, u64)]) -> Result<(), CertError> {
        self.ensure_ca()?;
        for (site, id) in nodes {
            let files = self.node(site, *id);
            if !files.cert.exists() {
                self.issue(&files, &format!("node-{site}-{id}"), "node", (-1, VALIDITY_DAYS))?;
            }
        }
        for (name, role) in CLIENT_IDENTITIES {
            let files = self.client(name);
            if !files.cert.exists() {
                self.issue(&files, name, role, (-1, VALIDITY_DAYS))?;
            }
        }
        Ok(())
    }
}
