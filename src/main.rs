//! The `heartloc` binary: CLI subcommands, and the app when the `gui` feature is on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use heartloc::info::Report;
use heartloc::io::{self, OpenOptions};

#[derive(Parser)]
#[command(name = "heartloc", version, about = "Find the heart in 3D CT and MRI")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print what a NIfTI file or DICOM series folder holds: dims, spacing, orientation,
    /// world box (LPS mm), intensity range and header warnings.
    Info {
        /// `.nii`/`.nii.gz` files or DICOM series folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// One JSON object per input, one per line.
        #[arg(long)]
        json: bool,
        /// For a folder with several DICOM series: which SeriesInstanceUID to read.
        #[arg(long)]
        series: Option<String>,
    },
    /// List the DICOM series in a folder.
    Series { folder: PathBuf },
    /// Open a volume in the viewer.
    #[cfg(feature = "gui")]
    View { input: Option<PathBuf> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Info {
            inputs,
            json,
            series,
        }) => {
            let options = OpenOptions { series_uid: series };
            let mut failed = false;
            for input in &inputs {
                match io::open(input, &options) {
                    Ok((vol, format)) => {
                        let report = Report::new(&input.display().to_string(), format, &vol);
                        if json {
                            println!("{}", serde_json::to_string(&report)?);
                        } else {
                            print!("{}", report.to_text());
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Some(Command::Series { folder }) => {
            for s in io::dicom::list_series(&folder)? {
                println!(
                    "{}  {:<3} {:>4} slices  {}×{}  {}",
                    s.series_uid, s.modality, s.slices, s.columns, s.rows, s.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "gui")]
        Some(Command::View { input }) => heartloc::app::run(input).map(|_| ExitCode::SUCCESS),
        #[cfg(feature = "gui")]
        None => heartloc::app::run(None).map(|_| ExitCode::SUCCESS),
        #[cfg(not(feature = "gui"))]
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
