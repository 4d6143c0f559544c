// A small ztunnel-like HBONE peer (HTTP/2 CONNECT over mutual TLS 1.3) for
// ugate's interop tests, written for this repo on the libraries ztunnel uses
// (h2, rustls, tokio-rustls, tokio) as Debian 12 ships them.
//
//   ztunnel-peer server --listen ADDR --cert F --key F --roots F --trust-domain TD
//                       [--allow SPIFFE-ID]... [--ping-ms N]
//   ztunnel-peer client --peer ADDR --cert F --key F --roots F --expect-san SPIFFE-ID
//                       --authority HOST:PORT [--streams N] [--bytes N] [--ping-ms N]
//                       [--until-echoed 1]   (stop reading once all bytes came back, for
//                                             servers that do not pass half-close on)
//
// Both print one JSON object per line on stdout: the server an event per
// connection and per stream, the client one result object at the end.
// Behaviour follows ztunnel as mesh-notes.md describes it: TLS 1.3 with
// AES-GCM only, ALPN h2, client certificate required, SPIFFE trust domain
// checked, 4 MiB / 16 MiB / 1 MiB HTTP/2 settings, PING every 10 s (dropped
// after 20 s without ACK), 200 / 400 / 401 / 503, END_STREAM <-> half-close.

use bytes::Bytes;
use h2::{Ping, Reason, RecvStream, SendStream};
use http::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

const STREAM_WINDOW: u32 = 4 << 20;
const CONN_WINDOW: u32 = 16 << 20;
const MAX_FRAME: u32 = 1 << 20;

type Fail = Box<dyn std::error::Error + Send + Sync>;

// ---- small helpers ---------------------------------------------------------

/// std::future::poll_fn is newer than Debian 12's rustc.
struct PollFn<F>(F);
impl<T, F: FnMut(&mut Context<'_>) -> Poll<T> + Unpin> Future for PollFn<F> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        (self.0)(cx)
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_opt(s: &Option<String>) -> String {
    s.as_deref().map(json_str).unwrap_or_else(|| "null".into())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

struct Args(HashMap<String, Vec<String>>);
impl Args {
    fn parse(v: &[String]) -> Result<Args, String> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            let k = v[i].strip_prefix("--").ok_or(format!("unexpected argument '{}'", v[i]))?;
            let val = v.get(i + 1).ok_or(format!("--{} needs a value", k))?;
            m.entry(k.to_string()).or_default().push(val.clone());
            i += 2;
        }
        Ok(Args(m))
    }
    fn get(&self, k: &str) -> Result<String, String> {
        self.0.get(k).and_then(|v| v.last().cloned()).ok_or(format!("--{} is required", k))
    }
    fn num(&self, k: &str, dflt: u64) -> Result<u64, String> {
        match self.0.get(k).and_then(|v| v.last()) {
            None => Ok(dflt),
            Some(s) => s.parse().map_err(|_| format!("--{} '{}' is not a number", k, s)),
        }
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0.get(k).cloned().unwrap_or_default()
    }
}

// ---- certificates ----------------------------------------------------------

fn read_pem(path: &str) -> Result<Vec<rustls_pemfile::Item>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {}", path, e))?;
    let items = rustls_pemfile::read_all(&mut std::io::BufReader::new(f)).map_err(|e| format!("{}: {}", path, e))?;
    Ok(items)
}

fn certs(path: &str) -> Result<Vec<rustls::Certificate>, String> {
    let v: Vec<_> = read_pem(path)?
        .into_iter()
        .filter_map(|i| match i {
            rustls_pemfile::Item::X509Certificate(d) => Some(rustls::Certificate(d)),
            _ => None,
        })
        .collect();
    if v.is_empty() {
        return Err(format!("{}: no certificate", path));
    }
    Ok(v)
}

