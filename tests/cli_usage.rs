//! The `weft` command line itself: version, help with examples, completions, the
//! refusals that exit 2 before anything binds, and `print-config`/`check-config`.

mod support;

use std::path::PathBuf;
use std::process::Command;

/// Runs `weft` with `args`; returns the exit code, stdout and stderr.
fn weft(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn version_and_help_exit_0_and_help_shows_examples_with_nc_c() {
    let (code, out, _) = weft(&["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("weft {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = weft(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Exit codes:"), "{out}");
    for service in ["chat", "finger", "logger", "echo"] {
        let (code, out, _) = weft(&["serve", service, "--help"]);
        assert_eq!(code, Some(0));
        assert!(out.contains("nc -C"), "{service}: {out}");
    }
    // Defaults are shown.
    let (_, out, _) = weft(&["serve", "qotd", "--help"]);
    assert!(
        out.contains("[default: \"An apple a day keeps the doctor away.\"]"),
        "{out}"
    );
    assert!(out.contains("[env: WEFT_CORES=]"), "{out}");
    assert!(out.contains("--drain-timeout"), "{out}");
}

#[test]
fn completions_are_generated_for_bash_and_zsh() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = weft(&["completions", shell]);
        assert_eq!(code, Some(0));
        assert!(
            out.contains("weft") && out.contains("max-connections-per-peer"),
            "{shell}"
        );
    }
}

#[test]
fn cores_above_the_machine_and_flag_value_syntax() {
    let (code, _, err) = weft(&["serve", "echo", "--cores", "100000"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("more than the"), "{err}");
    let (code, _, err) = weft(&["serve", "echo", "--cores=0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("at least 1"), "{err}");
    // The environment is read too, and refused the same way.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "echo"])
        .env("WEFT_CORES", "100000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_user_that_does_not_exist_is_one_line_and_exit_2() {
    let (code, _, err) = weft(&["serve", "echo", "tcp:0", "--uid", "no-such-user-weft"]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no such user: \"no-such-user-weft\""), "{err}");
}

#[test]
fn print_config_is_a_valid_config_and_check_config_names_the_bad_line() {
    let dir = temp_dir("check");
    let (code, printed, _) = weft(&["print-config"]);
    assert_eq!(code, Some(0));
    let good = dir.join("good.toml");
    std::fs::write(&good, &printed).unwrap();
    let (code, _, err) = weft(&["check-config", good.to_str().unwrap()]);
    assert_eq!((code, err.as_str()), (Some(0), ""));

    let cases: [(&str, &str, &[&str]); 5] = [
        ("not TOML", "cores = = 2\n", &[":1:"]),
        (
            "an unknown key",
            "drain_timeout = 1.0\n\n[[service]]\nkind = \"echo\"\nlisten = [\"tcp:0\"]\nfrming = \"line\"\n",
            &["frming"],
        ),
        (
            "a bad endpoint",
            "[[service]]\nkind = \"echo\"\nlisten = [\"tcp:99999\"]\n",
            &["`port`"],
        ),
        (
            "an unknown service",
            "[[service]]\nkind = \"gopher\"\nlisten = [\"tcp:0\"]\n",
            &["gopher"],
        ),
        ("a bad top-level value", "cores = \"two\"\n", &[":1:", "cores"]),
    ];
    for (what, text, needles) in cases {
        let f = dir.join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let (code, _, err) = weft(&["check-config", f.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.contains("bad.toml"), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} in {err}");
        }
        // `run` refuses it the same way, before binding anything.
        let (code, _, _) = weft(&["run", f.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{what}");
    }
    let (code, _, err) = weft(&["check-config", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read"), "{err}");
}
