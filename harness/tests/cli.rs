//! The `cachescope` binary as a user runs it.

use std::process::Command;

fn cachescope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cachescope")).args(args).output().expect("run cachescope")
}

#[test]
fn help_and_version() {
    let help = cachescope(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("selfcheck"), "{text}");
    let version = cachescope(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("cachescope {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn selfcheck_is_deterministic_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let args = ["selfcheck", "--requests", "20000", "--keys", "2000", "--seed", "9"];
    let a = cachescope(&[&args[..], &["--json", json.to_str().unwrap()]].concat());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = cachescope(&args);
    assert_eq!(a.stdout, b.stdout, "same seed, same report");
    let stdout = String::from_utf8_lossy(&a.stdout);
    assert!(stdout.contains("all invariants held"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["config"]["requests"], 20000);
    assert!(report["rows"].as_array().unwrap().len() >= 4);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = cachescope(&["selfcheck", "--keys", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("number of keys must be at least 1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = cachescope(&["nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}
