//! Certificates for tests, made with the `openssl` command: a CA, and
//! certificates it signs, as `{name}.crt` and `{name}.key` (PEM, P-256).

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new key in `{name}.key` and, with `rest`, what openssl makes of it.
fn with_new_key(dir: &Path, name: &str, rest: &[&str]) {
    let key = format!("{name}.key");
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
    ];
    let subject = format!("/CN={name}");
    args.push(&subject);
    args.extend(rest);
    openssl(dir, &args);
}

/// A CA in `dir`, with which [`Ca::issue`] signs.
pub struct Ca<'a> {
    dir: &'a Path,
    name: String,
}

impl<'a> Ca<'a> {
    /// A self-signed CA certificate, valid for two days.
    pub fn new(dir: &'a Path, name: &str) -> Self {
        let out = format!("{name}.crt");
        with_new_key(
            dir,
            name,
            &[
                "-x509",
                "-out",
                &out,
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self {
            dir,
            name: name.to_owned(),
        }
    }

    /// A certificate for `name` with these extensions (an openssl
    /// extension file's lines), signed by this CA.
    pub fn issue(&self, name: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        let csr = format!("{name}.csr");
        std::fs::write(self.dir.join(&ext), extensions).expect("extensions");
        with_new_key(self.dir, name, &["-out", &csr]);
        let (ca_crt, ca_key, out) = (
            format!("{}.crt", self.name),
            format!("{}.key", self.name),
            format!("{name}.crt"),
        );
        openssl(
            self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &out,
                "-extfile",
                &ext,
            ],
        );
    }

    /// A server certificate for the DNS name `host` (and 127.0.0.1).
    pub fn issue_server(&self, name: &str, host: &str) {
        self.issue(
            name,
            &format!(
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
                 subjectAltName=DNS:{host},IP:127.0.0.1\n"
            ),
        );
    }

    /// A client certificate.
    pub fn issue_client(&self, name: &str) {
        self.issue(
            name,
            &format!(
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:{name}\n"
            ),
        );
    }
}
