//! The `acre` binary as a user runs it: keys created, listed, shown, exported and
//! imported, with passwords from a file or the environment, never a terminal.

use assert_cmd::Command;

fn acre(keystore: &std::path::Path) -> Command {
    let mut command = Command::cargo_bin("acre").expect("binary");
    command.arg("--keystore").arg(keystore).env_remove("ACRE_PASSWORD").env_remove("ACRE_KEYSTORE");
    command
}

fn json(output: &[u8]) -> serde_json::Value {
    serde_json::from_slice(output).expect("one JSON document")
}

#[test]
fn keys_round_trip_through_export_and_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    let password = dir.path().join("password");
    std::fs::write(&password, "hunter2\n").expect("password file");

    let created =
        acre(&keys).args(["--json", "key", "new", "alice"]).env("ACRE_PASSWORD", "hunter2").assert().success();
    let address = json(&created.get_output().stdout)["address"].as_str().expect("address").to_owned();
    assert!(address.starts_with("acre1"));

    let shown = acre(&keys).args(["--json", "key", "show", "alice"]).assert().success();
    assert_eq!(json(&shown.get_output().stdout)["address"], address.as_str());

    let secret = dir.path().join("alice.secret");
    acre(&keys)
        .args(["key", "export", "alice", "--out"])
        .arg(&secret)
        .arg("--password-file")
        .arg(&password)
        .assert()
        .success();
    acre(&keys)
        .args(["--json", "key", "import", "alice-copy", "--secret-file"])
        .arg(&secret)
        .env("ACRE_PASSWORD", "other")
        .assert()
        .success();
    let listed = acre(&keys).args(["--json", "key", "list"]).assert().success();
    let listed = json(&listed.get_output().stdout);
    let names: Vec<&str> = listed.as_array().expect("array").iter().filter_map(|k| k["name"].as_str()).collect();
    assert_eq!(names, ["alice", "alice-copy"]);
    assert!(listed.as_array().expect("array").iter().all(|k| k["address"] == address.as_str()));
}

#[test]
fn wrong_passwords_missing_keys_and_missing_passwords_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    acre(&keys).args(["key", "new", "bob"]).env("ACRE_PASSWORD", "right").assert().success();

    let out = dir.path().join("bob.secret");
    let wrong =
        acre(&keys).args(["key", "export", "bob", "--out"]).arg(&out).env("ACRE_PASSWORD", "wrong").assert().code(2);
    assert!(String::from_utf8_lossy(&wrong.get_output().stderr).contains("wrong password"));
    assert!(!out.exists(), "nothing is written when the password is wrong");

    let missing = acre(&keys).args(["--json", "key", "show", "nobody"]).assert().code(2);
    assert!(json(&missing.get_output().stdout)["error"].as_str().expect("error").contains("no key named"));

    let no_password = acre(&keys).args(["key", "new", "carol"]).assert().code(2);
    assert!(String::from_utf8_lossy(&no_password.get_output().stderr).contains("ACRE_PASSWORD"));

    acre(&keys).args(["key", "new", "bob"]).env("ACRE_PASSWORD", "x").assert().code(2);
    acre(&keys).args(["key", "frobnicate"]).assert().code(2);
}
