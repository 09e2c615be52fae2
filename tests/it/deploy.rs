//! The files in `deploy/`, checked with the tools this machine has: the systemd unit with
//! `systemd-analyze verify` (the RabbitMQ definitions are checked against the code by a unit
//! test in `src/bus/amqp.rs`).

use crate::helpers::repo_dir;

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(repo_dir().join("deploy/systemd/xiezhi.service"))
        .expect("deploy/systemd/xiezhi.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/xiezhi run"),
        "{unit}"
    );
    // verify checks that the binaries exist: point it at the one cargo built.
    let dir = std::env::temp_dir().join(format!("xiezhi-unit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("xiezhi.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/xiezhi", env!("CARGO_BIN_EXE_xiezhi")),
    )
    .expect("write unit");
    // Bounded: verify must never hold the test binary up.
    let out = std::process::Command::new("timeout")
        .args(["60", "systemd-analyze", "verify"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings to systemd: any output is a finding.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    std::fs::remove_dir_all(dir).ok();
}
