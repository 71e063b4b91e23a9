//! The committed Rust code in `src/gen/` must be what `tonic-prost-build` makes of the `.proto`
//! files today (compiled by the pure-Rust `protox`, so no `protoc` is needed). Run with
//! `UPDATE_GENERATED=1` to rewrite the committed file after changing a `.proto` file.

use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &["cryptobot/agent/v1/agent.proto"];
const GENERATED: &str = "cryptobot.agent.v1.rs";

fn regenerate(out_dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = protox::compile(PROTOS, [root]).unwrap_or_else(|e| panic!("{e:?}"));
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .out_dir(out_dir)
        .compile_fds(files)
        .expect("code generation");
    out_dir.join(GENERATED)
}

#[test]
fn generated_code_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = std::fs::read_to_string(regenerate(dir.path())).unwrap();
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join("gen")
        .join(GENERATED);
    if std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1") {
        std::fs::write(&committed_path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(fresh.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} is not what the .proto files generate (first difference at line {line}); \
             regenerate it with: UPDATE_GENERATED=1 cargo test -p cryptobot-proto --test generated_code_is_current",
            committed_path.display()
        );
    }
}

#[test]
fn every_proto_file_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut dirs = vec![root.join("cryptobot")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                found.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    assert_eq!(found, PROTOS, "list every .proto file in PROTOS");
}
