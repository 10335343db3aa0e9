//! `collect[]` on the metrics path, as node_exporter's: `/metrics?collect[]=collector_runs`
//! runs and returns only the named sources, so a slow source can have its own scrape job and
//! interval. An unknown (or not enabled) name is a 400 naming it.

/// The sources a query string asks for: None without `collect[]` (every source), else the
/// names in order, each once. `known` are the enabled sources.
pub fn sources_asked(query: Option<&str>, known: &[&str]) -> Result<Option<Vec<String>>, String> {
    let mut asked: Vec<String> = Vec::new();
    let mut any = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key).as_deref() != Some("collect[]") {
            continue;
        }
        any = true;
        let name =
            percent_decode(value).ok_or_else(|| "collect[]: a value is not valid percent-encoded UTF-8".to_string())?;
        if !known.contains(&name.as_str()) {
            let shown: String = name.chars().take(100).collect();
            return Err(format!("collect[]: unknown source {shown:?} (enabled sources: {})", known.join(", ")));
        }
        if !asked.contains(&name) {
            asked.push(name);
        }
    }
    Ok(any.then_some(asked))
}

/// `%XX` and `+` (a space, as in form encoding) decoded; None if the bytes are not UTF-8 or an
/// escape is broken.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["collector_runs", "accounts", "clickhouse_system"];

    #[test]
    fn reads_collect_as_node_exporter_does() {
        assert_eq!(sources_asked(None, KNOWN), Ok(None));
        assert_eq!(sources_asked(Some("other=1"), KNOWN), Ok(None));
        assert_eq!(sources_asked(Some("collect[]=accounts"), KNOWN), Ok(Some(vec!["accounts".into()])));
        assert_eq!(
            sources_asked(Some("collect%5B%5D=accounts&collect[]=collector_runs&collect%5b%5d=accounts"), KNOWN),
            Ok(Some(vec!["accounts".into(), "collector_runs".into()])),
            "encoded brackets, each name once"
        );
        let err = sources_asked(Some("collect[]=accounts&collect[]=sqs"), KNOWN).unwrap_err();
        assert_eq!(
            err,
            "collect[]: unknown source \"sqs\" (enabled sources: collector_runs, accounts, clickhouse_system)"
        );
        assert!(sources_asked(Some("collect[]="), KNOWN).unwrap_err().contains("unknown source \"\""));
        assert!(sources_asked(Some("collect[]=%FF"), KNOWN).is_err());
        assert!(sources_asked(Some("collect[]=%4"), KNOWN).is_err());
    }
}
