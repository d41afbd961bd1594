//! Checks an agent's `--resources` value the way the agent reads it, and
//! prints its normal form and the Mesos v1 JSON a master would see.
//!
//! `cargo run --example resources -- 'cpus:4;mem:8192;ports:[31000-32000]'`

use clap::Parser;
use orchestrator::core::Resources;

/// Parse and normalise Mesos-style resources.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Resources in the agent flag form (`cpus:4;mem:8192;ports:[31000-32000]`,
    /// `cpus(role):2` for a reservation) or as a v1 JSON array.
    resources: String,

    /// Also print the resources multiplied by this factor (e.g. instances).
    #[arg(long, env = "TIMES")]
    times: Option<f64>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let resources: Resources = match args.resources.parse() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("normal form: {resources}");
    match serde_json::to_string_pretty(&resources) {
        Ok(json) => println!("v1 JSON:\n{json}"),
        Err(e) => eprintln!("error: {e}"),
    }
    if let Some(n) = args.times {
        println!("times {n}: {}", &resources * n);
    }
    std::process::ExitCode::SUCCESS
}
