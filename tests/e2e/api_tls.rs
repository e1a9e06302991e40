//! The Engine API over TCP is TLS with the operator's client certificates, plain text only on
//! loopback or when asked for by name, and no listener answers what a web page can make a
//! browser send (issue 15, item 3).

use std::path::Path;
use std::process::Command;
use std::process::Output;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::SanType;

use crate::support::Cluster;
use crate::support::SWARMCTL;
use crate::support::SWARMD;
use crate::support::free_port;

/// An operator's CA, with the API's server certificate (for 127.0.0.1) and a client
/// certificate, laid out as the docker CLI's `DOCKER_CERT_PATH` wants: `ca.pem`, `cert.pem`,
/// `key.pem` (the client's), and `server-cert.pem`, `server-key.pem`.
fn operator_pki(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "operator CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let leaf = |name: &str, purpose: ExtendedKeyUsagePurpose, sans: Vec<SanType>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![purpose];
        p.subject_alt_names = sans;
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(
        "swarmd api",
        ExtendedKeyUsagePurpose::ServerAuth,
        vec![
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::DnsName("localhost".try_into().unwrap()),
        ],
    );
    let (client, client_key) = leaf("operator", ExtendedKeyUsagePurpose::ClientAuth, Vec::new());
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("cert.pem", client),
        ("key.pem", client_key),
        ("server-cert.pem", server),
        ("server-key.pem", server_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// The docker CLI against `host` with the certificates in `cert_path` (`DOCKER_TLS_VERIFY`).
fn docker_tls(host: &str, cert_path: &Path, args: &[&str]) -> Output {
    let config = tempfile::tempdir().unwrap();
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", cert_path)
        .env("DOCKER_CONFIG", config.path())
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `curl` on the control socket: (HTTP status, body).
fn curl(socket: &Path, headers: &[&str], method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(socket)
        .args(["-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.arg(format!("http://localhost{path}")).output().unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `swarmd init` with `args` in a new data dir under `root`, expected to refuse: its message.
fn init_refused(root: &Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(SWARMD)
        .arg("--data-dir")
        .arg(root.join(name))
        .args([
            "init",
            "--listen-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--executor",
            "sim",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "swarmd init {args:?} should refuse: {}",
        text(&out)
    );
    text(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_api_takes_only_the_operators_client_certificates() {
    // The docker CLI parts follow the compatibility suite's switch; the rest always runs.
    let docker_cli = crate::docker_cli::docker_available().is_some();
    let pki = tempfile::tempdir().unwrap();
    operator_pki(pki.path());
    let file = |n: &str| pki.path().join(n).display().to_string();
    let api = format!("127.0.0.1:{}", free_port());
    let mut c = Cluster::new();
    let m1 = c.init(
        "m1",
        &[
            "--api-addr",
            &api,
            "--tlsverify",
            "--tlscacert",
            &file("ca.pem"),
            "--tlscert",
            &file("server-cert.pem"),
            "--tlskey",
            &file("server-key.pem"),
        ],
    );
    let host = format!("tcp://{api}");

    // The docker CLI with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, unchanged.
    if docker_cli {
        let info = docker_tls(&host, pki.path(), &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert!(info.status.success(), "{}", text(&info));
        assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), "active");
        let created = docker_tls(
            &host,
            pki.path(),
            &["service", "create", "-d", "--name", "web", "busybox"],
        );
        assert!(created.status.success(), "{}", text(&created));
        let ls = docker_tls(&host, pki.path(), &["service", "ls", "--format", "{{.Name}}"]);
        assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "web", "{}", text(&ls));
    } else {
        c.ctl_ok(m1, &["service", "create", "--name", "web", "busybox"]);
    }

    // swarmctl speaks it too: with the docker CLI's flags, and with its environment.
    let ctl = Command::new(SWARMCTL)
        .args(["-H", &host, "--tlsverify", "--tlscacert", &file("ca.pem")])
        .args([
            "--tlscert",
            &file("cert.pem"),
            "--tlskey",
            &file("key.pem"),
            "service",
            "ls",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(ctl.status.success(), "{}", text(&ctl));
    assert_eq!(String::from_utf8_lossy(&ctl.stdout).lines().count(), 1);
    let ctl = Command::new(SWARMCTL)
        .args(["-H", &host, "node", "ls", "-q"])
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", pki.path())
        .output()
        .unwrap();
    assert!(ctl.status.success(), "{}", text(&ctl));
    let plain = Command::new(SWARMCTL)
        .args(["-H", &host, "node", "ls"])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP to the TLS port fails");

    if docker_cli {
        // No client certificate: refused at the handshake.
        let anonymous = Command::new("docker")
            .args(["-H", &host, "--tls", "--tlscacert", &file("ca.pem"), "service", "ls"])
            .env("DOCKER_CONFIG", tempfile::tempdir().unwrap().path())
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .output()
            .unwrap();
        assert!(!anonymous.status.success(), "{}", text(&anonymous));
    }

    // A node certificate from the cluster CA grants nothing.
    let node_certs = tempfile::tempdir().unwrap();
    std::fs::copy(pki.path().join("ca.pem"), node_certs.path().join("ca.pem")).unwrap();
    let data = &c.nodes[m1].data_dir;
    std::fs::copy(data.join("certs/node.pem"), node_certs.path().join("cert.pem")).unwrap();
    std::fs::copy(data.join("certs/node.key"), node_certs.path().join("key.pem")).unwrap();
    if docker_cli {
        let as_node = docker_tls(&host, node_certs.path(), &["service", "ls"]);
        assert!(!as_node.status.success(), "{}", text(&as_node));
    }
    let as_node = Command::new(SWARMCTL)
        .args(["-H", &host, "service", "ls"])
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", node_certs.path())
        .output()
        .unwrap();
    assert!(!as_node.status.success(), "{}", text(&as_node));

    // Plain text off loopback only when asked for by name; TLS files only with --tlsverify;
    // never the cluster's CA as the API's client CA.
    let root = c.root.path().to_path_buf();
    let wide = format!("0.0.0.0:{}", free_port());
    let refused = init_refused(&root, "plain", &["--api-addr", &wide]);
    assert!(
        refused.contains("refusing to serve the Engine API in plain text"),
        "{refused}"
    );
    let refused = init_refused(
        &root,
        "half",
        &["--api-addr", &api, "--tlscert", &file("server-cert.pem")],
    );
    assert!(refused.contains("need --tlsverify"), "{refused}");
    let refused = init_refused(
        &root,
        "nokey",
        &["--api-addr", &api, "--tlsverify", "--tlscacert", &file("ca.pem")],
    );
    assert!(refused.contains("--tlsverify needs --tlscert"), "{refused}");
    // The cluster CA anywhere in the bundle, not only first.
    let bundle = root.join("bundle.pem");
    let mut pems = std::fs::read_to_string(pki.path().join("ca.pem")).unwrap();
    pems.push_str(&std::fs::read_to_string(data.join("certs/ca.pem")).unwrap());
    std::fs::write(&bundle, pems).unwrap();
    let cluster_ca = bundle.display().to_string();
    let token = c.token(m1, "worker");
    let joined = Command::new(SWARMD)
        .arg("--data-dir")
        .arg(root.join("w-cluster-ca"))
        .args(["join", "--token", &token, "--executor", "sim"])
        .args(["--listen-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port()), "--tlsverify"])
        .args(["--tlscacert", &cluster_ca, "--tlscert", &file("server-cert.pem")])
        .args(["--tlskey", &file("server-key.pem"), &c.nodes[m1].addr])
        .output()
        .unwrap();
    assert!(!joined.status.success());
    assert!(text(&joined).contains("holds the cluster's CA"), "{}", text(&joined));
    let m2 = c.init("m2", &["--api-addr", &wide, "--insecure-api"]);
    assert!(c.nodes[m2].log_text().contains("plain text without authentication"));
    // --insecure-api is kept across restarts; a node.json without it (from before TLS) is
    // refused as init refuses it now.
    c.stop(m2);
    c.restart(m2);
    c.stop(m2);
    let config = c.nodes[m2].data_dir.join("node.json");
    let kept = std::fs::read_to_string(&config).unwrap();
    assert!(kept.contains("\"insecure_api\": true"), "{kept}");
    std::fs::write(
        &config,
        kept.replace("\"insecure_api\": true", "\"insecure_api\": false"),
    )
    .unwrap();
    let before = c.nodes[m2].log_text().len();
    c.start_run_as("m2", &[]);
    let status = c.wait_exit(m2, std::time::Duration::from_secs(30)).expect("m2 stops");
    assert!(!status.success());
    let log = c.nodes[m2].log_text();
    assert!(
        log[before..].contains("refusing to serve the Engine API in plain text"),
        "{}",
        &log[before..]
    );
}

/// What a web page can make a browser send is refused on the control socket (and so on
/// loopback TCP, which has the same checks): an Origin, a form or a non-JSON body, and a Host
/// that is a DNS name, which a page can rebind to 127.0.0.1. What the CLIs send passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_browser_could_be_made_to_send_are_refused() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let socket = c.nodes[m1].socket();
    let spec = r#"{"Name":"csrf","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}"#;
    let json = "Content-Type: application/json";
    for (headers, needle) in [
        (vec!["Content-Type: text/plain"], "must be JSON"),
        (
            vec!["Content-Type: application/x-www-form-urlencoded"],
            "form submissions",
        ),
        (vec![json, "Origin: https://evil.example"], "Origin"),
        (vec![json, "Host: rebound.evil.example"], "Host"),
    ] {
        let (status, body) = curl(&socket, &headers, "POST", "/v1.47/services/create", Some(spec));
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert!(body.contains(needle), "{headers:?}: {body}");
    }
    let (status, body) = curl(&socket, &[json], "POST", "/v1.47/services/create", Some(spec));
    assert_eq!(status, 201, "{body}");
    // The docker CLI labels bodiless POSTs text/plain: they pass.
    let (status, body) = curl(
        &socket,
        &["Content-Type: text/plain"],
        "POST",
        "/v1.47/swarm/leave",
        None,
    );
    assert_ne!(status, 403, "{body}");
    let services = c.ctl_ok(m1, &["service", "ls", "-q"]);
    assert_eq!(services.lines().count(), 1, "only the JSON request created a service");
}
