//! Certificates for tests, made with the openssl commands the README shows.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in a temp dir, and certificates it signs.
pub struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl; the README test command does)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        openssl(
            pki.dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        pki
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `name` valid for `ips` and localhost (server and client use).
    pub fn issue(&self, name: &str, ips: &[Ipv4Addr]) -> (PathBuf, PathBuf) {
        let mut sans: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        sans.push("DNS:localhost".into());
        self.issue_with_sans(name, &sans)
    }

    /// A certificate for `name` with exactly these subjectAltName entries.
    pub fn issue_with_sans(&self, name: &str, sans: &[String]) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            d.join(format!("{name}.ext")),
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth,clientAuth\n",
                sans.join(",")
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "30",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        (d.join(format!("{name}.pem")), d.join(format!("{name}.key")))
    }
}
