//! The `heartloc` binary: CLI subcommands, and the app when the `gui` feature is on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use heartloc::info::Report;
use heartloc::io::{self, OpenOptions};
use heartloc::ml::preprocess::Method;

mod cli {
    pub mod eval;
    pub mod locate;
    pub mod mesh;
    pub mod pipe;
    pub mod train;
}

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
    Info(InfoArgs),
    /// List the DICOM image series under a folder (searched recursively): modality,
    /// description, date, images, dims, spacing, orientation; open one with `--series UID`.
    Series(SeriesArgs),
    /// Open a volume in the viewer (the demo when none is given).
    #[cfg(feature = "gui")]
    View(ViewArgs),
    /// Summarise a worklist and export its landmarks as CSV.
    Worklist(WorklistArgs),
    /// Train one method's model (coarse + fine 3D U-Nets) on a manifest of labelled cases.
    Train(Box<cli::train::TrainArgs>),
    /// How well a landmark is learnt from 5, 10, 20 … annotated cases: held-out error per
    /// training set size and fold.
    LearningCurve(cli::train::CurveArgs),
    /// Evaluate models on a manifest's cases: per-case table and summary per modality.
    Eval(EvalArgs),
    /// Find the heart in volumes (NIfTI files or DICOM series folders).
    Locate(LocateArgs),
    /// Write a label map's structures as closed surfaces (one file each) in LPS mm, as 3D
    /// Slicer reads them (`SPACE=LPS`).
    Mesh(MeshArgs),
    /// Test helper: save landmarks to FILE over and over until killed.
    #[command(hide = true)]
    StressSave { file: PathBuf },
}

/// Which models to use.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Methods {
    Segmentation,
    Heatmap,
    Both,
}

impl Methods {
    fn list(self) -> Vec<Method> {
        match self {
            Methods::Segmentation => vec![Method::Segmentation],
            Methods::Heatmap => vec![Method::Heatmap],
            Methods::Both => vec![Method::Segmentation, Method::Heatmap],
        }
    }
}

/// The method one model is trained for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MethodArg {
    Segmentation,
    Heatmap,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Segmentation => Method::Segmentation,
            MethodArg::Heatmap => Method::Heatmap,
        }
    }
}

/// Which cases of a manifest to evaluate.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SplitArg {
    /// Every case.
    All,
    /// Every --val-every-th case, as held out by train.
    Val,
    /// The cases train learned from.
    Train,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// `.nii`/`.nii.gz` files or DICOM series folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// One JSON object per input, one per line.
    #[arg(long)]
    json: bool,
    /// For a folder with several DICOM series: which SeriesInstanceUID to read.
    #[arg(long)]
    series: Option<String>,
    #[command(flatten)]
    phase: PhaseArg,
}

