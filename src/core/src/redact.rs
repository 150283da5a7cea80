//! Error messages of the JSON and TOML parsers without the values they
//! quote. Configuration errors go to Envoy's log and the companion's
//! terminal, and a value in the wrong field may be a secret (a session key,
//! a URL with its password); field names stay, values go.

/// A name fit to be echoed in an error: at most 32 lower-case letters,
/// digits and `_`, as parameter and field names are. Anything else in a
/// name's place may be a secret pasted there.
pub fn is_plain_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `message` (serde's, as serde_json and toml word it) without the value
/// it quotes: `unknown variant `…``, `invalid type: string "…"`,
/// `invalid value: string "…"`. Other messages are returned as they are.
pub fn without_quoted_value(message: &str) -> String {
    for (quoting, plain) in [
        ("unknown variant ", "unknown variant"),
        ("invalid type: string ", "invalid type: a string"),
        ("invalid value: string ", "invalid value: a string"),
    ] {
        if message.starts_with(quoting) {
            // The last one: the value itself may hold ", expected".
            return match message.rfind(", expected") {
                Some(at) => format!("{plain}{}", &message[at..]),
                None => plain.to_owned(),
            };
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_and_what_was_expected_stays() {
        assert_eq!(
            without_quoted_value("unknown variant `s3cret, expected x`, expected `a` or `b`"),
            "unknown variant, expected `a` or `b`"
        );
        assert_eq!(
            without_quoted_value(r#"invalid type: string "s3cret", expected u64"#),
            "invalid type: a string, expected u64"
        );
        assert_eq!(
            without_quoted_value("invalid type: integer `5`, expected a string"),
            "invalid type: integer `5`, expected a string"
        );
    }
}
