//! The web UI in real Chromium, as a user meets it: `ui/tests/ui.test.mjs`
//! (node's test runner driving Chromium through `playwright-core`) starts
//! the `app-server` and `probe` example binaries on loopback, busybox
//! containers on the harness's dockerd, and checks login and roles, every
//! view against its API answer, live updates, the details panel with
//! sparklines and controls, search and shareable URLs, logs, a terminal,
//! bulk controls, a dead app server, and the page over TLS (wss) on an app
//! without probes. Screenshots of each view go to
//! `target/ui-screenshots/`.

use std::process::Command;

use orchestrator_testkit::{browser, docker, example_binary};

#[test]
fn the_web_ui_works_in_chromium_against_a_real_app_server_and_probe() {
    const TEST: &str = "the_web_ui_works_in_chromium_against_a_real_app_server_and_probe";
    let _alone = crate::HEAVY.blocking_write();
    let Some(docker) = docker(TEST) else { return };
    let Some(browser) = browser(TEST) else { return };
    let target = example_binary("app-server")
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .expect("target/")
        .to_path_buf();
    let status = Command::new("node")
        .args([
            "--test",
            "--test-timeout=240000",
            "--test-concurrency=1",
            "tests/ui.test.mjs",
        ])
        .current_dir(&browser.ui_dir)
        .env("ORCH_UI_APP_BIN", example_binary("app-server"))
        .env("ORCH_UI_PROBE_BIN", example_binary("probe"))
        .env("ORCH_TEST_DOCKER_HOST", &docker.host)
        .env("ORCH_TEST_BUSYBOX_IMAGE", &docker.busybox_image)
        .env("ORCH_CHROMIUM", &browser.chromium)
        .env("ORCH_UI_SCREENSHOTS", target.join("ui-screenshots"))
        .status()
        .expect("running node");
    assert!(status.success(), "the browser tests failed (their report is above)");
}
