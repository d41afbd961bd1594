//! Builds the web UI from the workspace's `ui/` (TypeScript, bundled by
//! esbuild after `npm ci`) into `OUT_DIR/ui`, and writes `ui_assets.rs`,
//! which the server embeds with `include_bytes!`.
//!
//! A packaged crate has no `ui/` beside it: it carries the built UI in
//! `ui-dist/` instead (`scripts/package-ui` puts it there before
//! `cargo package`), and this script embeds that.
//!
//! Cargo reruns this only when the UI's sources or lockfile change. Without
//! Node.js and npm the crate still builds: it warns and embeds a page that
//! says how to get the UI. A broken UI source fails the build, as a broken
//! Rust source would. `ORCH_UI_SKIP=1` skips the UI build on purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ui = manifest.join("../ui");
    let dist = out.join("ui");
    let prebuilt = manifest.join("ui-dist");
    println!("cargo:rerun-if-env-changed=ORCH_UI_SKIP");
    println!("cargo:rerun-if-changed={}", prebuilt.display());
    for watched in ["src", "index.html", "build.mjs", "package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", ui.join(watched).display());
    }
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist).expect("creating OUT_DIR/ui");

    let built = if std::env::var_os("ORCH_UI_SKIP").is_some_and(|v| v == "1") {
        fallback(&dist, "the UI build was skipped (ORCH_UI_SKIP=1)");
        false
    } else if !ui.join("package.json").exists() && prebuilt.join("index.html").exists() {
        for f in std::fs::read_dir(&prebuilt).expect("reading ui-dist").flatten() {
            std::fs::copy(f.path(), dist.join(f.file_name())).expect("copying ui-dist");
        }
        true
    } else if !ui.join("package.json").exists() {
        fallback(&dist, "the UI sources (ui/) are not beside this crate");
        false
    } else if let Err(why) = npm_ci(&ui) {
        fallback(&dist, &why);
        false
    } else {
        let status = Command::new("node")
            .arg("build.mjs")
            .arg(&dist)
            .current_dir(&ui)
            .status()
            .expect("node ran a moment ago");
        assert!(
            status.success(),
            "the web UI did not build (ui/build.mjs): see the errors above"
        );
        true
    };
    write_assets(&out, &dist, built);
}

/// Installs the UI's npm dependencies when the lockfile changed since the
/// last install.
fn npm_ci(ui: &Path) -> Result<(), String> {
    let works = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works("node") || !works("npm") {
        return Err("Node.js and npm are not installed".into());
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&ui.join("node_modules/.package-lock.json"));
    if installed.is_some() && installed >= modified(&ui.join("package-lock.json")) {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(ui)
        .output()
        .map_err(|e| format!("npm ci: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "npm ci failed in {}: {}",
            ui.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        ))
    }
}

fn fallback(dist: &Path, why: &str) {
    println!("cargo:warning=orchestrator-topology is built without its web UI: {why}. Install Node.js 18+ and npm, then rebuild; the API works either way.");
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>orchestrator topology</title>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>The web UI was not built</h1><p>This app server was built without its web UI: {}.</p>\
         <p>Install Node.js (18 or newer) and npm, then rebuild (<code>cargo build</code>); the build \
         runs <code>npm ci</code> and bundles <code>ui/</code> by itself.</p>\
         <p>The API works: <a href=\"/api/topology\">/api/topology</a>, \
         <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>",
        why.replace('<', "&lt;")
    );
    std::fs::write(dist.join("index.html"), page).expect("writing the fallback page");
}

fn write_assets(out: &Path, dist: &Path, built: bool) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dist)
        .expect("reading OUT_DIR/ui")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut code = format!("const UI_BUILT: bool = {built};\nstatic ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("UTF-8 asset names");
        let content_type = match f.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("woff2") => "font/woff2",
            Some("map") | Some("json") => "application/json",
            _ => "application/octet-stream",
        };
        code.push_str(&format!(
            "    ({name:?}, {content_type:?}, include_bytes!({:?})),\n",
            f.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("ui_assets.rs"), code).expect("writing ui_assets.rs");
}
