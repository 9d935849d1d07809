//! Batch runs that survive a kill and spread over machines (issue 21): `locate --list
//! --jsonl-out` killed with SIGKILL mid-run and resumed ends with exactly one whole line per
//! input; two shards of a list together give the lines of one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const N: usize = 20;

fn inputs(dir: &Path) -> PathBuf {
    let mut list = String::from("# twenty small phantoms\n\n");
    for i in 0..N {
        // Slightly different sizes so that every result differs.
        let (vol, _) = heartloc::phantom::chest_ct([40 + i % 5, 40, 36], 9.0);
        let p = dir.join(format!("case{i:02}.nii.gz"));
        heartloc::io::nifti::write(&p, &vol).unwrap();
        list += &format!("{}\n", p.display());
    }
    let path = dir.join("list.txt");
    std::fs::write(&path, list).unwrap();
    path
}

fn locate(list: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heartloc"));
    c.args(["locate", "--method", "heatmap", "--list"])
        .arg(list)
        .arg("--jsonl-out")
        .arg(out)
        .args(extra);
    c
}

/// Every line of a JSONL file, parsed, by input, with the timings (which differ run to run)
/// removed; each line must be whole JSON and name its input once.
fn lines(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "last line cut: {text:?}");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
        assert!(v.get("error").is_none(), "{v}");
        for r in v["results"].as_array_mut().unwrap() {
            let o = r.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("timing");
        }
        let input = v["input"].as_str().unwrap().to_string();
        assert!(
            out.insert(input, v).is_none(),
            "duplicate line in {}",
            path.display()
        );
    }
    out
}

#[test]
fn killed_resumed_and_sharded_runs_give_every_line_once() {
    let tmp = tempfile::tempdir().unwrap();
    let list = inputs(tmp.path());

    let whole = tmp.path().join("whole.jsonl");
    assert!(locate(&list, &whole, &[]).status().unwrap().success());
    let reference = lines(&whole);
    assert_eq!(reference.len(), N);
    // An existing output is never overwritten without --resume.
    let again = locate(&list, &whole, &[]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    // Kill a run with SIGKILL once a few lines are there, then resume it.
    let killed = tmp.path().join("killed.jsonl");
    let mut child = locate(&list, &killed, &[]).spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        let n = std::fs::read_to_string(&killed)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= 3 || start.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = std::fs::read_to_string(&killed).unwrap();
    let done = before.lines().count();
    assert!((3..N).contains(&done), "killed after {done} lines");
    // As if the kill had landed inside a write: a line without its end.
    std::fs::write(&killed, before + "{\"input\": \"half a li").unwrap();
    let resumed = locate(&list, &killed, &["--resume"]).status().unwrap();
    assert!(resumed.success());
    assert_eq!(lines(&killed), reference);
    // Resuming a finished run does nothing.
    let len = std::fs::metadata(&killed).unwrap().len();
    assert!(locate(&list, &killed, &["--resume"])
        .status()
        .unwrap()
        .success());
    assert_eq!(std::fs::metadata(&killed).unwrap().len(), len);

    // Two shards, as two jobs of an array would run them.
    let mut merged = BTreeMap::new();
    for k in ["1/2", "2/2"] {
        let out = tmp.path().join(format!("shard{}.jsonl", &k[..1]));
        assert!(locate(&list, &out, &["--shard", k])
            .status()
            .unwrap()
            .success());
        let part = lines(&out);
        assert_eq!(part.len(), N / 2, "shard {k}");
        merged.extend(part);
    }
    assert_eq!(merged, reference);
}
