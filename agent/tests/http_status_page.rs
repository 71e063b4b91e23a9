//! The status page rendered by a real headless Chromium: the screenshot is not blank and shows
//! the status colour, and the DOM holds the status word and the real listen port.

mod common;

use std::{collections::HashSet, path::Path, process::Stdio, time::Duration};

use cryptobot_agent::health::Status;
use tokio::process::Command;

/// The background of the CRITICAL badge in the page's CSS (`#cf222e`).
const CRITICAL_RED: [u8; 3] = [0xcf, 0x22, 0x2e];

/// Runs headless Chromium with a fresh profile in `profile`; returns stdout.
async fn chromium(profile: &Path, args: &[String]) -> String {
    let chromium = common::require_tool("chromium", "chromium");
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("chromium finishes within 120 s")
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Width, height and RGB pixels of an 8-bit PNG.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).expect("the screenshot exists");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("one frame");
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "the screenshot is not in colour: {:?}",
        info.color_type
    );
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_status_page() {
    let served = common::serve_sample(Status::Critical).await;
    let port = served.addr.port();
    let url = format!("http://{}/", served.addr);
    let (code, _, html) = common::get(served.addr, "/", &[]).await;
    assert_eq!(code, 200);
    assert!(html.contains("CRITICAL"));

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("page.png");
    chromium(
        &dir.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600".into(),
            url.clone(),
        ],
    )
    .await;
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1200, 1600));
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        colours.len() >= 32,
        "the screenshot is (nearly) blank: {} distinct colours",
        colours.len()
    );
    let red = pixels.iter().filter(|p| near(**p, CRITICAL_RED)).count();
    assert!(
        red >= 2_000,
        "the red CRITICAL badge is not on the screenshot ({red} red pixels)"
    );

    let dom = chromium(&dir.path().join("profile-dom"), &["--dump-dom".into(), url]).await;
    assert!(dom.contains("CRITICAL"), "{dom}");
    assert!(
        dom.contains(&format!("127.0.0.1:{port}/health")),
        "the page does not name the listen port {port}:\n{dom}"
    );
    assert!(dom.contains("<svg"), "no charts:\n{dom}");
}
