//! How a command-line run ends when its output's reader goes away.

/// A command-line run piped into `head` ends quietly when the reader goes, as other
/// command-line tools do: Rust ignores SIGPIPE, so the next print panics with "failed printing
/// to stdout: Broken pipe"; that one panic becomes exit status 141 (128 + SIGPIPE, what a shell
/// reports for a tool killed by it), every other panic is reported as before. Not for the app.
pub fn quit_on_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("Broken pipe") && text.contains("failed printing") {
            std::process::exit(141);
        }
        report(info);
    }));
}
