//! `make deps` on machines prepared to lack what the build needs: the check runs against
//! a library directory made for the test, so it cannot be fooled by what this machine has.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-deps.sh")
}

/// The packages the check says are missing when the only libraries are `files` in one
/// directory and, with `no_tools`, none of g++, make and chromium are on the PATH.
fn missing_with(files: &[&str], no_tools: bool) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in files {
        std::fs::write(dir.path().join(file), b"").expect("library file");
    }
    let output = Command::new("bash")
        .arg(script())
        .arg("--check")
        .env("ACRE_LIB_DIRS", dir.path())
        .env("ACRE_NO_PATH_TOOLS", if no_tools { "1" } else { "0" })
        .output()
        .expect("run install-deps.sh");
    assert!(output.status.success(), "check failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").lines().map(str::to_owned).collect()
}

#[test]
fn the_cpp_library_alone_is_not_libclang() {
    // Debian images ship libclang-cpp without libclang; clang-sys cannot load it.
    let missing = missing_with(&["libclang-cpp.so.14", "libclangBasic.a", "libclang-cpp.so"], false);
    assert!(missing.contains(&"libclang-dev".to_owned()), "{missing:?}");
}

#[test]
fn an_empty_machine_needs_every_package() {
    let missing = missing_with(&[], true);
    assert_eq!(missing, ["libclang-dev", "g++", "make", "chromium"]);
}

#[test]
fn each_name_clang_sys_loads_counts_as_libclang() {
    for name in ["libclang.so", "libclang.so.1", "libclang-14.so", "libclang-14.so.1", "libclang-14.0.6.so"] {
        let missing = missing_with(&[name], false);
        assert!(!missing.contains(&"libclang-dev".to_owned()), "{name} should count: {missing:?}");
    }
}
