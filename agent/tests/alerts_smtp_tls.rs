//! Email over TLS against a real SMTP server (aiosmtpd): STARTTLS and implicit TLS, with login,
//! through `cryptobot-agent alert test`. The server's certificate comes from a test CA made at run
//! time with `openssl`; the agent trusts it through the standard `SSL_CERT_FILE`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const SERVER: &str = r#"
import json, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"agent" and auth_data.password == b"smtp-secret-pw"
    return AuthResult(success=ok)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({"subject": envelope.content.decode("utf-8", "replace").split("Subject: ", 1)[1].split("\r\n", 1)[0],
                          "tls": server.transport.get_extra_info("ssl_object") is not None, "user": session.authenticated}), flush=True)
        return "250 Message accepted"

if mode == "starttls":
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            authenticator=authenticator, auth_required=True, auth_require_tls=True)
else:
    # aiosmtpd does not count implicit TLS for auth_require_tls; the whole connection is TLS here
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ssl_context=ctx,
                            authenticator=authenticator, auth_required=True, auth_require_tls=False)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for 127.0.0.1, signed by it.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

fn deliver_over(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-c", SERVER, mode, &port.to_string()])
        .arg(dir.path().join("server.pem"))
        .arg(dir.path().join("server.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let (tx, rx) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).ok().as_deref(),
        Some("READY"),
        "aiosmtpd did not start: is it installed (python3 -m pip install aiosmtpd)?"
    );
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = {:?}\n[alerts.email]\nto = [\"ops@example.com\"]\nfrom = \"agent@example.com\"\n\
             host = \"127.0.0.1\"\nport = {port}\ntls = \"{mode}\"\nuser = \"agent\"\npassword = \"smtp-secret-pw\"\ntimeout = \"10s\"\n",
            dir.path().join("state").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cryptobot-agent"))
        .args(["--config", config.to_str().unwrap(), "alert", "test"])
        .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
        .env_remove("ALERT_WEBHOOK_URL")
        .env_remove("CRYPTOBOT_ALERT_WEBHOOK")
        .env_remove("APPLICATIONINSIGHTS_CONNECTION_STRING")
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{mode}: {said}");
    assert!(
        !said.contains("smtp-secret-pw"),
        "the password leaked: {said}"
    );
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("a message");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["tls"], true, "{line}");
    assert_eq!(v["user"], true, "{line}");
    assert_eq!(v["subject"], "[TEST] Cryptobot Health Alert", "{line}");
    drop(server.stdin.take());
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn email_over_starttls_with_login() {
    deliver_over("starttls");
}

#[test]
fn email_over_implicit_tls_with_login() {
    deliver_over("implicit");
}