fn key(path: &str) -> Result<rustls::PrivateKey, String> {
    for i in read_pem(path)? {
        match i {
            rustls_pemfile::Item::PKCS8Key(d) => return Ok(rustls::PrivateKey(d)),
            rustls_pemfile::Item::ECKey(d) => return Ok(rustls::PrivateKey(sec1_to_pkcs8(&d))),
            rustls_pemfile::Item::RSAKey(d) => return Ok(rustls::PrivateKey(d)),
            _ => {}
        }
    }
    Err(format!("{}: no private key", path))
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n < 0x100 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

/// Wrap a P-256 SEC1 key (what `ugate identity init` writes, like Istio's
/// key.pem) in PKCS#8, the form ring loads: SEQUENCE { 0, AlgorithmIdentifier
/// { id-ecPublicKey, prime256v1 }, OCTET STRING { sec1 } }.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    const ALG: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
        0x01, 0x07,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(ALG);
    body.push(0x04);
    body.extend(der_len(sec1.len()));
    body.extend_from_slice(sec1);
    let mut out = vec![0x30];
    out.extend(der_len(body.len()));
    out.extend(body);
    out
}

/// One DER TLV at the start of `d`: (tag, content, rest).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let l0 = *d.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > d.len() {
        return None;
    }
    Some((tag, &d[hdr..end], &d[end..]))
}

/// The URI SANs of a certificate: Certificate → TBSCertificate → [3]
/// extensions → subjectAltName (2.5.29.17) → [6] uniformResourceIdentifier.
/// webpki checks the chain but has no accessor for URI names.
fn uri_sans(cert: &[u8]) -> Vec<String> {
    fn inner(cert: &[u8]) -> Option<Vec<String>> {
        let (_, c, _) = tlv(cert)?;
        let (_, mut tbs, _) = tlv(c)?;
        let mut out = Vec::new();
        while !tbs.is_empty() {
            let (tag, val, rest) = tlv(tbs)?;
            tbs = rest;
            if tag != 0xa3 {
                continue;
            }
            let (_, mut exts, _) = tlv(val)?;
            while !exts.is_empty() {
                let (_, ext, rest) = tlv(exts)?;
                exts = rest;
                let (_, oid, mut e) = tlv(ext)?;
                if oid != [0x55, 0x1d, 0x11] {
                    continue;
                }
                if e.first() == Some(&0x01) {
                    e = tlv(e)?.2; // critical flag
                }
                let (_, octets, _) = tlv(e)?;
                let (_, mut names, _) = tlv(octets)?;
                while !names.is_empty() {
                    let (t, v, rest) = tlv(names)?;
                    names = rest;
                    if t == 0x86 {
                        out.push(String::from_utf8_lossy(v).into_owned());
                    }
                }
            }
        }
        Some(out)
    }
    inner(cert).unwrap_or_default()
}

fn spiffe_id(cert: &[u8]) -> Option<String> {
    uri_sans(cert).into_iter().find(|u| u.starts_with("spiffe://"))
}

fn trust_domain(id: &str) -> Option<&str> {
    id.strip_prefix("spiffe://")?.split('/').next()
}

fn root_store(path: &str) -> Result<rustls::RootCertStore, String> {
    let mut s = rustls::RootCertStore::empty();
    for c in certs(path)? {
        s.add(&c).map_err(|e| format!("{}: {:?}", path, e))?;
    }
    Ok(s)
}

/// Server side: the chain must verify against our roots (rustls' own
/// verifier), then the client's SPIFFE trust domain must be ours.
struct TrustDomainClientVerifier {
    chain: Arc<dyn rustls::server::ClientCertVerifier>,
    trust_domain: String,
}

impl rustls::server::ClientCertVerifier for TrustDomainClientVerifier {
    fn client_auth_root_subjects(&self) -> Option<rustls::DistinguishedNames> {
        self.chain.client_auth_root_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &rustls::Certificate,
        intermediates: &[rustls::Certificate],
        now: SystemTime,
    ) -> Result<rustls::server::ClientCertVerified, rustls::Error> {
        self.chain.verify_client_cert(end_entity, intermediates, now)?;
        match spiffe_id(&end_entity.0) {
            Some(id) if trust_domain(&id) == Some(self.trust_domain.as_str()) => {
                Ok(rustls::server::ClientCertVerified::assertion())
            }
            Some(id) => Err(rustls::Error::General(format!("client identity {} is not in trust domain {}", id, self.trust_domain))),
            None => Err(rustls::Error::General("client certificate has no SPIFFE URI SAN".into())),
        }
    }
}

