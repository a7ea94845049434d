//! The one place HTTP clients are made: the DynHost client, the what's-my-IP client and the OVH
//! API client all start from [`builder`], with TLS set up by [`Tls`].
//!
//! Trust roots cost more than everything else a client does: parsing a distribution's CA store
//! is about 19 M instructions, against about 3 M for a whole one-shot update over plain HTTP. So
//! they are read only when some URL the client will use is `https`, from one source (the bundle
//! file, or failing that the directory, never both: Debian's directory holds the bundle's
//! certificates a second time), once per process. They are read again only when the source (or
//! a `ca_file`) changed on disk, which a reload notices by its inode, size and time.
//!
//! Verification is rustls' WebPKI verifier over those roots (and a `ca_file`'s added to them);
//! there is no way to turn it off.

use crate::fsread;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Sent with every request. Dyn's rule asks clients to name themselves and their version
/// (ovh-dynhost.md, "The update request"); reqwest sends no User-Agent by default.
pub const USER_AGENT: &str = concat!("dynhostd/", env!("CARGO_PKG_VERSION"));

/// Longest error text kept from a transport error; reqwest/hyper chains can get wordy.
pub const MAX_ERROR_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time allowed to set up TCP (and TLS).
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange, body included.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("CA file {}: {message}", path.display())]
    CaFile { path: PathBuf, message: String },
    #[error(
        "no CA certificates for https: {0}; install the ca-certificates package, set SSL_CERT_FILE, or name a ca_file"
    )]
    NoRoots(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Installs ring as rustls' process default provider; idempotent. (reqwest is built with
/// `rustls-no-provider`, so without this it has no crypto to use.)
pub fn install_crypto_provider() {
    // Err means a provider is already installed (ours from an earlier call, or the embedding
    // program's choice): either way there is one, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS side of a client: which roots it trusts. Cheap to clone and compare; clients built
/// from equal values behave the same, so a reload keeps a client whose `Tls` did not change.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    /// What the roots were read from, as found on disk: equal ids mean equal roots.
    id: TlsId,
    /// How many roots it trusts (for `debug` lines and tests).
    roots: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TlsId {
    system: Option<FileId>,
    ca_file: Option<FileId>,
}

/// A file (or directory) as it was when read: a change to any of these means read it again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.id == other.id
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("id", &self.id)
            .field("roots", &self.roots)
            .finish()
    }
}

/// The system's roots as last read, with where from: only the parsed trust anchors (subject and
/// key, a few hundred bytes each), shared by every client that adds no `ca_file`; the PEM text
/// and the certificates are dropped once parsed.
static SYSTEM: Mutex<Option<(FileId, Arc<RootCertStore>)>> = Mutex::new(None);

impl Tls {
    /// Roots for a client whose URLs are `https` (`https` true: the system's, plus
    /// `ca_file`'s) or all plain HTTP (no roots at all, nothing read; a `ca_file` is still read
    /// and checked, so a broken one is reported whatever the scheme).
    pub fn load(https: bool, ca_file: Option<&Path>) -> Result<Tls, ClientError> {
        install_crypto_provider();
        let mut id = TlsId {
            system: None,
            ca_file: None,
        };
        let mut system = None;
        if https {
            match system_roots() {
                Ok((source, store)) => {
                    system = Some(store);
                    id.system = Some(source);
                }
                // A ca_file names the roots its server needs: go on with those alone (a router
                // without a CA bundle, talking to its owner's own server).
                Err(e) if ca_file.is_some() => {
                    tracing::warn!("{e}: trusting only the ca_file's certificates");
                }
                Err(e) => return Err(e),
            }
        }
        let store: Arc<RootCertStore> = match ca_file {
            None => system.unwrap_or_else(|| Arc::new(RootCertStore::empty())),
            Some(path) => {
                let mut store = system.map_or_else(RootCertStore::empty, |s| (*s).clone());
                let (file, certs) = read_ca_file(path)?;
                for cert in certs {
                    store.add(cert).map_err(|e| ClientError::CaFile {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                }
                id.ca_file = Some(file);
                Arc::new(store)
            }
        };
        let roots = store.len();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Build(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
            id,
            roots,
        })
    }

    /// Whether `self` and `other` are one load (not just equal roots): for tests of reuse.
    pub fn same_roots(&self, other: &Tls) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }

