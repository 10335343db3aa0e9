//! Panics as one log line: a request handler, a connection or a source run that panics is
//! contained where it happened (a 500, a closed connection, a failed attempt) and logged once,
//! without a multi-line backtrace on stderr.

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Replaces the default panic hook (which prints a backtrace with `RUST_BACKTRACE=1`) by one
/// error log line with the message and the location. Call after logging is set up.
pub fn log_as_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(panic = %message(info.payload()), location = %location, "panic");
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_str_and_string_payloads() {
        let a = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(super::message(a.as_ref()), "plain");
        let b = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(super::message(b.as_ref()), "formatted 42");
        let c = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(super::message(c.as_ref()), "(no message)");
    }
}