/// Client side: chain against our roots with webpki (no host name: the
/// client sends no SNI), then the URI SAN must equal the pinned identity.
struct PinnedSanVerifier {
    roots: Vec<Vec<u8>>,
    expect: String,
}

static SIG_ALGS: &[&webpki::SignatureAlgorithm] = &[
    &webpki::ECDSA_P256_SHA256,
    &webpki::ECDSA_P256_SHA384,
    &webpki::ECDSA_P384_SHA256,
    &webpki::ECDSA_P384_SHA384,
    &webpki::RSA_PKCS1_2048_8192_SHA256,
    &webpki::RSA_PKCS1_2048_8192_SHA384,
    &webpki::RSA_PKCS1_2048_8192_SHA512,
    &webpki::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    &webpki::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    &webpki::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

impl rustls::client::ServerCertVerifier for PinnedSanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::Certificate,
        intermediates: &[rustls::Certificate],
        _server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        now: SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        let bad = |e: webpki::Error| rustls::Error::InvalidCertificateData(format!("{:?}", e));
        let anchors: Vec<webpki::TrustAnchor> =
            self.roots.iter().map(|r| webpki::TrustAnchor::try_from_cert_der(r)).collect::<Result<_, _>>().map_err(bad)?;
        let inter: Vec<&[u8]> = intermediates.iter().map(|c| c.0.as_slice()).collect();
        let ee = webpki::EndEntityCert::try_from(end_entity.0.as_slice()).map_err(bad)?;
        let time = webpki::Time::try_from(now).map_err(|_| rustls::Error::FailedToGetCurrentTime)?;
        ee.verify_is_valid_tls_server_cert(SIG_ALGS, &webpki::TlsServerTrustAnchors(&anchors), &inter, time).map_err(bad)?;
        let sans = uri_sans(&end_entity.0);
        if sans.iter().any(|s| *s == self.expect) {
            Ok(rustls::client::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificateData(format!("peer identity {:?} is not {}", sans, self.expect)))
        }
    }
}

fn ztunnel_suites() -> [rustls::SupportedCipherSuite; 2] {
    [rustls::cipher_suite::TLS13_AES_256_GCM_SHA384, rustls::cipher_suite::TLS13_AES_128_GCM_SHA256]
}

fn tls_info(version: Option<rustls::ProtocolVersion>, suite: Option<rustls::SupportedCipherSuite>, alpn: Option<&[u8]>) -> String {
    format!(
        "\"version\":{},\"cipher\":{},\"alpn\":{}",
        json_opt(&version.map(|v| format!("{:?}", v))),
        json_opt(&suite.map(|s| format!("{:?}", s.suite()))),
        json_opt(&alpn.map(|a| String::from_utf8_lossy(a).into_owned()))
    )
}

// ---- HTTP/2 plumbing ---------------------------------------------------------

/// Send all of `data` as flow control allows.
async fn send_all(s: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), String> {
    while !data.is_empty() {
        s.reserve_capacity(data.len());
        let cap = match PollFn(|cx: &mut Context<'_>| s.poll_capacity(cx)).await {
            None => return Err("stream closed".into()),
            Some(r) => r.map_err(|e| e.to_string())?,
        };
        if cap == 0 {
            // h2 may report a capacity of 0 (reassigned to other streams):
            // let the connection task run instead of spinning on this one.
            tokio::task::yield_now().await;
            continue;
        }
        let chunk = data.split_to(cap.min(data.len()));
        s.send_data(chunk, false).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// PING every `every`; a PING unanswered for 20 s ends the connection, as
/// ztunnel does. Returns when the connection is gone.
async fn pinger(mut pp: h2::PingPong, every: Duration, conn: tokio::task::JoinHandle<()>) -> u64 {
    let mut acks = 0;
    loop {
        tokio::time::sleep(every).await;
        if conn.is_finished() {
            return acks;
        }
        match tokio::time::timeout(Duration::from_secs(20), pp.ping(Ping::opaque())).await {
            Ok(Ok(_)) => acks += 1,
            Ok(Err(_)) => return acks,
            Err(_) => {
                println!("{{\"event\":\"ping-timeout\"}}");
                conn.abort();
                return acks;
            }
        }
    }
}

// ---- server ------------------------------------------------------------------

struct ServerCfg {
    allow: Vec<String>,
    ping: Duration,
}

async fn server(a: Args) -> Result<(), Fail> {
    let td = a.get("trust-domain")?;
    let chain = rustls::server::AllowAnyAuthenticatedClient::new(root_store(&a.get("roots")?)?);
    let verifier = Arc::new(TrustDomainClientVerifier { chain, trust_domain: td });
    let mut cfg = rustls::ServerConfig::builder()
        .with_cipher_suites(&ztunnel_suites())
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&a.get("cert")?)?, key(&a.get("key")?)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let scfg = Arc::new(ServerCfg { allow: a.all("allow"), ping: Duration::from_millis(a.num("ping-ms", 10_000)?) });
    let listener = TcpListener::bind(a.get("listen")?).await?;
    println!("{{\"event\":\"listening\",\"addr\":{}}}", json_str(&listener.local_addr()?.to_string()));
    loop {
        let (tcp, from) = listener.accept().await?;
        let (acceptor, scfg) = (acceptor.clone(), scfg.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_conn(tcp, acceptor, scfg).await {
                println!("{{\"event\":\"refused\",\"from\":{},\"error\":{}}}", json_str(&from.to_string()), json_str(&e.to_string()));
            }
        });
    }
}

