//! Certificates the tests make with rcgen: CAs, and server certificates from them, valid or
//! expired (the TLS tests, and PostgreSQL's TLS in `postgres.rs`).

/// A self-signed CA named `name`: its certificate and key.
pub fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = ca_params(name).self_signed(&key).expect("CA certificate");
    (cert, key)
}

fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    params
}

/// A server certificate for `names` from the CA (`ca_key`, named `ca_name`); `expired`: its
/// validity ended in 2020.
pub fn server(ca_key: &rcgen::KeyPair, ca_name: &str, names: &[&str], expired: bool) -> (rcgen::Certificate, rcgen::KeyPair) {
    let issuer = rcgen::Issuer::new(ca_params(ca_name), ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("names");
    params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or("server"));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    } else {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
    }
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (cert, key)
}
