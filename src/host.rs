//! One host of a fleet as the operator gives it (`[USER@]HOST[:PORT]`, or a line of a hosts
//! file), validated before anything reaches ssh. It depends on nothing else in the crate, so
//! both the fleet and the crate's [`crate::error::Error`] can name it.

/// A host that cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host '{spec}': {why}")]
pub struct HostError {
    /// As given.
    pub spec: String,
    /// What is wrong with it.
    pub why: String,
}

/// One host as given: `[USER@]HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// As given, for the output.
    pub spec: String,
    pub(crate) user: Option<String>,
    pub(crate) name: String,
    pub(crate) port: Option<u16>,
}

/// Parse and validate one host. Names are what DNS, `/etc/hosts` and ssh aliases use:
/// letters, digits, `.`, `-`, `_`; an IPv6 address goes in brackets. Anything else (a leading
/// `-`, spaces, quotes, `;`, `$`) is refused before ssh sees it.
pub fn parse_host(spec: &str) -> Result<Host, HostError> {
    let bad = |why: String| HostError {
        spec: spec.to_owned(),
        why,
    };
    let word = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    let (user, rest) = match spec.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, spec),
    };
    if let Some(u) = user {
        if !word(u) {
            return Err(bad("not a valid user name".into()));
        }
    }
    let (name, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("unclosed '['".into()))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad("not an IPv6 address".into()));
        }
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad("expected :PORT after ']'".into())),
        };
        (addr.to_owned(), port)
    } else {
        match rest.split_once(':') {
            Some((n, p)) => (n.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        }
    };
    if !name.contains(':') && !word(&name) {
        return Err(bad(
            "not a valid host name (letters, digits, '.', '-', '_')".into(),
        ));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(format!("port '{p}' is not a number from 1 to 65535")))?,
        ),
        None => None,
    };
    Ok(Host {
        spec: spec.to_owned(),
        user: user.map(str::to_owned),
        name,
        port,
    })
}

/// Hosts from a file: one per line, `#` starts a comment, blank lines are skipped.
pub fn parse_hosts_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}