async fn serve_conn(tcp: TcpStream, acceptor: tokio_rustls::TlsAcceptor, cfg: Arc<ServerCfg>) -> Result<(), Fail> {
    tcp.set_nodelay(true)?;
    let tls = acceptor.accept(tcp).await?;
    let (_, sc) = tls.get_ref();
    let info = tls_info(sc.protocol_version(), sc.negotiated_cipher_suite(), sc.alpn_protocol());
    if sc.alpn_protocol() != Some(b"h2") {
        return Err("client did not negotiate ALPN h2".into());
    }
    let peer = sc.peer_certificates().and_then(|c| c.first()).and_then(|c| spiffe_id(&c.0));
    println!("{{\"event\":\"tls\",\"peer\":{},{}}}", json_opt(&peer), info);
    let mut conn = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(200)
        .max_header_list_size(64 << 10)
        .handshake::<_, Bytes>(tls)
        .await?;
    let pp = conn.ping_pong().ok_or("no ping_pong")?;
    let every = cfg.ping;
    let driver = tokio::spawn(async move {
        while let Some(r) = conn.accept().await {
            match r {
                Ok((req, respond)) => {
                    tokio::spawn(serve_stream(req, respond, peer.clone(), cfg.clone()));
                }
                Err(e) => {
                    println!("{{\"event\":\"conn-error\",\"error\":{}}}", json_str(&e.to_string()));
                    break;
                }
            }
        }
    });
    pinger(pp, every, driver).await;
    Ok(())
}

async fn serve_stream(req: Request<RecvStream>, mut respond: h2::server::SendResponse<Bytes>, peer: Option<String>, cfg: Arc<ServerCfg>) {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(String::from);
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let (baggage, forwarded, traceparent) = (h("baggage"), h("forwarded"), h("traceparent"));
    let mut upstream = None;
    let status = if req.method() != Method::CONNECT {
        400
    } else if !cfg.allow.is_empty() && !peer.as_ref().map_or(false, |p| cfg.allow.contains(p)) {
        401
    } else {
        match authority.as_deref().and_then(|a| a.parse::<SocketAddr>().ok()) {
            None => 400,
            Some(addr) => match TcpStream::connect(addr).await {
                Ok(s) => {
                    upstream = Some(s);
                    200
                }
                Err(_) => 503,
            },
        }
    };
    println!(
        "{{\"event\":\"stream\",\"method\":{},\"authority\":{},\"status\":{},\"peer\":{},\"baggage\":{},\"forwarded\":{},\"traceparent\":{}}}",
        json_str(req.method().as_str()),
        json_opt(&authority),
        status,
        json_opt(&peer),
        json_opt(&baggage),
        json_opt(&forwarded),
        json_opt(&traceparent)
    );
    let resp = Response::builder().status(StatusCode::from_u16(status).unwrap()).body(()).unwrap();
    let up = match upstream {
        None => {
            let _ = respond.send_response(resp, true);
            return;
        }
        Some(s) => s,
    };
    let send = match respond.send_response(resp, false) {
        Ok(s) => s,
        Err(_) => return,
    };
    relay(req.into_body(), send, up).await;
}