#[derive(clap::Args)]
struct SeriesArgs {
    folder: PathBuf,
    /// One JSON object per series, one per line.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "gui")]
#[derive(clap::Args)]
struct ViewArgs {
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
    /// Models from this folder (`<method>.safetensors` + recipe) instead of the shipped ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Run the models on every volume as it opens.
    #[arg(long)]
    run: bool,
}

#[derive(clap::Args)]
struct WorklistArgs {
    /// A folder of cases or a manifest CSV with a `case` column.
    source: PathBuf,
    /// Where the landmarks are saved (default: next to each case).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write case, landmark, x, y, z (LPS mm), status for every landmark.
    #[arg(long)]
    export_csv: Option<PathBuf>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Manifest CSV; repeat it to add another phase's frames (the split is by patient,
    /// numbered as they first appear: list the end-diastolic manifest first).
    #[arg(long, required = true)]
    manifest: Vec<PathBuf>,
    /// Put short-axis MR (ventricles named in the manifest's `labels`) into the body pose its
    /// labels give before looking (`ml::repose`), as clinical MR with a true header lies.
    #[arg(long)]
    body_pose: bool,
    #[arg(long, value_enum, default_value_t = Methods::Both)]
    method: Methods,
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    split: SplitArg,
    #[arg(long, default_value_t = 5)]
    val_every: usize,
    /// Models from this folder instead of the shipped ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Also write each case's results as one JSON line here, durably (see `locate`).
    #[arg(long)]
    jsonl_out: Option<PathBuf>,
    #[command(flatten)]
    batch: BatchArgs,
    /// Also see each scan disturbed, the truth moved with it: `rotate:45,90` (about a random
    /// axis per case, affine only), `mirror` (left-right), `crop[:MM]` (a face MM beyond the
    /// heart, 20), `noise[:SD]` (0.45 of the scan's SD), `thick[:N]` (slices N times thicker,
    /// 3). The unperturbed scan always comes first; a table per perturbation follows.
    #[arg(long, num_args = 1.., value_parser = parse_perturbation)]
    perturb: Vec<Vec<heartloc::ml::perturb::Perturbation>>,
}

fn parse_perturbation(word: &str) -> Result<Vec<heartloc::ml::perturb::Perturbation>, String> {
    heartloc::ml::perturb::Perturbation::parse(word)
}

#[derive(clap::Args)]
struct LocateArgs {
    #[arg(required_unless_present = "list")]
    inputs: Vec<PathBuf>,
    /// Also read inputs from this file, one path per line (blank lines and `#` comments
    /// skipped).
    #[arg(long)]
    list: Option<PathBuf>,
    /// Write each input's result (or error) as one JSON line here, flushed to disk before
    /// the next input starts; an existing file needs --resume.
    #[arg(long)]
    jsonl_out: Option<PathBuf>,
    #[command(flatten)]
    batch: BatchArgs,
    #[command(flatten)]
    phase: PhaseArg,
    /// Every phase of a cine (DICOM or 4D NIfTI): each phase's answers and a summary of
    /// the cycle (the centre's path and spread, the segmented heart's volume by phase).
    #[arg(long, conflicts_with_all = ["mask_out", "mesh_out", "mrk_out", "number"])]
    all_phases: bool,
    #[arg(long, value_enum, default_value_t = Methods::Both)]
    method: Methods,
    /// One JSON object per input per line.
    #[arg(long)]
    json: bool,
    /// Write the heart mask as NIfTI (a folder when several inputs or --jsonl-out are
    /// given).
    #[arg(long)]
    mask_out: Option<PathBuf>,
    /// Write the segmented heart as a closed, smoothed surface in LPS mm (`SPACE=LPS`, as 3D
    /// Slicer reads it): .stl, .ply or .obj (a folder of .stl files when several inputs or
    /// --jsonl-out are given).
    #[arg(long)]
    mesh_out: Option<PathBuf>,
    /// Write the centres as Slicer markups (a folder when several inputs or --jsonl-out are
    /// given).
    #[arg(long)]
    mrk_out: Option<PathBuf>,
    /// Models from this folder instead of the shipped ones.
    #[arg(long)]
    weights: Option<PathBuf>,
}

#[derive(clap::Args)]
struct MeshArgs {
    /// A label map (NIfTI or DICOM): each non-zero value is one structure.
    labels: PathBuf,
    /// Folder for the files, one per structure: <stem>-<value>-<name>.<format>.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = MeshFormatArg::Stl)]
    format: MeshFormatArg,
    /// Only these label values (repeatable); all by default.
    #[arg(long)]
    label: Vec<u32>,
}

/// The model file formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum MeshFormatArg {
    Stl,
    Ply,
    Obj,
}

impl From<MeshFormatArg> for heartloc::mesh::MeshFormat {
    fn from(f: MeshFormatArg) -> Self {
        match f {
            MeshFormatArg::Stl => Self::Stl,
            MeshFormatArg::Ply => Self::Ply,
            MeshFormatArg::Obj => Self::Obj,
        }
    }
}

