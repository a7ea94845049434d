//! The man pages and shell completions that `dynhostd generate` derives from the CLI definition
//! (shipped by contrib/build-static): every subcommand `--help` lists is in each of them, the
//! hidden `generate` itself is not advertised, and the outputs are well-formed for their tools
//! (bash -n, groff warnings) where those tools are installed.

#[path = "support/netns.rs"]
mod netns;

use std::process::{Command, Output};

fn dynhostd(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_dynhostd"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dynhostd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(dynhostd(args).stdout).unwrap()
}

/// The subcommands as `--help` lists them (clap's own `help` aside), so a new subcommand is
/// checked without touching this test.
fn subcommands() -> Vec<String> {
    let help = stdout(&["--help"]);
    let list: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    for expected in ["run", "update", "check", "status", "detect"] {
        assert!(
            list.iter().any(|c| c == expected),
            "{expected} missing from --help: {help}"
        );
    }
    assert!(
        !list.iter().any(|c| c == "generate"),
        "generate is for packagers: it must stay hidden"
    );
    list
}

#[test]
fn the_man_page_covers_every_subcommand() {
    let man = stdout(&["generate", "man"]);
    assert!(man.contains(".TH dynhostd 1"), "{man}");
    for sub in subcommands() {
        assert!(
            // roff escapes every hyphen, the subcommand's own too (check-now).
            man.contains(&format!("dynhostd\\-{}(1)", sub.replace('-', "\\-"))),
            "{sub} missing from the man page"
        );
    }
    // groff checks the page's syntax; without it the rest of the test still runs.
    let groff = Command::new("groff").arg("--version").output().is_ok();
    if netns::prerequisite(
        "the_man_page_covers_every_subcommand",
        groff,
        "groff is not installed (apt-get install groff-base): the page's syntax is not checked",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("dynhostd.1");
        std::fs::write(&page, &man).unwrap();
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn man_dir_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    dynhostd(&["generate", "man", "--dir", dir.path().to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = subcommands()
        .iter()
        .map(|s| format!("dynhostd-{s}.1"))
        .collect();
    expected.push("dynhostd.1".into());
    // `ovh` has subcommands of its own: clap_mangen gives each its page too.
    for s in ["auth", "provision", "list", "rotate", "remove"] {
        expected.push(format!("dynhostd-ovh-{s}.1"));
    }
    expected.sort();
    assert_eq!(names, expected);
    let update = std::fs::read_to_string(dir.path().join("dynhostd-update.1")).unwrap();
    // The options of a subcommand are on its own page.
    assert!(update.contains("\\-\\-ip"), "{update}");
    assert!(update.contains("\\-\\-force"), "{update}");
}

#[test]
fn completions_cover_every_subcommand_in_each_shell() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&["generate", "completions", shell]);
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{sub} missing from {shell}");
        }
        assert!(
            !script.contains("generate"),
            "{shell} completes the hidden generate subcommand"
        );
        // Options of subcommands too: update's --ip.
        assert!(script.contains("ip"), "{shell}: no --ip");
    }
    // bash can at least parse what it will source.
    let bash = stdout(&["generate", "completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dynhostd.bash");
    std::fs::write(&file, &bash).unwrap();
    let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And registers the completion for dynhostd.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p dynhostd", file.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dynhostd"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dynhostd"))
        .args(["generate", "completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