/// Both directions until both are done: END_STREAM → shutdown(SHUT_WR), TCP
/// EOF → END_STREAM; a reset on either side resets the other.
async fn relay(mut recv: RecvStream, mut send: SendStream<Bytes>, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    let down = tokio::spawn(async move {
        while let Some(chunk) = recv.data().await {
            match chunk {
                Ok(b) => {
                    if wr.write_all(&b).await.is_err() {
                        return false;
                    }
                    let _ = recv.flow_control().release_capacity(b.len());
                }
                Err(_) => {
                    // RST_STREAM from the peer: reset the TCP side too.
                    let _ = wr.as_ref().set_linger(Some(Duration::from_secs(0)));
                    return false;
                }
            }
        }
        wr.shutdown().await.is_ok()
    });
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) => {
                let _ = send.send_data(Bytes::new(), true);
                break;
            }
            Ok(n) => {
                if send_all(&mut send, Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
            Err(_) => {
                send.send_reset(Reason::CANCEL);
                break;
            }
        }
    }
    let _ = down.await;
}

// ---- client ------------------------------------------------------------------

/// Deterministic payload for stream `i` (xorshift64), so both ends can hash it.
struct Gen(u64);
impl Gen {
    fn fill(&mut self, b: &mut [u8]) {
        for x in b.iter_mut() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *x = self.0 as u8;
        }
    }
}

struct StreamResult {
    status: u16,
    sent: u64,
    received: u64,
    sent_sha: String,
    recv_sha: String,
    error: Option<String>,
}

fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).expect("random");
    hex(&b)
}

async fn client(a: Args) -> Result<(), Fail> {
    let verifier = Arc::new(PinnedSanVerifier {
        roots: certs(&a.get("roots")?)?.into_iter().map(|c| c.0).collect(),
        expect: a.get("expect-san")?,
    });
    let mut cfg = rustls::ClientConfig::builder()
        .with_cipher_suites(&ztunnel_suites())
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_custom_certificate_verifier(verifier)
        .with_single_cert(certs(&a.get("cert")?)?, key(&a.get("key")?)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    cfg.enable_sni = false; // ztunnel sends no SNI
    cfg.session_storage = Arc::new(rustls::client::NoClientSessionStorage {}); // nor resumes
    let streams = a.num("streams", 1)?;
    let bytes = a.num("bytes", 0)?;
    let authority = a.get("authority")?;
    let ping = Duration::from_millis(a.num("ping-ms", 10_000)?);
    let peer = a.get("peer")?;
    let until_echoed = a.num("until-echoed", 0)? != 0;

    let tcp = TcpStream::connect(&peer).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::ServerName::try_from("hbone.invalid")?;
    let tls = match tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => {
            println!("{{\"error\":{},\"stage\":\"tls\"}}", json_str(&e.to_string()));
            std::process::exit(2);
        }
    };
    let (_, cc) = tls.get_ref();
    let info = tls_info(cc.protocol_version(), cc.negotiated_cipher_suite(), cc.alpn_protocol());
    if cc.alpn_protocol() != Some(b"h2") {
        println!("{{\"error\":\"server did not negotiate ALPN h2\",\"stage\":\"alpn\",{}}}", info);
        std::process::exit(2);
    }
    let (sr, mut conn) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME)
        .enable_push(false)
        .handshake::<_, Bytes>(tls)
        .await?;
    let pp = conn.ping_pong().ok_or("no ping_pong")?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let pings = tokio::spawn(pinger(pp, ping, driver));

    let trace = random_hex(16);
    let mut tasks = Vec::new();
    for i in 0..streams {
        let sr = sr.clone();
        let authority = authority.clone();
        let traceparent = format!("00-{}-{}-01", trace, random_hex(8));
        tasks.push(tokio::spawn(async move {
            one_stream(sr, &authority, &traceparent, i, bytes, until_echoed).await.unwrap_or_else(|e| StreamResult {
                status: 0,
                sent: 0,
                received: 0,
                sent_sha: String::new(),
                recv_sha: String::new(),
                error: Some(e),
            })
        }));
    }
    let mut out = Vec::new();
    let mut ok = 0;
    for t in tasks {
        let r = t.await?;
        let matched = r.status == 200 && r.error.is_none() && r.sent == r.received && r.sent_sha == r.recv_sha;
        if matched {
            ok += 1;
        }
        out.push(format!(
            "{{\"status\":{},\"sent\":{},\"received\":{},\"match\":{},\"sha256\":{},\"error\":{}}}",
            r.status,
            r.sent,
            r.received,
            matched,
            json_str(&r.recv_sha),
            json_opt(&r.error)
        ));
    }
    drop(sr);
    pings.abort();
    println!("{{\"streams\":{},\"ok\":{},{},\"results\":[{}]}}", streams, ok, info, out.join(","));
    Ok(())
}

