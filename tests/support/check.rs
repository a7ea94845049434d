//! `dynhostd check` on a config text, black-box: what the tests of refused values share.

use std::path::Path;
use std::process::Command;

/// Writes `text` to `dir/c.toml` and runs `check` on it: (exit code, stderr).
pub fn check_config(dir: &Path, text: &str) -> (Option<i32>, String) {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dynhostd"))
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .env_remove("DYNHOSTD_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
