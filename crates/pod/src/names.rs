//! Kubernetes name rules (apimachinery pkg/util/validation/validation.go),
//! returning the same messages: an empty list means valid.

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

/// Go's RegexError.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut m = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            m.push_str(" or ");
        }
        m.push_str(&format!("'{e}', "));
    }
    m.push_str(&format!("regex used for validation is '{fmt}')"));
    m
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// IsDNS1123Label (max 63).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !label_ok(s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// IsDNS1123Subdomain (max 253).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !s.split('.').all(label_ok) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            &format!("{LABEL_FMT}(\\.{LABEL_FMT})*"),
            &["example.com"],
        ));
    }
    errs
}

/// IsValidPortName (IANA_SVC_NAME).
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 15 {
        errs.push(max_len_error(15));
    }
    let b = s.as_bytes();
    if b.is_empty()
        || !b
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !b.iter().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if b.first() == Some(&b'-') || b.last() == Some(&b'-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

fn qualified_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// IsQualifiedName (label and annotation keys: `[prefix/]name`).
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = vec![];
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !name.is_empty() && !qualified_part_ok(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
                &["MyName", "my.name", "123-abc"],
            )
        ));
    }
    errs
}

/// IsValidLabelValue.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !qualified_part_ok(s) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// IsEnvVarName (relaxed form, Kubernetes 1.34+): printable ASCII but '='.
pub fn env_var_name(s: &str) -> Vec<String> {
    if !s.is_empty() && s.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        vec![]
    } else {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "web", "my-name", "123-abc", "a1"] {
            assert!(dns1123_label(ok).is_empty(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Web", "a_b", "a.b"] {
            assert_eq!(dns1123_label(bad).len(), 1, "{bad}");
        }
        assert_eq!(
            dns1123_label("Web")[0],
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("example.com").is_empty());
        assert!(dns1123_subdomain("a-b.c1").is_empty());
        let e = dns1123_subdomain("Web_1");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("a lowercase RFC 1123 subdomain must consist of"),
            "{}",
            e[0]
        );
        assert!(e[0].ends_with("(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        assert_eq!(dns1123_subdomain("a..b").len(), 1);
        assert_eq!(dns1123_subdomain(&"a".repeat(254)).len(), 1);
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("h2-c").is_empty());
        assert_eq!(
            port_name("8080"),
            vec!["must contain at least one letter (a-z)".to_string()]
        );
        assert!(port_name("a--b").contains(&"must not contain consecutive hyphens".to_string()));
        assert!(!port_name("HTTP").is_empty());
        assert!(!port_name("-http").is_empty());
        assert!(!port_name("abcdefghijklmnop").is_empty());
    }

    #[test]
    fn qualified_and_values() {
        assert!(qualified_name("app").is_empty());
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(!qualified_name("/x").is_empty());
        assert!(!qualified_name("Bad_/x").is_empty());
        assert!(!qualified_name("-x").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("My_value.1").is_empty());
        assert!(!label_value("bad value").is_empty());
        assert!(env_var_name("MY_VAR").is_empty());
        assert!(env_var_name("my.var-1").is_empty());
        assert!(!env_var_name("A=B").is_empty());
        assert!(!env_var_name("").is_empty());
    }
}
