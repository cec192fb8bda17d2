//! `toa generate-docs DIR` (hidden): man pages and shell completions generated
//! from the clap definitions, so they never drift from `--help`.
//! scripts/package ships them in the .deb and the tarballs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Write DIR/man/man1/toa*.1 (toa(1) and one page per subcommand) and
/// DIR/completions/{toa.bash,_toa,toa.fish}.
#[derive(Args, Debug)]
pub struct GenerateDocsArgs {
    /// Output directory (created if missing).
    dir: PathBuf,
}

pub fn run<C: CommandFactory>(args: GenerateDocsArgs) -> anyhow::Result<()> {
    let man = args.dir.join("man/man1");
    let completions = args.dir.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Unbuilt: generate_to leaves out the `help` subcommands building adds.
    let mut cmd = C::command();
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("cannot write man pages to {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "toa", &completions).with_context(|| {
            format!(
                "cannot write {shell} completions to {}",
                completions.display()
            )
        })?;
    }
    Ok(())
}
