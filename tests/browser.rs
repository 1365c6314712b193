//! The web UI and the HTML report in a real browser: headless Chromium with its driver, through
//! `tests/web/browser_test.py` (Selenium). It needs Debian's `chromium` and `chromium-driver`
//! and Python's `selenium` (`.ci/run` installs them); without them the test fails saying so.
//! Screenshots of the running UI and of the report land in `target/ui-screenshots/`.

mod common;

use std::process::Command;

use common::{closed_port, run, tempdir, Target, BIN};

#[test]
fn the_ui_and_the_report_in_headless_chromium() {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: apt-get install chromium chromium-driver (see .ci/run)"
        );
    }
    let selenium = Command::new("python3").args(["-c", "import selenium"]).status().unwrap();
    assert!(selenium.success(), "Python's selenium is missing: pip install selenium (see .ci/run)");
    let target = Target::start();
    let dir = tempdir("browser");
    // A report to open offline: a few seconds of the guide's flow.
    let report = dir.join("report.html");
    let flow = std::fs::read_to_string(format!("{}/scenarios/guide/flow.toml", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("http://127.0.0.1:8080", target.url.trim_end_matches('/'));
    let flow_file = dir.join("flow.toml");
    std::fs::write(&flow_file, flow).unwrap();
    let (code, out, err) =
        run(&["-f", flow_file.to_str().unwrap(), "-t", "4s", "--only-summary", "--html", report.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let open_report = dir.join("open.html");
    let delayed = format!("{}/delay/5ms", target.url);
    let (code, out, err) =
        run(&["--rate", "200", "-t", "3s", "--only-summary", &delayed, "--html", open_report.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    // The UI, in quick mode, waiting for the form.
    let port = closed_port();
    let url = format!("{}/", target.url);
    let mut ui = Command::new(BIN)
        .args(["--web", &url, "-P", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let shots = format!("{}/target/ui-screenshots", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&shots).unwrap();
    let script = format!("{}/tests/web/browser_test.py", env!("CARGO_MANIFEST_DIR"));
    let ui_url = format!("http://127.0.0.1:{port}");
    let output = Command::new("python3")
        .args([
            &script,
            &ui_url,
            target.url.trim_end_matches('/'),
            &target.url,
            report.to_str().unwrap(),
            open_report.to_str().unwrap(),
            &shots,
        ])
        .output()
        .unwrap();
    let _ = ui.kill();
    let _ = ui.wait();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    assert!(text.contains("browser checks passed"), "{text}");
    for shot in ["ui-running.png", "ui-charts.png", "report.png"] {
        assert!(std::path::Path::new(&format!("{shots}/{shot}")).exists(), "{shot}");
    }
}
