//! `toa doctor`: print the host diagnosis of crate `toa-doctor`, one line per
//! check, and fail unless the host can run `toa origin`.

use clap::Args;

/// Check whether this host can run toa origin, and what toa is running.
#[derive(Args)]
pub struct DoctorArgs {
    /// Also check a running `toa proxy`'s metrics endpoint (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let report = toa_doctor::diagnose(&toa_doctor::Options {
        metrics: args.metrics,
    });
    print!("{report}");
    let problems = report.problems().count();
    if problems == 0 {
        println!("toa doctor: all checks passed, this host can run toa origin");
        Ok(())
    } else {
        anyhow::bail!("{problems} check(s) failed; apply the fixes above (marked ✗)")
    }
}
