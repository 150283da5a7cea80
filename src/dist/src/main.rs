//! `portcullis-dist`: what `./build.sh dist` runs to fill `dist/`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use portcullis_dist::images::{self, Release};
use portcullis_dist::DistError;
use sha2::{Digest as _, Sha256};

#[derive(Parser)]
#[command(about = "Writes Portcullis's release artefacts into an empty directory")]
struct Args {
    /// The release .wasm (the `wasm` profile's build).
    #[arg(long)]
    wasm: PathBuf,
    /// The static companion (x86_64-unknown-linux-musl).
    #[arg(long)]
    companion: PathBuf,
    /// The directory to fill; it must not exist.
    #[arg(long)]
    out: PathBuf,
    /// The release's version: the images' tag.
    #[arg(long)]
    version: String,
    /// Where the source is, for the images' labels (none by default).
    #[arg(long)]
    source: Option<String>,
    /// The CA certificates to put in the companion's image (PEM).
    #[arg(long)]
    ca_certificates: Option<PathBuf>,
    /// Seconds since the epoch for every time in the artefacts (the last
    /// commit's, from ./build.sh), so that a rebuild is byte for byte the
    /// same.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: u64,
}

/// The names of the plain files in `dist/`.
const WASM_FILE: &str = "portcullis_filter.wasm";
const COMPANION_FILE: &str = "portcullis-x86_64-unknown-linux-musl";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-dist: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DistError> {
    std::fs::read(path).map_err(|e| DistError::io(path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DistError> {
    std::fs::write(path, bytes).map_err(|e| DistError::io(path, e))
}

fn run(args: &Args) -> Result<(), DistError> {
    if args.out.exists() {
        return Err(DistError::Exists(args.out.clone()));
    }
    let wasm = read(&args.wasm)?;
    let companion = read(&args.companion)?;
    let ca = args.ca_certificates.as_deref().map(read).transpose()?;
    std::fs::create_dir_all(&args.out).map_err(|e| DistError::io(&args.out, e))?;
    let release = Release {
        version: &args.version,
        source: args.source.as_deref(),
        epoch: args.source_date_epoch,
    };

    let mut sums = String::new();
    for (name, bytes) in [(WASM_FILE, &wasm), (COMPANION_FILE, &companion)] {
        let path = args.out.join(name);
        write(&path, bytes)?;
        // sha256sum's format, so that `sha256sum -c` checks it.
        let line = format!("{}  {name}\n", hex::encode(Sha256::digest(bytes)));
        write(&args.out.join(format!("{name}.sha256")), line.as_bytes())?;
        sums.push_str(&line);
    }
    write(&args.out.join("SHA256SUMS"), sums.as_bytes())?;
    let executable = args.out.join(COMPANION_FILE);
    std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| DistError::io(&executable, e))?;

    let filter = images::filter(&args.out.join("oci/portcullis-filter"), &wasm, &release)?;
    let companion = images::companion(
        &args.out.join("oci/portcullis"),
        &companion,
        ca.as_deref(),
        &release,
    )?;
    println!("{}", args.out.join(WASM_FILE).display());
    println!("{}", args.out.join(COMPANION_FILE).display());
    println!(
        "oci:{}:{} {}",
        args.out.join("oci/portcullis-filter").display(),
        args.version,
        filter.digest()
    );
    println!(
        "oci:{}:{} {}",
        args.out.join("oci/portcullis").display(),
        args.version,
        companion.digest()
    );
    Ok(())
}
