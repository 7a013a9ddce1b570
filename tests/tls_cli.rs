//! TLS at the command line (issue 19), against the binary: every unusable TLS file is a usage
//! error at start (exit 2) naming the flag, the file and what is wrong; SIGHUP reloads the
//! certificate from the same files without dropping a connection, and a reload that fails keeps
//! the old one.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Output;

use common::{run_to_end, saythat, ServerProcess, TIMEOUT};
use rcgen::{date_time_ymd, CertificateParams, DnType, KeyPair};
use tls::{tls_connect, tls_send_expect, Pki};

/// `saythat serve ARGS` must exit 2 at once with a message holding every one of `needles`.
#[track_caller]
fn refused(args: &[&str], needles: &[&str]) {
    let args = [&["serve", "--listen", "127.0.0.1:0"], args].concat();
    let output = run_to_end(saythat(&args), None, TIMEOUT);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: the message should name {needle:?}\n{}",
            describe(&output)
        );
    }
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstderr: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    )
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn unusable_tls_files_are_usage_errors_naming_the_file() {
    let pki = Pki::new();
    let (cert, key) = (text(&pki.cert), text(&pki.key));
    refused(&["--tls-cert", cert], &["--tls-key", "--tls-cert"]);
    refused(&["--tls-key", key], &["--tls-cert", "--tls-key"]);
    refused(
        &["--tls-client-ca", cert],
        &["--tls-client-ca", "--tls-cert"],
    );
    refused(&["--metrics-tls"], &["--metrics-tls", "--tls-cert"]);
    let missing = pki.dir.join("missing.pem");
    refused(
        &["--tls-cert", text(&missing), "--tls-key", key],
        &["--tls-cert", "cannot read", text(&missing)],
    );
    // The key file given as the certificate: no certificate in it, and the other way round.
    refused(
        &["--tls-cert", key, "--tls-key", key],
        &["--tls-cert", "holds no certificate", key],
    );
    refused(
        &["--tls-cert", cert, "--tls-key", cert],
        &["--tls-key", "holds no private key", cert],
    );
    // A key that is not the certificate's.
    let (_, other_key) = pki.leaf("other");
    let other = pki.file("other.key", &other_key.serialize_pem());
    refused(
        &["--tls-cert", cert, "--tls-key", text(&other)],
        &["--tls-key", "does not match", text(&other), cert],
    );
    // An expired certificate.
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "old");
    params.not_before = date_time_ymd(2000, 1, 1);
    params.not_after = date_time_ymd(2001, 1, 1);
    let old_key = KeyPair::generate().unwrap();
    let old = params.signed_by(&old_key, &pki.ca).unwrap();
    let old_cert = pki.file("old.pem", &old.pem());
    let old_key = pki.file("old.key", &old_key.serialize_pem());
    refused(
        &["--tls-cert", text(&old_cert), "--tls-key", text(&old_key)],
        &["--tls-cert", "expired", "2001", text(&old_cert)],
    );
    // Not PEM at all, as a client CA.
    let junk = pki.file(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n",
    );
    refused(
        &[
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            text(&junk),
        ],
        &["--tls-client-ca", text(&junk)],
    );
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_connections() {
    let pki = Pki::new();
    let first = std::fs::read(&pki.cert).unwrap();
    let mut server =
        ServerProcess::serve(&["--tls-cert", text(&pki.cert), "--tls-key", text(&pki.key)]);
    let config = pki.client(&[], None);
    let mut old = tls_connect(server.addr(), config.clone()).unwrap();
    tls_send_expect(&mut old, b"before", b"You say that before");
    let served = |config| {
        let client = tls_connect(server.addr(), config).unwrap();
        client.conn.peer_certificates().unwrap()[0].to_vec()
    };
    let before = served(config.clone());
    assert!(first.len() > before.len(), "the file holds the chain");

    let renewed = pki.write_server("server-2");
    server.signal("HUP");
    server.wait_for_line("TLS certificate reloaded");
    let after = tls_connect(server.addr(), config.clone()).unwrap();
    assert_eq!(after.conn.peer_certificates().unwrap()[0].to_vec(), renewed);
    assert_ne!(renewed, before);
    // The connection from before the reload still answers.
    tls_send_expect(&mut old, b"after", b"You say that after");

    // A reload that fails (a key that is not the certificate's) keeps the certificate in use.
    std::fs::write(&pki.key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    server.signal("HUP");
    let line = server.wait_for_line("cannot reload TLS");
    assert!(line.contains("does not match"), "{line}");
    let kept = tls_connect(server.addr(), config).unwrap();
    assert_eq!(kept.conn.peer_certificates().unwrap()[0].to_vec(), renewed);
    server.assert_alive("after a failed reload");
}
