//! What a diagnosis is made of: one [`Check`] per line, ✓ or ✗, each ✗ with its fix.

use std::fmt;

/// One line of the diagnosis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. "kernel" or "privileges".
    pub subject: &'static str,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fine; `detail` says what was found.
    Ok { detail: String },
    /// A problem: what was found and what the user should do about it.
    Problem { detail: String, fix: String },
}

impl Check {
    pub fn ok(subject: &'static str, detail: impl Into<String>) -> Check {
        Check {
            subject,
            outcome: Outcome::Ok {
                detail: detail.into(),
            },
        }
    }

    pub fn problem(
        subject: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            subject,
            outcome: Outcome::Problem {
                detail: detail.into(),
                fix: fix.into(),
            },
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok { detail } => write!(f, "✓ {}: {detail}", self.subject),
            Outcome::Problem { detail, fix } => {
                write!(f, "✗ {}: {detail} — fix: {fix}", self.subject)
            }
        }
    }
}

/// Every check, in the order they print.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The checks that found a problem.
    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.is_ok())
    }

    /// True when no check found a problem: the host can run `toa origin`
    /// (and any proxy endpoint asked about answered).
    pub fn all_ok(&self) -> bool {
        self.problems().next().is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_line_carries_its_fix() {
        let line = Check::problem(
            "BTF",
            "/sys/kernel/btf/vmlinux missing",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )
        .to_string();
        assert_eq!(
            line,
            "✗ BTF: /sys/kernel/btf/vmlinux missing — fix: use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        );
    }

    #[test]
    fn report_with_one_problem_is_not_ok() {
        let mut report = Report::default();
        report.checks.push(Check::ok("kernel", "6.18"));
        assert!(report.all_ok());
        report
            .checks
            .push(Check::problem("toa.ko", "loaded", "rmmod toa"));
        assert!(!report.all_ok());
        assert_eq!(report.problems().count(), 1);
    }
}