    /// Whether the roots this was built from are still the ones on disk (a reload asks before
    /// keeping a client).
    pub fn is_current(&self) -> bool {
        let same = |id: &Option<FileId>| {
            id.as_ref()
                .is_none_or(|f| FileId::of(&f.path).as_ref() == Some(f))
        };
        same(&self.id.system) && same(&self.id.ca_file)
    }
}

/// The system's roots from one source: `SSL_CERT_FILE`, else the distribution's bundle (the
/// first of openssl-probe's list that exists), else `SSL_CERT_DIR` or the first certificate
/// directory. Read once; read again only when that source changed.
fn system_roots() -> Result<(FileId, Arc<RootCertStore>), ClientError> {
    let probe = openssl_probe::probe();
    let (path, is_dir) = match (probe.cert_file, probe.cert_dir.into_iter().next()) {
        (Some(file), _) => (file, false),
        (None, Some(dir)) => (dir, true),
        (None, None) => {
            return Err(ClientError::NoRoots(
                "no CA bundle or certificate directory found".into(),
            ));
        }
    };
    let id = FileId::of(&path)
        .ok_or_else(|| ClientError::NoRoots(format!("cannot read {}", path.display())))?;
    let mut cached = SYSTEM.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((have, store)) = cached.as_ref()
        && *have == id
    {
        return Ok((id, store.clone()));
    }
    let mut store = RootCertStore::empty();
    if is_dir {
        store.add_parsable_certificates(roots_in_dir(&path));
    } else {
        // One certificate at a time: each is parsed into its trust anchor and dropped.
        add_bundle(&path, &mut store)?;
    }
    if store.is_empty() {
        return Err(ClientError::NoRoots(format!(
            "no PEM certificate in {}",
            path.display()
        )));
    }
    tracing::debug!(roots = store.len(), from = %path.display(), "system CA roots read");
    let store = Arc::new(store);
    *cached = Some((id.clone(), store.clone()));
    Ok((id, store))
}

/// Every certificate in the files of a hashed directory (`/etc/ssl/certs` without a bundle),
/// each certificate once although several names lead to it.
fn roots_in_dir(dir: &Path) -> Vec<CertificateDer<'static>> {
    let mut certs: Vec<CertificateDer<'static>> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return certs;
    };
    for entry in entries.flatten() {
        if let Ok(pem) = fsread::read(&entry.path(), fsread::CA_CAP) {
            for cert in pem_certs(&pem).0 {
                if !certs.contains(&cert) {
                    certs.push(cert);
                }
            }
        }
    }
    certs
}

/// The certificates of a PEM bundle; a block that is not base64 is skipped (`Err` says how many).
///
/// By hand rather than rustls-pki-types' PEM reader: that one decodes base64 in constant time,
/// as a private key needs, and took 8.8 M of the 14.6 M instructions of a whole one-shot update
/// over https, for public certificates. The base64 crate does it in a tenth of that.
fn pem_certs(pem: &[u8]) -> (Vec<CertificateDer<'static>>, usize) {
    let (mut certs, mut pem_lines) = (Vec::new(), PemLines::default());
    for line in pem.split(|&c| c == b'\n') {
        pem_lines.line(line, &mut |c| certs.push(c));
    }
    (certs, pem_lines.end())
}

/// A PEM bundle's certificates, fed a line at a time (a byte scan for '\n', and a comparison
/// only for lines of a marker's length: a substring search at every position cost more than
/// the decoding in the size-tuned build).
#[derive(Default)]
struct PemLines {
    /// The base64 of the certificate being read, between its BEGIN and END lines.
    b64: Option<Vec<u8>>,
    bad: usize,
}

