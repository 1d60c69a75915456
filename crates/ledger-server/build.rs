//! Build facts for the `ledger_build_info` metric: the git commit the binary
//! was built from, as `LEDGER_GIT_SHA`. Taken from the environment when set
//! (a build without the repository, e.g. a container), else from `git` when
//! it and the repository are there, else `unknown`. Nothing is downloaded.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LEDGER_GIT_SHA");
    let sha = std::env::var("LEDGER_GIT_SHA")
        .ok()
        .filter(|sha| !sha.trim().is_empty())
        .or_else(git_sha)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LEDGER_GIT_SHA={}", sha.trim());
}

/// The short commit of `HEAD`; asks cargo to run this again when `HEAD`
/// moves (a commit, a checkout), and only then.
fn git_sha() -> Option<String> {
    let sha = git(&["rev-parse", "--short=12", "HEAD"])?;
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = [
        git(&["rev-parse", "--git-path", "HEAD"]),
        branch.and_then(|branch| git(&["rev-parse", "--git-path", &branch])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ];
    // A path that does not exist would make cargo run this on every build.
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(sha)
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}
