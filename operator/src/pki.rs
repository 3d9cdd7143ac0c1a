//! The operator-managed certificate authority of a TLS cluster: one CA per
//! cluster, a member certificate valid for every pod name, the SRV domain
//! and the client Service (server and client use, so members present it to
//! each other), and short-lived client certificates the operator presents
//! to the members. ECDSA P-256 throughout.

use std::time::Duration;

/// How long a member certificate lasts, and how early it is renewed.
pub const MEMBER_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const CLIENT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("certificate does not parse: {0}")]
    Parse(String),
}

/// A certificate and its key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster's CA: the certificate members trust and the key that signs.
pub struct Ca {
    pub pair: Pair,
    issuer: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn validity(params: &mut rcgen::CertificateParams, lasts: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that disagree.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(lasts.as_secs() as i64);
}

impl Ca {
    /// A new self-signed CA for the cluster named `cn`.
    pub fn generate(cn: &str) -> Result<Ca, PkiError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{cn} ferrocd CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        let pair = Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Ca {
            pair,
            issuer: cert,
            key,
        })
    }

    /// The CA stored earlier (its Secret).
    pub fn from_pair(pair: Pair) -> Result<Ca, PkiError> {
        let key = rcgen::KeyPair::from_pem(&pair.key_pem)?;
        let params = rcgen::CertificateParams::from_ca_cert_pem(&pair.cert_pem)?;
        // Re-signing the parsed parameters gives an issuer with the same
        // subject and key: what signing needs.
        let issuer = params.self_signed(&key)?;
        Ok(Ca { pair, issuer, key })
    }

    fn issue(
        &self,
        cn: &str,
        sans: &[String],
        server: bool,
        lasts: Duration,
    ) -> Result<Pair, PkiError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(sans.to_vec())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = if server {
            vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, lasts);
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A member certificate for these names (DNS names or IP addresses),
    /// for serving and for dialing peers.
    pub fn issue_member(&self, cn: &str, sans: &[String]) -> Result<Pair, PkiError> {
        self.issue(cn, sans, true, MEMBER_VALIDITY)
    }

    /// A client certificate for an application's pods, renewed as a
    /// member's is.
    pub fn issue_user(&self, cn: &str) -> Result<Pair, PkiError> {
        self.issue(cn, &[], false, MEMBER_VALIDITY)
    }

    /// A short-lived client certificate for the operator's own requests.
    pub fn issue_client(&self, cn: &str) -> Result<Pair, PkiError> {
        self.issue(cn, &[], false, CLIENT_VALIDITY)
    }
}

/// Whether the certificate expires within `within` (or does not parse).
pub fn expires_within(cert_pem: &str, within: Duration) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return true;
    };
    let Ok(cert) = pem.parse_x509() else {
        return true;
    };
    let not_after = cert.validity().not_after.timestamp();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    not_after - now < within.as_secs() as i64
}

/// The certificate's subject common name (the etcd user it stands for).
pub fn common_name(cert_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The DNS names and addresses a certificate is valid for.
pub fn subject_alt_names(cert_pem: &str) -> Result<Vec<String>, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| PkiError::Parse(e.to_string()))?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => out.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                    4 => out.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        out.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Whether `cert_pem` was signed by the CA certificate `ca_pem`.
pub fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    let parse = |pem: &str| -> Option<Vec<u8>> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        Some(p.contents)
    };
    let (Some(cert_der), Some(ca_der)) = (parse(cert_pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(&cert_der),
        x509_parser::parse_x509_certificate(&ca_der),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_certificates_chain_to_the_ca_and_carry_the_names() {
        let ca = Ca::generate("demo").unwrap();
        let sans = vec![
            "*.demo.ns.svc.cluster.local".to_string(),
            "demo.ns.svc.cluster.local".into(),
            "127.0.0.1".into(),
        ];
        let member = ca.issue_member("demo", &sans).unwrap();
        assert!(signed_by(&member.cert_pem, &ca.pair.cert_pem));
        assert_eq!(subject_alt_names(&member.cert_pem).unwrap(), sans);
        assert!(!expires_within(&member.cert_pem, RENEW_BEFORE));
        assert!(expires_within(
            &member.cert_pem,
            MEMBER_VALIDITY + Duration::from_secs(3600)
        ));
        let other = Ca::generate("other").unwrap();
        assert!(!signed_by(&member.cert_pem, &other.pair.cert_pem));
    }

    #[test]
    fn a_stored_ca_keeps_issuing_certificates_its_certificate_verifies() {
        let ca = Ca::generate("demo").unwrap();
        let again = Ca::from_pair(ca.pair.clone()).unwrap();
        let client = again.issue_client("ferrocd-operator").unwrap();
        assert!(signed_by(&client.cert_pem, &ca.pair.cert_pem));
        assert!(expires_within(&client.cert_pem, RENEW_BEFORE));
        assert_eq!(
            common_name(&client.cert_pem).as_deref(),
            Some("ferrocd-operator")
        );
        let user = again.issue_user("app").unwrap();
        assert!(signed_by(&user.cert_pem, &ca.pair.cert_pem));
        assert!(!expires_within(&user.cert_pem, RENEW_BEFORE));
        assert_eq!(common_name(&user.cert_pem).as_deref(), Some("app"));
    }

    #[test]
    fn garbage_counts_as_expired() {
        assert!(expires_within("not a certificate", Duration::ZERO));
        assert!(!signed_by("x", "y"));
    }
}