/// Which phase of a time series (cine DICOM, 4D NIfTI) to read.
#[derive(clap::Args, Clone, Copy, Debug)]
struct PhaseArg {
    /// Phase N (1-based) in trigger order; 1, conventionally end-diastole, by default.
    #[arg(long = "phase", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    number: u32,
}

impl PhaseArg {
    fn index(self) -> usize {
        self.number as usize - 1
    }
}

/// Options that let a batch run survive a kill and spread over machines.
#[derive(clap::Args, Clone, Copy, Debug)]
struct BatchArgs {
    /// With --jsonl-out: keep the lines already there and skip the inputs they name (a last
    /// line cut short by a kill is removed first).
    #[arg(long, requires = "jsonl_out")]
    resume: bool,
    /// Only inputs K, K+N, K+2N, … (1-based) of the list: shard K of N, e.g. from a Slurm job
    /// array (`--shard $((SLURM_ARRAY_TASK_ID))/$SLURM_ARRAY_TASK_COUNT`).
    #[arg(long, default_value = "1/1")]
    shard: io::durable::Shard,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "gui")]
    let opens_app = matches!(cli.command, None | Some(Command::View(_)));
    #[cfg(not(feature = "gui"))]
    let opens_app = cli.command.is_none();
    if !opens_app {
        cli::pipe::quit_on_broken_pipe();
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    if std::env::var_os("HEARTLOC_PEAK_RSS").is_some() {
        // For tests and benchmarks: the process's peak resident memory (Linux).
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("peak RSS: {}", line["VmHWM:".len()..].trim());
        }
    }
    code
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Info(a)) => info(a),
        Some(Command::Series(a)) => series(a),
        Some(Command::Worklist(a)) => worklist(a),
        Some(Command::Train(a)) => cli::train::train(*a),
        Some(Command::LearningCurve(a)) => cli::train::learning_curve(a),
        Some(Command::Eval(a)) => eval(a),
        Some(Command::Locate(a)) => locate(a),
        Some(Command::Mesh(a)) => {
            cli::mesh::run(&a.labels, &a.out, a.format.into(), &a.label).map(|_| ExitCode::SUCCESS)
        }
        Some(Command::StressSave { file }) => stress_save(&file),
        #[cfg(feature = "gui")]
        Some(Command::View(a)) => heartloc::app::run(heartloc::app::Launch {
            input: a.input,
            landmarks: a.landmarks,
            worklist: a.worklist,
            out: a.out,
            weights: a.weights,
            run: a.run,
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

/// `heartloc info`: one report per input; failure if any input could not be read.
fn info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let options = OpenOptions {
        series_uid: a.series,
        phase: a.phase.index(),
    };
    let mut failed = false;
    for input in &a.inputs {
        match io::open(input, &options) {
            Ok((vol, format)) => {
                let report = Report::new(&input.display().to_string(), format, &vol);
                if a.json {
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

/// `heartloc series`: the image series under a folder, one line (or JSON object) each.
fn series(a: SeriesArgs) -> anyhow::Result<ExitCode> {
    let (series, skipped) = io::dicom::list_series(&a.folder)?;
    for note in skipped {
        eprintln!("note: {note}");
    }
    for s in series {
        if a.json {
            println!("{}", serde_json::to_string(&s)?);
            continue;
        }
        let spacing = match (s.pixel_spacing_mm, s.slice_step_mm) {
            (Some([x, y]), Some(z)) => format!("{x:.3}×{y:.3}×{z:.3} mm"),
            (Some([x, y]), None) => format!("{x:.3}×{y:.3} mm"),
            _ => "spacing ?".into(),
        };
        println!(
            "{}  {:<3} {:<8} {:>4} images  {}×{}×{}  {spacing}  {}  \"{}\"  in {}",
            s.series_uid,
            s.modality,
            s.date,
            s.images,
            s.dims[0],
            s.dims[1],
            s.dims[2],
            s.orientation.as_deref().unwrap_or("?"),
            s.description,
            s.folder.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `heartloc worklist`: counts, and the CSV export.
fn worklist(a: WorklistArgs) -> anyhow::Result<ExitCode> {
    let w = heartloc::worklist::Worklist::open(&a.source, a.out.as_deref())?;
    let (todo, done, skipped) = w.counts();
    println!(
        "{} cases: {done} done, {todo} to do, {skipped} skipped",
        w.cases.len()
    );
    if let Some(csv) = a.export_csv {
        let export = w.export_csv(&csv)?;
        println!("wrote {} rows to {}", export.rows, csv.display());
        for n in &export.notes {
            eprintln!("note: {n}");
        }
        for p in &export.problems {
            eprintln!("problem: {p}");
        }
        if !export.problems.is_empty() {
            // The CSV holds every readable point; the exit status says not everything was.
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `heartloc eval` (see `cli::eval`).
fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    use heartloc::ml::eval::Split;
    let mut perturbations = vec![heartloc::ml::perturb::Perturbation::None];
    for p in a.perturb.into_iter().flatten() {
        if !perturbations.contains(&p) {
            perturbations.push(p);
        }
    }
    let req = cli::eval::Request {
        models: heartloc::ml::model::load_models(&a.method.list(), a.weights.as_deref())?,
        split: match a.split {
            SplitArg::All => Split::All,
            SplitArg::Val => Split::Validation(a.val_every),
            SplitArg::Train => Split::Training(a.val_every),
        },
        perturbations,
        body_pose: a.body_pose,
        jsonl_out: a.jsonl_out,
        resume: a.batch.resume,
        shard: a.batch.shard,
    };
    cli::eval::run(&a.manifest, &req)?;
    Ok(ExitCode::SUCCESS)
}

/// `heartloc locate`: this shard's inputs through the models (see `cli::locate`).
fn locate(a: LocateArgs) -> anyhow::Result<ExitCode> {
    if a.method == Methods::Heatmap && (a.mask_out.is_some() || a.mesh_out.is_some()) {
        anyhow::bail!(
            "--mask-out and --mesh-out come from the segmentation: drop --method heatmap"
        );
    }
    if let Some(path) = a
        .mesh_out
        .as_deref()
        .filter(|_| a.inputs.len() == 1 && a.list.is_none() && a.jsonl_out.is_none())
    {
        heartloc::mesh::MeshFormat::of_path(path)?;
    }
    let mut all = a.inputs;
    if let Some(list) = &a.list {
        all.extend(cli::locate::read_list(list)?);
    }
    let mine: Vec<PathBuf> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| a.batch.shard.takes(*i))
        .map(|(_, p)| p)
        .collect();
    let log = a
        .jsonl_out
        .as_deref()
        .map(|p| io::durable::JsonLines::open(p, "input", a.batch.resume))
        .transpose()?;
    let req = cli::locate::Request {
        open: OpenOptions {
            phase: a.phase.index(),
            ..Default::default()
        },
        all_phases: a.all_phases,
        json: a.json,
        mask_out: a.mask_out,
        mesh_out: a.mesh_out,
        mrk_out: a.mrk_out,
    };
    let models = heartloc::ml::model::load_models(&a.method.list(), a.weights.as_deref())?;
    cli::locate::run(&mine, &models, &req, log)
}

/// Test helper: every version has all points at (i, i, i) and a long note, so a torn file
/// would show as invalid JSON or mixed versions.
fn stress_save(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let note = "x".repeat(64 * 1024);
    for i in 0u64.. {
        let v = i as f64;
        let points: Vec<_> = ["aortic-valve", "heart-center", "apex"]
            .iter()
            .map(|label| heartloc::io::markups::ControlPoint {
                label: label.to_string(),
                description: note.clone(),
                position_lps: Some([v, v, v]),
                status: heartloc::io::markups::PositionStatus::Defined,
                locked: false,
            })
            .collect();
        heartloc::io::markups::write(file, &points)?;
    }
    Ok(ExitCode::SUCCESS)
}