impl PemLines {
    fn line(&mut self, line: &[u8], f: &mut impl FnMut(CertificateDer<'static>)) {
        use base64::Engine;
        const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
        const END: &[u8] = b"-----END CERTIFICATE-----";
        let line = line.trim_ascii();
        match &mut self.b64 {
            None if line == BEGIN => self.b64 = Some(Vec::with_capacity(2048)),
            None => {}
            Some(_) if line == END => {
                let text = self.b64.take().unwrap_or_default();
                match base64::engine::general_purpose::STANDARD.decode(&text) {
                    Ok(der) => f(CertificateDer::from(der)),
                    Err(_) => self.bad += 1,
                }
            }
            Some(text) => text.extend_from_slice(line),
        }
    }

    /// The blocks that were not certificates (bad base64, or never closed).
    fn end(self) -> usize {
        self.bad + usize::from(self.b64.is_some())
    }
}

/// The bundle's certificates into `store`, read a line at a time through a small buffer: the
/// whole file (220 KB on Debian) is never in memory, so it leaves no hole in the heap of an
/// agent that then idles for months.
fn add_bundle(path: &Path, store: &mut RootCertStore) -> Result<(), ClientError> {
    use std::io::BufRead;
    let no_roots = |e: String| ClientError::NoRoots(e);
    let file = fsread::open(path, fsread::CA_CAP).map_err(|e| no_roots(e.to_string()))?;
    let mut reader = std::io::BufReader::with_capacity(8192, file.take(fsread::CA_CAP));
    let mut pem_lines = PemLines::default();
    let mut line = Vec::with_capacity(128);
    let mut add = |cert| {
        store.add_parsable_certificates([cert]);
    };
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => pem_lines.line(&line, &mut add),
            Err(e) => return Err(no_roots(format!("{}: {e}", path.display()))),
        }
    }
    Ok(())
}

fn read_ca_file(path: &Path) -> Result<(FileId, Vec<CertificateDer<'static>>), ClientError> {
    let err = |message: String| ClientError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    // Bounded: a CA file that is a FIFO or /dev/zero is refused, never read.
    let pem = fsread::read(path, fsread::CA_CAP).map_err(|e| err(e.problem.to_string()))?;
    let (certs, bad) = pem_certs(&pem);
    if bad > 0 {
        return Err(err(format!(
            "not a PEM certificate bundle: {bad} certificate block(s) are not base64 or not closed"
        )));
    }
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".to_string()));
    }
    let id = FileId::of(path).ok_or_else(|| err("cannot read it".into()))?;
    Ok((id, certs))
}

/// The settings every client shares: who we are, the timeouts, the roots. Each caller adds its
/// own (redirects, pool, resolver) and builds.
pub fn builder(opts: &ClientOptions, tls: &Tls) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.timeout)
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls.config))
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused": the
/// chain of causes, each once, with the request URL left out (it is in the caller's context
/// already), at most [`MAX_ERROR_CHARS`].
pub fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    // reqwest's own Display names the URL; its sources don't.
    let mut top = err.to_string();
    if let Some(url) = err.url() {
        top = top.replace(&format!(" for url ({url})"), "");
        top = top.replace(url.as_str(), "<url>");
    }
    parts.push(top);
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    let joined = parts.join(": ");
    let mut message: String = joined.chars().take(MAX_ERROR_CHARS).collect();
    if message.len() < joined.len() {
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_reads_no_roots() {
        // No system roots, no ca_file: nothing is read, and the id says so.
        let tls = Tls::load(false, None).unwrap();
        assert_eq!(
            tls.id,
            TlsId {
                system: None,
                ca_file: None
            }
        );
        assert_eq!(tls.roots, 0);
        assert!(tls.is_current());
    }

    #[test]
    fn a_ca_file_is_read_again_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let tls = Tls::load(false, Some(&path)).unwrap();
        assert!(tls.is_current());
        assert!(tls == Tls::load(false, Some(&path)).unwrap());
        // Another certificate in its place: no longer current, and a new load differs.
        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        std::fs::write(&path, format!("{}{}", other.cert.pem(), ca.cert.pem())).unwrap();
        assert!(!tls.is_current());
        assert!(tls != Tls::load(false, Some(&path)).unwrap());
    }

    #[test]
    fn pem_bundles_are_split_and_decoded() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        // CRLF line ends, text between blocks, a key block that is not a certificate.
        let text = format!(
            "# bundle\r\n{}\r\nsome text\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
            a.cert.pem().replace('\n', "\r\n"),
            b.cert.pem()
        );
        let (certs, bad) = pem_certs(text.as_bytes());
        assert_eq!(bad, 0);
        assert_eq!(certs, vec![a.cert.der().clone(), b.cert.der().clone()]);
        // A block that is not base64, and one never closed.
        let broken = format!(
            "{}-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA",
            a.cert.pem()
        );
        assert_eq!(
            pem_certs(broken.as_bytes()),
            (vec![a.cert.der().clone()], 2)
        );
    }

    #[test]
    fn a_broken_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = Tls::load(false, Some(&path)).unwrap_err().to_string();
        assert!(
            e.contains("ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
