//! Making one client: URLs parsed with the reason they did not parse, TLS files read
//! and applied, the reply limits set, and connect errors put in words that name the
//! endpoint (never the password).

use std::time::Duration;

use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, TlsCertificates,
};

use super::config::{redact_url, RedisConfig};
use super::CONNECT_TIMEOUT;
use crate::error::{Error, Result};

pub(super) fn node_config(reply_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(reply_timeout))
}

pub(super) fn parse(url: &str) -> Result<ConnectionInfo> {
    url.into_connection_info().map_err(|e| {
        Error::Invalid(format!(
            "redis URL {} did not parse: {}",
            redact_url(url),
            super::config::url_problem(url, &e)
        ))
    })
}

pub(super) fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

pub(super) fn tls_files_without_tls(endpoint: &str) -> Error {
    Error::Invalid(format!(
        "TLS certificate files were given but {endpoint} is not a TLS URL: use rediss://"
    ))
}

pub(super) fn addr_text(a: &ConnectionAddr) -> String {
    match a {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => format!("{h}:{p}"),
        ConnectionAddr::Unix(p) => p.display().to_string(),
        other => format!("{other:?}"),
    }
}

/// A client for one server, with the password override and TLS files applied.
pub(super) fn node_client(
    mut info: ConnectionInfo,
    certs: Option<&TlsCertificates>,
    password: Option<&str>,
) -> Result<Client> {
    if let Some(pw) = password {
        let r = info.redis_settings().clone().set_password(pw);
        info = info.set_redis_settings(r);
    }
    match certs {
        Some(_) if !is_tls(&info) => Err(tls_files_without_tls(&addr_text(info.addr()))),
        Some(c) => Ok(Client::build_with_tls(info, c.clone())?),
        None => Ok(Client::open(info)?),
    }
}

/// The CA and client certificate files, read once at start.
pub(super) fn read_certs(cfg: &RedisConfig) -> Result<Option<TlsCertificates>> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p)
            .map_err(|e| Error::Invalid(format!("cannot read the {what} {}: {e}", p.display())))
    };
    let root_cert = cfg
        .ca_cert
        .as_deref()
        .map(|p| read(p, "CA certificate"))
        .transpose()?;
    let client_tls = match &cfg.client_cert {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read(cert, "client certificate")?,
            client_key: read(key, "client key")?,
        }),
        None => None,
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

/// Names the endpoint and says, in words, what failed; scrubs `secrets`.
pub(crate) fn connect_error(endpoint: &str, secrets: &[String], e: redis::RedisError) -> Error {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let reason = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        || lower.contains("wrongpass")
        || lower.contains("noauth")
    {
        format!("authentication failed (check the user and password): {text}")
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        format!("TLS handshake failed: {text}")
    } else if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel
        || lower.contains("master name")
    {
        format!("the sentinels know no such master: {text}")
    } else if e.is_connection_refusal() {
        format!("connection refused: {text}")
    } else if e.is_timeout() {
        format!("timed out: {text}")
    } else if lower.contains("parse error") || lower.contains("unexpected") {
        // The parser's own words ("Parse error at 1 Unexpected `84`") name a byte, not
        // the problem: something answered that does not speak the Redis protocol.
        "not a Redis server: its reply is not the Redis protocol (an HTTP server? a TLS \
         port reached with redis://? then use rediss://)"
            .to_string()
    } else if e.is_connection_dropped() || e.is_io_error() {
        format!("the server closed the connection (a TLS port reached with redis://? use rediss://): {text}")
    } else {
        text
    };
    // One line: a message goes into logs and JSON, where a newline splits it.
    let mut reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    for s in secrets {
        reason = reason.replace(s.as_str(), "***");
    }
    Error::Connect {
        endpoint: endpoint.to_string(),
        reason,
    }
}
