//! HTTPS end to end: the binary against the built-in target serving TLS in this process (its
//! handshake counters show what the client did): verification on by default, `--ca-cert`,
//! `--insecure`, name checks, SNI and ALPN, client certificates, session resumption, and the
//! error messages that name the cause.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_swarmer");
const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem");
const CLIENT_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/client.pem");
const CLIENT_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/client.key");

fn tls_target(ip: [u8; 4], client_ca: Option<&[u8]>) -> swarmer::target::Server {
    let config =
        swarmer::tls::server_config(swarmer::target::TEST_CERT_PEM, swarmer::target::TEST_KEY_PEM, client_ca).unwrap();
    swarmer::target::start_with((ip, 0).into(), 1, &[None], Some(config), false).unwrap()
}

/// Runs the binary; returns (exit code, stdout + stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().expect("run swarmer");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Requests and failures of the summary's Run time line and error table.
fn requests(text: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("Run time")).unwrap_or_else(|| panic!("no Run time line: {text}"));
    let words: Vec<&str> = line.split(' ').collect();
    let at = words.iter().position(|w| *w == "requests,").unwrap();
    words[at - 1].parse().unwrap()
}

#[test]
fn verified_https_with_a_ca_sni_and_alpn() {
    let server = tls_target([127, 0, 0, 1], None);
    let url = format!("https://localhost:{}/", server.addr.port());
    let (code, text) = run(&["-u", "4", "-r", "100", "-t", "1s", "--only-summary", "--ca-cert", CA, &url]);
    assert_eq!(code, 0, "{text}");
    let done = requests(&text);
    assert!(done > 100, "{text}");
    assert!(server.served() >= done, "the target answered every counted request");
    let tls = server.handshakes();
    // Keep-alive: one handshake per user (4), each with SNI "localhost" and ALPN http/1.1.
    assert_eq!(tls.full + tls.resumed, 4, "{tls:?}");
    assert_eq!((tls.sni, tls.alpn_http11), (4, 4), "{tls:?}");
    // Bodies of many TLS records, larger than the read buffer, plain and chunked: every
    // response complete (a lost or duplicated plaintext byte would break the framing).
    for path in ["bytes/200000", "chunked/100000"] {
        let url = format!("https://localhost:{}/{path}", server.addr.port());
        let (code, text) = run(&["-u", "2", "-r", "100", "-t", "1s", "--only-summary", "--ca-cert", CA, &url]);
        assert_eq!(code, 0, "{path}: {text}");
        assert!(requests(&text) > 10, "{path}: {text}");
    }
}

#[test]
fn verification_is_on_by_default_and_failures_name_the_cause() {
    let server = tls_target([127, 0, 0, 1], None);
    let port = server.addr.port();
    // The test CA is not among the webpki roots.
    let (code, text) = run(&["-u", "2", "-t", "1s", "--only-summary", &format!("https://localhost:{port}/")]);
    assert_eq!(code, 3, "nothing could connect: {text}");
    assert!(text.contains("tls: certificate: unknown issuer (use --ca-cert or --insecure)"), "{text}");
    assert_eq!(server.served(), 0);
    // --insecure accepts the certificate (the handshake signature is still checked).
    let (code, text) = run(&["-u", "2", "-t", "1s", "--only-summary", "-k", &format!("https://localhost:{port}/")]);
    assert_eq!(code, 0, "{text}");
    assert!(requests(&text) > 0);
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    // 127.0.0.2 is loopback, but the certificate names localhost, 127.0.0.1 and ::1 only.
    let server = tls_target([127, 0, 0, 2], None);
    let url = format!("https://127.0.0.2:{}/", server.addr.port());
    let (code, text) = run(&["-u", "1", "-t", "1s", "--only-summary", "--ca-cert", CA, &url]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("tls: certificate: not valid for the host name"), "{text}");
}

