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
    /// Open a volume in the viewer (the demo when none is given).
    #[cfg(feature = "gui")]
    View {
        input: Option<PathBuf>,
        /// Landmarks to show and edit (Slicer `.mrk.json`); saved back on every change.
        #[arg(long)]
        landmarks: Option<PathBuf>,
        /// Annotate a worklist: a folder of cases or a manifest CSV with a `case` column.
        #[arg(long, conflicts_with_all = ["input", "landmarks"])]
        worklist: Option<PathBuf>,
        /// With --worklist: save landmarks here instead of next to each case.
        #[arg(long, requires = "worklist")]
        out: Option<PathBuf>,
    },
    /// Summarise a worklist and export its landmarks as CSV.
    Worklist {
        /// A folder of cases or a manifest CSV with a `case` column.
        source: PathBuf,
        /// Where the landmarks are saved (default: next to each case).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write case, landmark, x, y, z (LPS mm), status for every landmark.
        #[arg(long)]
        export_csv: Option<PathBuf>,
    },
    /// Test helper: save landmarks to FILE over and over until killed.
    #[command(hide = true)]
    StressSave { file: PathBuf },
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
        Some(Command::Worklist {
            source,
            out,
            export_csv,
        }) => {
            let w = heartloc::worklist::Worklist::open(&source, out.as_deref())?;
            let (todo, done, skipped) = w.counts();
            println!(
                "{} cases: {done} done, {todo} to do, {skipped} skipped",
                w.cases.len()
            );
            if let Some(csv) = export_csv {
                let rows = w.export_csv(&csv)?;
                println!("wrote {rows} rows to {}", csv.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::StressSave { file }) => {
            // Every version has all points at (i, i, i) and a long note, so a torn file would
            // show as invalid JSON or mixed versions.
            let note = "x".repeat(64 * 1024);
            for i in 0u64.. {
                let v = i as f64;
                let points: Vec<_> = ["aortic-valve", "heart-center", "apex"]
                    .iter()
                    .map(|label| heartloc::io::markups::ControlPoint {
                        label: label.to_string(),
                        description: note.clone(),
                        position_lps: Some([v, v, v]),
                        status: "defined".into(),
                    })
                    .collect();
                heartloc::io::markups::write(&file, &points)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "gui")]
        Some(Command::View {
            input,
            landmarks,
            worklist,
            out,
        }) => heartloc::app::run(heartloc::app::Launch {
            input,
            landmarks,
            worklist,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        #[cfg(feature = "gui")]
        None => heartloc::app::run(Default::default()).map(|_| ExitCode::SUCCESS),
        #[cfg(not(feature = "gui"))]
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
