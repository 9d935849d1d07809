//! Layers only look down. Every module of `src/` has a rank; a module may name only modules of
//! a lower rank (or itself), and the GUI, GPU, ML and CLI crates only where their rank allows.
//! A new module fails this test until it is given a rank here (and a line in ARCHITECTURE.md).

use std::path::{Path, PathBuf};

/// (module, rank): the top-level modules of the library, lowest first, then the binary.
const RANKS: &[(&str, u8)] = &[
    ("volume", 0),
    ("stats", 0),
    ("io", 1),
    ("phantom", 1),
    ("annotation", 2),
    ("info", 2),
    ("mesh", 2),
    ("slice_view", 2),
    ("overlay", 3),
    ("worklist", 3),
    ("ml", 3),
    ("worker", 4),
    ("render", 4),
    ("app", 5),
    // The binary (`main.rs`, `cli/`).
    ("bin", 6),
];

/// External crates and the only modules that may use them.
const CRATES: &[(&str, &[&str])] = &[
    ("egui", &["render", "app"]),
    ("eframe", &["render", "app"]),
    ("egui_wgpu", &["render", "app"]),
    ("wgpu", &["render", "app"]),
    ("rfd", &["app"]),
    ("png", &["app"]),
    ("candle_core", &["ml", "worker"]),
    ("candle_nn", &["ml", "worker"]),
    ("clap", &["bin"]),
    // `thiserror` inside, `anyhow` at the edge: the binary and the app's launcher.
    ("anyhow", &["bin", "app"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`lib.rs`: `None`).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .to_string();
    let name = first.trim_end_matches(".rs").to_string();
    match name.as_str() {
        "lib" => None,
        "main" | "cli" => Some("bin".into()),
        _ => Some(name),
    }
}

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// Module names after `prefix` (`crate::`, `heartloc::`) in code (comments removed).
fn named_after<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    code.match_indices(prefix).filter_map(move |(i, _)| {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &code[i + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

#[test]
fn every_module_has_a_rank_and_names_only_lower_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 30, "found only {} files", files.len());
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let Some(module) = module_of(rel) else {
            continue;
        };
        let Some(mine) = rank(&module) else {
            problems.push(format!("{}: module `{module}` has no rank", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let prefix = if module == "bin" {
                "heartloc::"
            } else {
                "crate::"
            };
            for used in named_after(code, prefix) {
                match rank(used) {
                    Some(r) if r < mine || used == module => {}
                    _ => problems.push(format!(
                        "{}:{}: `{module}` (rank {mine}) names `{used}`",
                        rel.display(),
                        n + 1
                    )),
                }
            }
            for (krate, allowed) in CRATES {
                let uses = named_after(code, &format!("{krate}::")).next().is_some()
                    || code.trim_start().starts_with(&format!("use {krate}"));
                if uses && !allowed.contains(&module.as_str()) {
                    problems.push(format!(
                        "{}:{}: `{module}` uses the `{krate}` crate",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_catches_upward_names() {
    // The scanner itself: a name in a comment does not count, one in code does.
    let code = "use crate::app::HeartlocApp; // crate::render";
    let code = code.split("//").next().unwrap();
    assert_eq!(named_after(code, "crate::").collect::<Vec<_>>(), ["app"]);
    assert_eq!(
        named_after("heartloc::io::open", "heartloc::").next(),
        Some("io")
    );
    assert_eq!(named_after("my_crate::io", "crate::").next(), None);
}
