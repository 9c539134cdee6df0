//! `adaftr`: train, evaluate, predict with and inspect AdaFTR models; generate data.

mod commands;
mod device;
mod distributed;
mod files;
mod inputs;
mod progress;
mod runtime;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "adaftr",
    version,
    about = "AdaFTR: adaptive fine-grained task relatedness for joint CTR/CVR estimation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate AliExpress-shaped data with known true pCTR, pCVR and relatedness.
    Synth(commands::synth::Args),
    /// Train a model and write it as one .safetensors bundle.
    Train(Box<commands::train::Args>),
    /// Evaluate a bundle on a labelled CSV.
    Eval(commands::eval::Args),
    /// Write pctr, pcvr, pctcvr and tau for every row of a CSV, labelled or not.
    Predict(commands::predict::Args),
    /// Convert a CSV to Parquet (which loads to the same dataset).
    Convert(commands::convert::Args),
    /// Benchmarks (driven by bench/run.sh; `--smoke` checks that they run).
    Bench(commands::bench::Args),
    /// Train a grid of variants x seeds and summarise them against the generator's truth.
    Study(Box<commands::study::Args>),
    /// Draw a study's PNG plots from its JSON lines.
    Plot(commands::plot::Args),
    /// Give a bundle's features display names, descriptions and groups (no retraining).
    Describe(commands::describe::Args),
    /// Show a bundle's config, schema and training summary.
    Inspect {
        /// The model bundle.
        #[arg(long)]
        model: PathBuf,
    },
}

fn main() -> ExitCode {
    runtime::configure();
    let cli = Cli::parse();
    let run = move || match cli.command {
        Command::Synth(a) => commands::synth::run(&a),
        Command::Train(a) => commands::train::run(&a),
        Command::Eval(a) => commands::eval::run(&a),
        Command::Predict(a) => commands::predict::run(&a),
        Command::Convert(a) => commands::convert::run(&a),
        Command::Study(a) => commands::study::run(&a),
        Command::Plot(a) => commands::plot::run(&a),
        Command::Describe(a) => commands::describe::run(&a),
        Command::Inspect { model } => commands::inspect::run(&model),
        Command::Bench(a) => commands::bench::run(&a),
    };
    let result = runtime::run_in_pool(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // As `{e:#}` would, with a location in a directory input named by its part.
            let chain: Vec<String> = e.chain().map(|c| inputs::locate_in_parts(&c.to_string())).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
