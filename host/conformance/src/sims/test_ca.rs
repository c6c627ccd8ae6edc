//! A throwaway certificate authority made with the `openssl` CLI, and server certificates it
//! issues for an IP address: what TLS test peers present, and what clients are told to trust.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::Error;

pub struct TestCa {
    /// The CA certificate (PEM): the bundle a client verifies against.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

/// A server certificate and its key, issued by a [`TestCa`].
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The sha256 of the certificate (DER), lower-case hex: what a pin names.
    pub sha256: String,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let program = super::which("openssl").ok_or(Error::MissingTool { tool: "openssl".into(), kind: "power", hint: "apt install openssl" })?;
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Start { what: "openssl".into(), source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Setup(format!("openssl {}: {}", args.first().copied().unwrap_or(""), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl TestCa {
    /// A new CA (EC P-256, valid two days) in `dir`, its files named after `name`.
    pub fn create(dir: &Path, name: &str) -> Result<TestCa, Error> {
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key.to_string_lossy(),
                "-out",
                &cert.to_string_lossy(),
                "-days",
                "2",
                "-subj",
                &format!("/CN=metalhost test CA {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        Ok(TestCa { cert, key, dir: dir.to_owned() })
    }

    /// A server certificate for `ip` (as its subjectAltName), signed by this CA.
    pub fn issue(&self, name: &str, ip: &str) -> Result<Issued, Error> {
        let (cert, key, csr, ext) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
            self.dir.join(format!("{name}.csr")),
            self.dir.join(format!("{name}.ext")),
        );
        std::fs::write(
            &ext,
            format!("subjectAltName=IP:{ip}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"),
        )
        .map_err(|e| Error::Setup(format!("certificate extensions: {e}")))?;
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key.to_string_lossy(),
                "-out",
                &csr.to_string_lossy(),
                "-subj",
                &format!("/CN={ip}"),
            ],
        )?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr.to_string_lossy(),
                "-CA",
                &self.cert.to_string_lossy(),
                "-CAkey",
                &self.key.to_string_lossy(),
                "-CAcreateserial",
                "-out",
                &cert.to_string_lossy(),
                "-days",
                "2",
                "-extfile",
                &ext.to_string_lossy(),
            ],
        )?;
        let fingerprint = openssl(&self.dir, &["x509", "-in", &cert.to_string_lossy(), "-noout", "-fingerprint", "-sha256"])?;
        let sha256 = fingerprint.split('=').nth(1).unwrap_or("").trim().replace(':', "").to_ascii_lowercase();
        Ok(Issued { cert, key, sha256 })
    }
}
