//! `component validate`, run as the binary.

use std::process::Command;

fn validate(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_component"))
        .arg("validate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_repository_descriptor_is_valid() {
    let (code, stdout, _) = validate(&[]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "component.json is valid: pollItems, request");
}

#[test]
fn a_descriptor_naming_a_missing_function_lists_every_problem() {
    let mut descriptor: serde_json::Value =
        serde_json::from_str(include_str!("../component.json")).unwrap();
    let actions = descriptor["actions"].as_object_mut().unwrap();
    let request = actions.remove("request").unwrap();
    actions.insert("ghost".into(), request);
    descriptor["envVars"]
        .as_object_mut()
        .unwrap()
        .remove("OAUTH_CLIENT_SECRET");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), descriptor.to_string()).unwrap();

    let (code, _, stderr) = validate(&["--descriptor", file.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has 3 problem(s):"), "{stderr}");
    for problem in [
        "action `ghost` is declared but not compiled in",
        "function `request` is compiled in but not declared",
        "envVars lacks OAUTH_CLIENT_SECRET",
    ] {
        assert!(stderr.contains(problem), "{problem} not in {stderr}");
    }
}

#[test]
fn an_unreadable_descriptor_is_bad_input() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "{\n  \"title\": ,\n}").unwrap();
    let path = file.path().to_str().unwrap();
    let (code, _, stderr) = validate(&["--descriptor", path]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "{path}: not a valid component descriptor at line 2"
        )),
        "{stderr}"
    );
    let (code, _, stderr) = validate(&["--descriptor", "/nonexistent/component.json"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read /nonexistent/component.json"),
        "{stderr}"
    );
}
