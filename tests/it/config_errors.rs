//! Bad configuration fails at start, naming the file, the key and the reason.

use crate::helpers::repo_dir;

fn copy_connectors() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xiezhi-conn-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    for e in std::fs::read_dir(repo_dir().join("connectors")).expect("connectors dir") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, dir.join(p.file_name().expect("name"))).expect("copy");
    }
    dir
}

/// Runs `xiezhi check` with the simulators' credentials set, returning (exit code, stderr).
fn check(connectors: &std::path::Path, with_secrets: bool) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xiezhi"));
    cmd.arg("check")
        .env("XIEZHI_CONNECTORS_DIR", connectors)
        .env("XIEZHI_DATA_DIR", connectors.join("data"));
    for (k, v) in xiezhi::sim::default_credentials() {
        if with_secrets {
            cmd.env(k, v);
        } else {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("xiezhi check runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn edit(dir: &std::path::Path, file: &str, from: &str, to: &str) -> std::path::PathBuf {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(&p, text.replacen(from, to, 1)).expect("write");
    p
}

#[test]
fn the_shipped_configuration_is_valid() {
    let dir = copy_connectors();
    let (code, err) = check(&dir, true);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_unknown_field_is_named_with_file_line_and_key() {
    let dir = copy_connectors();
    let p = edit(
        &dir,
        "provincial.toml",
        "[[streams]]",
        "[[streams]]\nschedul = \"x\"",
    );
    let (code, err) = check(&dir, true);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{}:", p.display()))
            && err.contains("schedul")
            && err.contains("unknown field"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_cron_is_named_with_file_and_key() {
    let dir = copy_connectors();
    let text = std::fs::read_to_string(dir.join("hotline-12345.toml")).expect("read");
    let line = text
        .lines()
        .find(|l| l.starts_with("schedule"))
        .expect("a schedule line")
        .to_owned();
    let p = edit(
        &dir,
        "hotline-12345.toml",
        &line,
        "schedule = \"61 * * * *\"",
    );
    let (code, err) = check(&dir, true);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&p.display().to_string()) && err.contains(".schedule") && err.contains("cron"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_missing_secret_is_named_with_its_variable() {
    let dir = copy_connectors();
    let (code, err) = check(&dir, false);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("auth.") && err.contains("is not set") && err.contains("XIEZHI_"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}