#[test]
fn client_certificates_for_servers_that_require_them() {
    let ca = std::fs::read(CA).unwrap();
    let server = tls_target([127, 0, 0, 1], Some(&ca));
    let url = format!("https://localhost:{}/", server.addr.port());
    let (code, text) = run(&["-u", "1", "-t", "1s", "--only-summary", "--ca-cert", CA, &url]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("tls: server requires a client certificate (--client-cert)"), "{text}");
    let (code, text) = run(&[
        "-u",
        "2",
        "-t",
        "1s",
        "--only-summary",
        "--ca-cert",
        CA,
        "--client-cert",
        CLIENT_CERT,
        "--client-key",
        CLIENT_KEY,
        &url,
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(requests(&text) > 0);
    // Flags that do not fit are usage errors.
    let (code, text) = run(&["--client-cert", CLIENT_CERT, &url]);
    assert_eq!(code, 2, "{text}");
    let (code, text) = run(&["-t", "1s", "--ca-cert", "/nonexistent.pem", &url]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("/nonexistent.pem"), "{text}");
}

#[test]
fn reconnects_resume_their_sessions() {
    let server = tls_target([127, 0, 0, 1], None);
    // /close ends every connection: each request needs a new handshake.
    let url = format!("https://localhost:{}/close", server.addr.port());
    let (code, text) = run(&["-u", "2", "-t", "1s", "--only-summary", "--ca-cert", CA, &url]);
    assert_eq!(code, 0, "{text}");
    let done = requests(&text);
    let tls = server.handshakes();
    assert!(done > 50, "{text}");
    assert!(tls.full + tls.resumed >= done, "a handshake per request: {tls:?}, {done} requests");
    // All but the first few (one per user and worker before a ticket exists) resume.
    assert!(tls.resumed * 10 >= (tls.full + tls.resumed) * 9, "{tls:?}");
}

#[test]
fn scenario_files_use_https_hosts_with_the_same_flags() {
    let server = tls_target([127, 0, 0, 1], None);
    let dir = std::env::temp_dir().join(format!("swarmer-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("https.toml");
    let port = server.addr.port();
    std::fs::write(
        &file,
        format!(
            "host = \"https://localhost:{port}\"\nusers = 2\nspawn_rate = 100\n[[user]]\nname = \"U\"\n[[user.task]]\n\
             request = {{ post = \"/api/echo/1\", json = {{ a = 1 }}, check = {{ json = [{{ path = \"/method\", eq = \"POST\" }}] }} }}\n"
        ),
    )
    .unwrap();
    let (code, text) = run(&["-f", file.to_str().unwrap(), "-t", "1s", "--only-summary", "--ca-cert", CA]);
    assert_eq!(code, 0, "{text}");
    assert!(requests(&text) > 0, "{text}");
    let (code, text) = run(&["-f", file.to_str().unwrap(), "-t", "1s", "--only-summary"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("unknown issuer"), "{text}");
    // Per host in the file: `insecure_hosts` skips verification for those hosts only (written
    // as a host, host:port or an https:// URL); another host's certificate is still verified.
    let body = std::fs::read_to_string(&file).unwrap();
    let other = format!("[[user.task]]\nrequest = {{ get = \"https://127.0.0.1:{port}/\", name = \"other host\" }}\n");
    for entry in ["localhost", &format!("localhost:{port}"), &format!("https://localhost:{port}/")] {
        std::fs::write(&file, format!("insecure_hosts = [\"{entry}\"]\n{body}{other}")).unwrap();
        let (code, text) = run(&["-f", file.to_str().unwrap(), "-t", "1s", "--only-summary"]);
        assert_eq!(code, 1, "{entry}: {text}");
        assert!(text.contains("GET other host: tls: certificate: unknown issuer"), "{text}");
        assert!(!text.contains("POST /api/echo/1: tls"), "{text}");
    }
    // An entry no request of the file goes to (a typo, a scheme that is not https) is refused.
    for (entry, expected) in [
        ("127.0.0.2", "no https request goes there; the https hosts are"),
        ("http://localhost", "expected a host name"),
    ] {
        std::fs::write(&file, format!("insecure_hosts = [\"{entry}\"]\n{body}")).unwrap();
        let (code, text) = run(&["-f", file.to_str().unwrap(), "--check"]);
        assert_eq!(code, 2, "{entry}: {text}");
        assert!(text.contains(expected) && text.contains("https.toml:1:19"), "{entry}: {text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