async fn one_stream(
    sr: h2::client::SendRequest<Bytes>,
    authority: &str,
    traceparent: &str,
    i: u64,
    bytes: u64,
    until_echoed: bool,
) -> Result<StreamResult, String> {
    let mut sr = sr.ready().await.map_err(|e| e.to_string())?;
    let req = Request::builder()
        .method(Method::CONNECT)
        .uri(authority)
        .header(
            "baggage",
            "k8s.cluster.name=interop,k8s.namespace.name=home,k8s.deployment.name=ztunnel-peer,service.name=ztunnel-peer,service.version=0.1",
        )
        .header("forwarded", format!("for=\"127.0.0.1:{}\"", 40000 + i))
        .header("traceparent", traceparent)
        .body(())
        .map_err(|e| e.to_string())?;
    let (resp, mut send) = sr.send_request(req, false).map_err(|e| e.to_string())?;
    let upload = tokio::spawn(async move {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15 ^ (i + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut left = bytes;
        while left > 0 {
            let mut b = vec![0u8; left.min(256 << 10) as usize];
            g.fill(&mut b);
            ctx.update(&b);
            left -= b.len() as u64;
            send_all(&mut send, Bytes::from(b)).await?;
        }
        send.send_data(Bytes::new(), true).map_err(|e| e.to_string())?;
        Ok::<_, String>((hex(ctx.finish().as_ref()), send))
    });
    let resp = match resp.await {
        Ok(r) => r,
        Err(e) => {
            upload.abort();
            return Err(e.to_string());
        }
    };
    let status = resp.status().as_u16();
    let mut r = StreamResult { status, sent: 0, received: 0, sent_sha: String::new(), recv_sha: String::new(), error: None };
    if status != 200 {
        upload.abort();
        return Ok(r);
    }
    let mut body = resp.into_body();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(b) => {
                ctx.update(&b);
                r.received += b.len() as u64;
                let _ = body.flow_control().release_capacity(b.len());
                if until_echoed && r.received >= bytes {
                    break;
                }
            }
            Err(e) => {
                r.error = Some(e.to_string());
                break;
            }
        }
    }
    r.recv_sha = hex(ctx.finish().as_ref());
    match upload.await {
        Ok(Ok((sha, _send))) => {
            r.sent_sha = sha;
            r.sent = bytes;
        }
        Ok(Err(e)) => r.error = r.error.or(Some(e)),
        Err(e) => r.error = r.error.or(Some(e.to_string())),
    }
    Ok(r)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ztunnel-peer server|client --OPTION VALUE ... (see src/main.rs)";
    let (mode, rest) = match argv.split_first() {
        Some((m, r)) => (m.clone(), r.to_vec()),
        None => {
            eprintln!("{}", usage);
            std::process::exit(64);
        }
    };
    let args = match Args::parse(&rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ztunnel-peer: {}", e);
            std::process::exit(64);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let r = rt.block_on(async move {
        match mode.as_str() {
            "server" => server(args).await,
            "client" => client(args).await,
            m => Err(format!("unknown mode '{}'; {}", m, usage).into()),
        }
    });
    if let Err(e) = r {
        eprintln!("ztunnel-peer: {}", e);
        std::process::exit(1);
    }
}
